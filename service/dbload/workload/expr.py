"""pgbench's expression language for ``\\set``, compiled to closures.

An expression is parsed once, when the script is loaded, into a tree of
Python closures; evaluating it is then a handful of calls (the parameter
stream runs it once per transaction, on the load generator's hot path).
Semantics follow pgbench: integer arithmetic truncates toward zero like C,
an operation with a double operand is double, comparisons give booleans (True is 1), and
the random functions use pgbench's algorithms.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Number = int | float
Vars = Mapping[str, object]
Fn = Callable[[Vars, random.Random], Number]


class ExprError(ValueError):
    """A malformed expression; the parser adds the file and line."""


class EvalError(ArithmeticError):
    """An expression that cannot be evaluated (division by zero, bad bounds)."""


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)
    | :(?P<var>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op><=|>=|<>|!=|<<|>>|[-+*/%(),<>=&|#~])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # "num" | "var" | "name" | "op" | "end"
    text: str


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ExprError(f"unexpected character {text[pos:].lstrip()[:1]!r} in expression")
        kind = match.lastgroup
        assert kind is not None
        tokens.append(_Tok(kind, match.group(kind)))
        pos = match.end()
    tokens.append(_Tok("end", ""))
    return tokens


# -- arithmetic with pgbench's (C's) integer semantics ----------------------

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def _checked(result: Number) -> Number:
    """pgbench computes in int64 and fails on overflow; Python ints never do."""
    if type(result) is int and not INT64_MIN <= result <= INT64_MAX:
        raise EvalError("bigint out of range")
    return result


def _shift(a: int, by: int) -> int:
    """``a << by`` (``by`` < 0 shifts right); C leaves oversized shifts undefined."""
    if not -64 < by < 64:
        raise EvalError("shift count out of range")
    return a << by if by >= 0 else a >> -by


def _math(fn: Callable[..., float], *args: Number) -> float:
    """A math function whose domain or range errors are script errors."""
    try:
        return fn(*args)
    except (ValueError, OverflowError, ZeroDivisionError) as exc:
        raise EvalError(f"{fn.__name__}: {exc}") from None


def to_int(value: Number) -> int:
    """pgbench's coerceToInt: a double is rounded half-to-even (C's rint),
    so ``int(5.5)`` is 6 and ``int(-2.7)`` is -3, as pgbench prints them."""
    if isinstance(value, int):
        return int(value)  # also turns a boolean into 0/1
    if not math.isfinite(value):
        raise EvalError(f"double to int overflow for {value}")
    result = round(value)  # round() on a float is half-to-even, like rint()
    if not INT64_MIN <= result <= INT64_MAX:
        raise EvalError(f"double to int overflow for {value}")
    return result


def _div(a: Number, b: Number) -> Number:
    if b == 0:
        raise EvalError("division by zero")
    if isinstance(a, int) and isinstance(b, int):
        q = abs(a) // abs(b)  # C truncates toward zero, Python's // floors
        return _checked(q if (a >= 0) == (b >= 0) else -q)
    return a / b


def _mod(a: Number, b: Number) -> int:
    # '%' is integer-only in pgbench: doubles are coerced (rounded) first
    x, y = to_int(a), to_int(b)
    if y == 0:
        raise EvalError("division by zero")
    r = abs(x) % abs(y)  # C's remainder takes the sign of the dividend
    return r if x >= 0 else -r


_BINARY: dict[str, Callable[[Number, Number], Number]] = {
    "+": lambda a, b: _checked(a + b),
    "-": lambda a, b: _checked(a - b),
    "*": lambda a, b: _checked(a * b),
    "/": _div,
    "%": _mod,
    # comparisons give booleans, which bind as SQL booleans (pgbench: true/false)
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "&": lambda a, b: to_int(a) & to_int(b),
    "|": lambda a, b: to_int(a) | to_int(b),
    "#": lambda a, b: to_int(a) ^ to_int(b),
    "<<": lambda a, b: _checked(_shift(to_int(a), to_int(b))),
    ">>": lambda a, b: _shift(to_int(a), -to_int(b)),
}

# Lowest to highest binding, as in pgbench's exprparse.y.
_LEVELS: tuple[tuple[str, ...], ...] = (
    ("or",),
    ("and",),
    ("=", "<>", "!=", "<", "<=", ">", ">="),
    ("|", "#", "&", "<<", ">>"),
    ("+", "-"),
    ("*", "/", "%"),
)

# -- pgbench's random functions ---------------------------------------------

MIN_GAUSSIAN_PARAM = 2.0
MIN_ZIPFIAN_PARAM = 1.001
MAX_ZIPFIAN_PARAM = 1000.0


def _bounds(lb: Number, ub: Number) -> tuple[int, int]:
    lo, hi = to_int(lb), to_int(ub)
    if hi < lo:
        raise EvalError(f"empty range given to random: {lo} > {hi}")
    if hi - lo + 1 > INT64_MAX:
        raise EvalError("random range is too large")
    return lo, hi


def rand_uniform(rng: random.Random, lb: Number, ub: Number) -> int:
    lo, hi = _bounds(lb, ub)
    return _draw(rng, lo, hi - lo + 1)


def _draw(rng: random.Random, lo: int, span: int) -> int:
    """Uniform in [lo, lo + span): one C call instead of randint's Python
    layers; the bias is below 2**-52 * span. Folded and variable bounds use
    this same formula, so a seed gives the same draws either way."""
    if span >= 2**52:  # beyond a double's precision: let randint be exact
        return rng.randint(lo, lo + span - 1)
    return lo + int(rng.random() * span)


def rand_gaussian(rng: random.Random, lb: Number, ub: Number, param: Number) -> int:
    lo, hi = _bounds(lb, ub)
    if param < MIN_GAUSSIAN_PARAM:
        raise EvalError(f"gaussian parameter must be at least {MIN_GAUSSIAN_PARAM}")
    while True:
        # Box-Muller, keeping draws within +/- param standard deviations
        rand1 = 1.0 - rng.random()  # (0, 1]: log() stays finite
        rand2 = rng.random()
        stdev = math.sqrt(-2.0 * math.log(rand1)) * math.sin(2.0 * math.pi * rand2)
        if -param <= stdev < param:
            break
    fraction = (stdev + param) / (param * 2.0)
    return lo + int((hi - lo + 1) * fraction)


def rand_exponential(rng: random.Random, lb: Number, ub: Number, param: Number) -> int:
    lo, hi = _bounds(lb, ub)
    if param <= 0.0:
        raise EvalError("exponential parameter must be greater than zero")
    cut = math.exp(-param)
    uniform = 1.0 - rng.random()  # (0, 1]
    fraction = -math.log(cut + (1.0 - cut) * uniform) / param
    return lo + int((hi - lo + 1) * fraction)


def rand_zipfian(rng: random.Random, lb: Number, ub: Number, param: Number) -> int:
    """Devroye's rejection method, as pgbench's computeIterativeZipfian."""
    lo, hi = _bounds(lb, ub)
    s = float(param)
    if not MIN_ZIPFIAN_PARAM <= s <= MAX_ZIPFIAN_PARAM:
        raise EvalError(
            f"zipfian parameter must be in [{MIN_ZIPFIAN_PARAM}, {MAX_ZIPFIAN_PARAM:g}]"
        )
    n = hi - lo + 1
    if n <= 1:
        return lo
    b = 2.0 ** (s - 1.0)
    exponent = -1.0 / (s - 1.0)
    while True:
        u = 1.0 - rng.random()  # (0, 1]: avoids 0 ** negative
        v = rng.random()
        try:
            x: int = math.floor(u**exponent)
        except OverflowError:  # C's pow() gives inf there, and pgbench rejects it
            continue
        if x > n:  # out of range: reject early (also keeps 1/x finite)
            continue
        t = (1.0 + 1.0 / x) ** (s - 1.0)
        if v * x * (t - 1.0) / (b - 1.0) <= t / b:
            return lo - 1 + x


def _sqrt(value: Number) -> float:
    if value < 0:
        raise EvalError("sqrt of a negative number")
    return math.sqrt(value)


def _ln(value: Number) -> float:
    if value <= 0:
        raise EvalError("ln of a non-positive number")
    return math.log(value)


# name -> (min args, max args or None for any, implementation(rng, *args))
_FUNCTIONS: dict[str, tuple[int, int | None, Callable[..., Number]]] = {
    "random": (2, 2, rand_uniform),
    "random_gaussian": (3, 3, rand_gaussian),
    "random_exponential": (3, 3, rand_exponential),
    "random_zipfian": (3, 3, rand_zipfian),
    "abs": (1, 1, lambda rng, a: abs(a)),
    "int": (1, 1, lambda rng, a: to_int(a)),
    "double": (1, 1, lambda rng, a: float(a)),
    "sqrt": (1, 1, lambda rng, a: _sqrt(a)),
    "ln": (1, 1, lambda rng, a: _ln(a)),
    "exp": (1, 1, lambda rng, a: _math(math.exp, a)),
    "pow": (2, 2, lambda rng, a, b: _math(math.pow, a, b)),
    "power": (2, 2, lambda rng, a, b: _math(math.pow, a, b)),
    "pi": (0, 0, lambda rng: math.pi),
    "mod": (2, 2, lambda rng, a, b: _mod(a, b)),
    "least": (1, None, lambda rng, *a: _extreme(min, a)),
    "greatest": (1, None, lambda rng, *a: _extreme(max, a)),
}


def _extreme(pick: Callable[..., Number], values: tuple[Number, ...]) -> Number:
    # pgbench returns a double as soon as one argument is a double
    if any(isinstance(v, float) for v in values):
        return float(pick(values))
    return int(pick(values))


def function_names() -> list[str]:
    return sorted(_FUNCTIONS)


# -- the parser: recursive descent over the precedence levels ---------------

# A node is its closure and, when it is a constant, its value: constants are
# folded at compile time so the hot path only computes what can change.
_VARIABLE = object()
Node = tuple[Fn, object]
_PURE = frozenset(_FUNCTIONS) - {
    "random",
    "random_gaussian",
    "random_exponential",
    "random_zipfian",
}


_KEYWORDS = frozenset({"when", "then", "else", "end", "and", "or", "not"})


def _const(value: Number) -> Node:
    return (lambda v, r: value), value


class _Parser:
    def __init__(self, text: str, constants: Mapping[str, Number]) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.constants = constants
        self.variables: set[str] = set()

    def peek(self) -> _Tok:
        return self.tokens[self.pos]

    def take(self) -> _Tok:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text.lower() != text:
            shown = tok.text or "end of expression"
            raise ExprError(f"expected {text!r} but found {shown!r}")

    def parse(self) -> Fn:
        if self.peek().kind == "end":
            raise ExprError("empty expression")
        fn, _ = self.level(0)
        if self.peek().kind != "end":
            raise ExprError(f"unexpected {self.peek().text!r} after expression")
        return fn

    def _is_op(self, tok: _Tok, ops: tuple[str, ...]) -> bool:
        text = tok.text.lower() if tok.kind == "name" else tok.text
        return tok.kind in ("op", "name") and text in ops

    def level(self, depth: int) -> Node:
        if depth == len(_LEVELS):
            return self.unary()
        left = self.not_() if depth == 1 else self.level(depth + 1)
        while self._is_op(self.peek(), _LEVELS[depth]):
            op = self.take().text.lower()
            right = self.not_() if depth == 1 else self.level(depth + 1)
            left = _combine(op, left, right)
        return left

    def not_(self) -> Node:
        if self.peek().kind == "name" and self.peek().text.lower() == "not":
            self.take()
            inner, value = self.not_()
            if value is not _VARIABLE:
                return _const(not value)
            return (lambda v, r: not inner(v, r)), _VARIABLE
        return self.level(2)

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("-", "+", "~"):
            self.take()
            inner, value = self.unary()
            if tok.text == "+":
                return inner, value
            if value is not _VARIABLE:
                number: Number = value  # type: ignore[assignment]
                if tok.text == "-":  # pgbench computes 0 - x: INT64_MIN overflows
                    return _fold(lambda: _checked(-number))
                return _const(~to_int(number))
            if tok.text == "-":
                return (lambda v, r: _checked(-inner(v, r))), _VARIABLE
            return (lambda v, r: ~to_int(inner(v, r))), _VARIABLE
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return _const(float(tok.text) if any(c in tok.text for c in ".eE") else int(tok.text))
        if tok.kind == "var":
            name = tok.text
            self.variables.add(name)
            if name in self.constants:
                return _const(self.constants[name])
            return (lambda v, r: v[name]), _VARIABLE
        if tok.kind == "op" and tok.text == "(":
            inner = self.level(0)
            self.expect(")")
            return inner
        if tok.kind == "name":
            lowered = tok.text.lower()
            if lowered in ("true", "false"):
                return _const(lowered == "true")
            if lowered == "case":
                return self.case()
            if lowered in _KEYWORDS:
                raise ExprError(f"unexpected {tok.text!r}")
            return self.call(lowered)
        raise ExprError(f"unexpected {tok.text or 'end of expression'!r}")

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok.kind == "name" and tok.text.lower() == word:
            self.take()
            return True
        return False

    def case(self) -> Node:
        """CASE WHEN c THEN x [WHEN ...] ELSE y END, evaluated lazily."""
        branches: list[tuple[Fn, Fn]] = []
        while self.keyword("when"):
            cond, _ = self.level(0)
            self.expect("then")
            value, _ = self.level(0)
            branches.append((cond, value))
        if not branches:
            raise ExprError("CASE needs at least one WHEN ... THEN")
        if not self.keyword("else"):
            # pgbench yields NULL there; dbload has no NULL to bind
            raise ExprError("CASE without ELSE is not supported")
        otherwise, _ = self.level(0)
        self.expect("end")
        pairs = tuple(branches)

        def evaluate(v: Vars, r: random.Random) -> Number:
            for cond, value in pairs:
                if cond(v, r):  # pgbench: non-zero numbers and true are true
                    return value(v, r)
            return otherwise(v, r)

        return evaluate, _VARIABLE

    def call(self, name: str) -> Node:
        if name not in _FUNCTIONS:
            raise ExprError(f"unknown function {name!r}")
        self.expect("(")
        args: list[Node] = []
        if not (self.peek().kind == "op" and self.peek().text == ")"):
            args.append(self.level(0))
            while self.peek().kind == "op" and self.peek().text == ",":
                self.take()
                args.append(self.level(0))
        self.expect(")")
        low, high, impl = _FUNCTIONS[name]
        if len(args) < low or (high is not None and len(args) > high):
            wanted = str(low) if low == high else f"{low}..{high if high is not None else 'n'}"
            raise ExprError(f"{name}() takes {wanted} argument(s), got {len(args)}")
        return _apply(name, impl, args)


def _fold(fn: Callable[[], Number]) -> Node:
    try:
        return _const(fn())
    except (EvalError, ArithmeticError, ValueError) as exc:
        raise ExprError(str(exc)) from None


def _combine(op: str, left_node: Node, right_node: Node) -> Node:
    (left, lv), (right, rv) = left_node, right_node
    if op == "and":
        node: Fn = lambda v, r: bool(left(v, r)) and bool(right(v, r))  # noqa: E731
    elif op == "or":
        node = lambda v, r: bool(left(v, r)) or bool(right(v, r))  # noqa: E731
    else:
        fn = _BINARY[op]
        if lv is not _VARIABLE and rv is not _VARIABLE:
            return _fold(lambda: fn(lv, rv))  # type: ignore[arg-type]
        if rv is not _VARIABLE:
            return (lambda v, r: fn(left(v, r), rv)), _VARIABLE  # type: ignore[arg-type]
        if lv is not _VARIABLE:
            return (lambda v, r: fn(lv, right(v, r))), _VARIABLE  # type: ignore[arg-type]
        return (lambda v, r: fn(left(v, r), right(v, r))), _VARIABLE
    if lv is not _VARIABLE and rv is not _VARIABLE:
        return _fold(lambda: node({}, random.Random(0)))
    return node, _VARIABLE


def _uniform(lb: Number, ub: Number) -> Node:
    """random() with fixed bounds, the most common \\set of all."""
    try:
        lo, hi = _bounds(lb, ub)
    except EvalError as exc:
        raise ExprError(str(exc)) from None
    span = hi - lo + 1
    if span >= 2**52:
        return (lambda v, r: _draw(r, lo, span)), _VARIABLE
    return (lambda v, r: lo + int(r.random() * span)), _VARIABLE  # _draw, inlined


def _apply(name: str, impl: Callable[..., Number], args: list[Node]) -> Node:
    fns = [fn for fn, _ in args]
    values = [value for _, value in args]
    if all(value is not _VARIABLE for value in values):
        if name in _PURE:
            return _fold(lambda: impl(None, *values))
        if name == "random":
            return _uniform(*values)  # type: ignore[arg-type]
        # random_gaussian(1, 100000, 2.5): the arguments are fixed, only the
        # draw varies; one trial draw reports a bad parameter at parse time
        _fold(lambda: impl(random.Random(0), *values))
        return (lambda v, r: impl(r, *values)), _VARIABLE
    # Unrolled for the common arities: this is the hot path of \set.
    if len(fns) == 2:
        a, b = fns
        return (lambda v, r: impl(r, a(v, r), b(v, r))), _VARIABLE
    if len(fns) == 3:
        a, b, c = fns
        return (lambda v, r: impl(r, a(v, r), b(v, r), c(v, r))), _VARIABLE
    return (lambda v, r: impl(r, *(f(v, r) for f in fns))), _VARIABLE


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression and the variables it reads."""

    text: str
    evaluate: Fn
    variables: frozenset[str]


def compile_expression(text: str, constants: Mapping[str, Number] | None = None) -> Expression:
    """Parse ``text``; raises :class:`ExprError` with a short reason.

    ``constants`` are variables whose value is fixed for the whole stream
    (``:scale``, ``-D`` values): they are folded into the compiled code.
    """
    parser = _Parser(text, constants or {})
    fn = parser.parse()
    return Expression(text=text.strip(), evaluate=fn, variables=frozenset(parser.variables))
