"""pgbench's expression language for ``\\set``, compiled to closures.

An expression is parsed once, when the script is loaded, into a small tree
whose constant parts are folded away, then into Python closures; evaluating
it is then a handful of calls (the parameter stream runs it once per
transaction, on the load generator's hot path). Semantics follow pgbench:
integer arithmetic is int64 and truncates toward zero like C, an operation
with a double operand is double and follows C's libm (``sqrt(-1)`` is NaN,
``1.0 / 0`` is Infinity), comparisons give booleans (True is 1), and the
random functions use pgbench's algorithms.

Neither the parser nor the evaluator recurses per nesting level beyond a
small bound, so an expression nested as deeply as pgbench accepts (its
parser's stack holds 10,000 entries) parses and evaluates; anything that
goes wrong is an :class:`ExprError` (parse time) or an :class:`EvalError`
(evaluation), nothing else.
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


# pgbench's lexer (exprscan.l): ASCII digits and blanks only; any byte from
# 0x80 up is a letter, so a non-ASCII character may be part of a name.
_IDENT = r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*"
BLANKS = " \t\n\r\f\v"
_TOKEN = re.compile(
    rf"""[{BLANKS}]*(?:
      (?P<num>[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?
             |[0-9]+[eE][+-]?[0-9]+|[0-9]+)
    | :(?P<var>{_IDENT})
    | (?P<name>{_IDENT})
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
    text = text.rstrip(BLANKS)
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            shown = text[pos:].lstrip(BLANKS)[:1]
            raise ExprError(f"unexpected character {shown!r} in expression")
        kind = match.lastgroup
        assert kind is not None
        tokens.append(_Tok(kind, match.group(kind)))
        pos = match.end()
    tokens.append(_Tok("end", ""))
    return tokens


# -- arithmetic with pgbench's (C's) semantics --------------------------------

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_INT64_MIN_TEXT = "9223372036854775808"  # only valid right after a unary minus


def _checked(result: Number) -> Number:
    """pgbench computes in int64 and fails on overflow; Python ints never do."""
    if type(result) is int and not INT64_MIN <= result <= INT64_MAX:
        raise EvalError("bigint out of range")
    return result


def _wrap(value: int) -> int:
    """``value`` reduced to int64 the way the machine wraps it."""
    value &= 2**64 - 1
    return value - 2**64 if value > INT64_MAX else value


def _shift_left(a: int, by: int) -> int:
    # C leaves an oversized shift undefined; pgbench on x86-64 uses the low
    # six bits of the count and wraps, which is what it prints
    return _wrap(a << (by & 63))


def _shift_right(a: int, by: int) -> int:
    return a >> (by & 63)


# pgbench types its values: a boolean is no number, a number no boolean
# (true + 1, 1 AND 2 and NOT 0 are errors); only CASE tests a number's truth.


def _kind(value: object) -> str:
    return {bool: "boolean", int: "int", float: "double"}.get(type(value), "value")


def to_int(value: Number) -> int:
    """pgbench's coerceToInt: a double is rounded half-to-even (C's rint),
    so ``int(5.5)`` is 6 and ``int(-2.7)`` is -3, as pgbench prints them."""
    if type(value) is int:
        return value
    if not isinstance(value, float):
        raise EvalError(f"cannot coerce {_kind(value)} to int")
    if not math.isfinite(value):
        raise EvalError(f"double to int overflow for {value}")
    result = round(value)  # round() on a float is half-to-even, like rint()
    if not INT64_MIN <= result <= INT64_MAX:
        raise EvalError(f"double to int overflow for {value}")
    return result


def to_float(value: Number) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EvalError(f"cannot coerce {_kind(value)} to double")
    return float(value)


def to_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise EvalError(f"cannot coerce {_kind(value)} to boolean")
    return value


def _both_int(a: Number, b: Number) -> bool:
    """Whether pgbench computes ``a op b`` in int64 (else in doubles)."""
    if type(a) is int and type(b) is int:
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        # pgbench's int path when neither is a double, its double path else
        raise EvalError(
            f"cannot coerce boolean to {'double' if float in (type(a), type(b)) else 'int'}"
        )
    return False


def _arith(op: Callable[[Number, Number], Number]) -> Callable[[Number, Number], Number]:
    def arith(a: Number, b: Number) -> Number:
        if _both_int(a, b):
            return _checked(op(a, b))
        return op(to_float(a), to_float(b))

    return arith


def _div(a: Number, b: Number) -> Number:
    if _both_int(a, b):
        if b == 0:
            raise EvalError("division by zero")
        q = abs(a) // abs(b)  # C truncates toward zero, Python's // floors
        return _checked(q if (a >= 0) == (b >= 0) else -q)
    x, y = to_float(a), to_float(b)
    if y == 0.0:  # IEEE: x / 0 is a signed infinity, 0 / 0 is NaN
        if x == 0.0 or math.isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def _mod(a: Number, b: Number) -> int:
    # '%' is integer-only in pgbench: doubles are coerced (rounded) first
    x, y = to_int(a), to_int(b)
    if y == 0:
        raise EvalError("division by zero")
    r = abs(x) % abs(y)  # C's remainder takes the sign of the dividend
    return r if x >= 0 else -r


def _compare(op: Callable[[Number, Number], bool]) -> Callable[[Number, Number], bool]:
    """pgbench compares two ints exactly and anything else as doubles."""

    def compare(a: Number, b: Number) -> bool:
        return op(a, b) if _both_int(a, b) else op(to_float(a), to_float(b))

    return compare


_BINARY: dict[str, Callable[[Number, Number], Number]] = {
    "+": _arith(lambda a, b: a + b),
    "-": _arith(lambda a, b: a - b),
    "*": _arith(lambda a, b: a * b),
    "/": _div,
    "%": _mod,
    # comparisons give booleans, which bind as SQL booleans (pgbench: true/false)
    "=": _compare(lambda a, b: a == b),
    "<>": _compare(lambda a, b: a != b),
    "!=": _compare(lambda a, b: a != b),
    "<": _compare(lambda a, b: a < b),
    "<=": _compare(lambda a, b: a <= b),
    ">": _compare(lambda a, b: a > b),
    ">=": _compare(lambda a, b: a >= b),
    "&": lambda a, b: to_int(a) & to_int(b),
    "|": lambda a, b: to_int(a) | to_int(b),
    "#": lambda a, b: to_int(a) ^ to_int(b),
    "<<": lambda a, b: _shift_left(to_int(a), to_int(b)),
    ">>": lambda a, b: _shift_right(to_int(a), to_int(b)),
}

_UNARY: dict[str, Callable[[Number], Number]] = {
    "-": lambda a: _BINARY["-"](0, a),  # pgbench computes 0 - x: INT64_MIN overflows
    "~": lambda a: ~to_int(a),
    "not": lambda a: not to_bool(a),
}

# Binding strength of each binary operator, as in pgbench's exprparse.y
# (higher binds tighter); comparisons do not associate: 1 < 2 < 3 is an error.
_OR, _AND, _NOT, _CMP, _BIT, _ADD, _MUL, _SIGN = range(1, 9)
_PRECEDENCE = {
    "or": _OR,
    "and": _AND,
    **dict.fromkeys(("=", "<>", "!=", "<", "<=", ">", ">="), _CMP),
    **dict.fromkeys(("|", "#", "&", "<<", ">>"), _BIT),
    "+": _ADD,
    "-": _ADD,
    **dict.fromkeys(("*", "/", "%"), _MUL),
}
# A prefix operator binds like its grammar rule: '~' takes a whole bitwise
# operand (~1 + 2 is ~3), NOT takes a comparison, a sign binds tightest.
_PREFIX = {"-": _SIGN, "+": _SIGN, "~": _BIT, "not": _NOT}

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


def _finite(name: str, param: Number) -> float:
    # pgbench draws garbage from a NaN or infinite parameter, or loops
    # forever (zipfian): a script error here
    value = to_float(param)
    if not math.isfinite(value):
        raise EvalError(f"{name} parameter must be a finite number (not {value})")
    return value


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
    p = _finite("gaussian", param)
    if p < MIN_GAUSSIAN_PARAM:
        raise EvalError(f"gaussian parameter must be at least {MIN_GAUSSIAN_PARAM}")
    while True:
        # Box-Muller, keeping draws within +/- p standard deviations
        rand1 = 1.0 - rng.random()  # (0, 1]: log() stays finite
        rand2 = rng.random()
        stdev = math.sqrt(-2.0 * math.log(rand1)) * math.sin(2.0 * math.pi * rand2)
        if -p <= stdev < p:
            break
    fraction = (stdev + p) / (p * 2.0)
    return lo + int((hi - lo + 1) * fraction)


def rand_exponential(rng: random.Random, lb: Number, ub: Number, param: Number) -> int:
    lo, hi = _bounds(lb, ub)
    p = _finite("exponential", param)
    if p <= 0.0:
        raise EvalError("exponential parameter must be greater than zero")
    cut = math.exp(-p)
    uniform = 1.0 - rng.random()  # (0, 1]
    fraction = -math.log(cut + (1.0 - cut) * uniform) / p
    return lo + int((hi - lo + 1) * fraction)


def rand_zipfian(rng: random.Random, lb: Number, ub: Number, param: Number) -> int:
    """Devroye's rejection method, as pgbench's computeIterativeZipfian."""
    lo, hi = _bounds(lb, ub)
    s = to_float(param)
    if not MIN_ZIPFIAN_PARAM <= s <= MAX_ZIPFIAN_PARAM:  # also refuses NaN
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


# -- math functions, with C's libm results where Python's math raises ---------


def _sqrt(value: Number) -> float:
    x = to_float(value)
    return math.nan if x < 0 else math.sqrt(x)


def _ln(value: Number) -> float:
    x = to_float(value)
    if x == 0.0:
        return -math.inf
    return math.nan if x < 0 else math.log(x)


def _exp(value: Number) -> float:
    try:
        return math.exp(to_float(value))
    except OverflowError:
        return math.inf


def _pow(base: Number, exponent: Number) -> float:
    x, y = to_float(base), to_float(exponent)
    try:
        return math.pow(x, y)
    except OverflowError:  # C: a signed infinity (negative only for an odd power)
        odd = y.is_integer() and y % 2 == 1
        return -math.inf if x < 0 and odd else math.inf
    except ValueError:  # C: 0 ** negative is a pole, negative ** fraction NaN
        if x == 0.0:
            odd = y.is_integer() and y % 2 == 1
            return math.copysign(math.inf, x) if odd else math.inf
        return math.nan


def _abs(value: Number) -> Number:
    if type(value) is int:
        return _wrap(abs(value))  # C's llabs: abs(INT64_MIN) stays INT64_MIN
    return abs(to_float(value))


def _extreme(pick_first: Callable[[Number, Number], bool], values: tuple[Number, ...]) -> Number:
    # pgbench returns a double as soon as one argument is a double, and picks
    # with C's Min/Max macros (a < b ? a : b), which decides where NaN goes
    items: list[Number] = list(values)
    if any(isinstance(v, float) for v in items):
        items = [to_float(v) for v in items]
    else:
        items = [to_int(v) for v in items]
    result = items[0]
    for item in items[1:]:
        result = result if pick_first(result, item) else item
    return result


# name -> (min args, max args or None for any, implementation(rng, *args))
_FUNCTIONS: dict[str, tuple[int, int | None, Callable[..., Number]]] = {
    "random": (2, 2, rand_uniform),
    "random_gaussian": (3, 3, rand_gaussian),
    "random_exponential": (3, 3, rand_exponential),
    "random_zipfian": (3, 3, rand_zipfian),
    "abs": (1, 1, lambda rng, a: _abs(a)),
    "int": (1, 1, lambda rng, a: to_int(a)),
    "double": (1, 1, lambda rng, a: to_float(a)),
    "sqrt": (1, 1, lambda rng, a: _sqrt(a)),
    "ln": (1, 1, lambda rng, a: _ln(a)),
    "exp": (1, 1, lambda rng, a: _exp(a)),
    "pow": (2, 2, lambda rng, a, b: _pow(a, b)),
    "power": (2, 2, lambda rng, a, b: _pow(a, b)),
    "pi": (0, 0, lambda rng: math.pi),
    "mod": (2, 2, lambda rng, a, b: _mod(a, b)),
    "least": (1, None, lambda rng, *a: _extreme(lambda x, y: x < y, a)),
    "greatest": (1, None, lambda rng, *a: _extreme(lambda x, y: x > y, a)),
}
_RANDOM = frozenset({"random", "random_gaussian", "random_exponential", "random_zipfian"})
_KEYWORDS = frozenset({"when", "then", "else", "end", "and", "or", "not", "case"})


def function_names() -> list[str]:
    return sorted(_FUNCTIONS)


# -- the tree ---------------------------------------------------------------
#
# Constants are folded while the tree is built, so the hot path only
# computes what can change. ``depth`` is the height of what is left.


@dataclass(frozen=True, slots=True)
class _Const:
    value: Number
    depth: int = 0


@dataclass(frozen=True, slots=True)
class _Var:
    name: str
    depth: int = 1


@dataclass(frozen=True, slots=True)
class _Unary:
    op: str  # "-", "~", "not"
    arg: _Node
    depth: int


@dataclass(frozen=True, slots=True)
class _Binary:
    op: str  # a key of _BINARY, or "and" / "or" (lazy)
    left: _Node
    right: _Node
    depth: int


@dataclass(frozen=True, slots=True)
class _Case:
    branches: tuple[tuple[_Node, _Node], ...]  # (condition, value), tried in order
    otherwise: _Node
    depth: int


@dataclass(frozen=True, slots=True)
class _Call:
    name: str
    args: tuple[_Node, ...]
    depth: int


@dataclass(frozen=True, slots=True)
class _Fail:
    """A constant part that fails (1 / 0): an error when it is evaluated, not
    when it is parsed, since a CASE branch or the right side of AND / OR may
    never be; an expression that always reaches it is refused at parse time."""

    message: str
    depth: int = 0


_Node = _Const | _Var | _Unary | _Binary | _Case | _Call | _Fail


def _fold(fn: Callable[[], Number]) -> _Const | _Fail:
    try:
        return _Const(fn())
    except (EvalError, ArithmeticError, ValueError) as exc:
        return _Fail(str(exc))


def _unary(op: str, arg: _Node) -> _Node:
    if isinstance(arg, _Fail):
        return arg
    if isinstance(arg, _Const):
        value = arg.value
        return _fold(lambda: _UNARY[op](value))
    return _Unary(op, arg, arg.depth + 1)


def _binary(op: str, left: _Node, right: _Node) -> _Node:
    if isinstance(left, _Fail):
        return left
    lazy = op in ("and", "or")
    if isinstance(right, _Fail) and not lazy:
        return right
    if lazy and isinstance(left, _Const) and isinstance(right, _Const | _Fail):
        try:
            truth = to_bool(left.value)
        except EvalError as exc:
            return _Fail(str(exc))
        if truth == (op == "or"):  # decided by the left side: the right is not evaluated
            return _Const(truth)
        if isinstance(right, _Fail):
            return right
        b = right.value
        return _fold(lambda: to_bool(b))
    if isinstance(left, _Const) and isinstance(right, _Const):
        a, b = left.value, right.value
        return _fold(lambda: _BINARY[op](a, b))
    return _Binary(op, left, right, max(left.depth, right.depth) + 1)


def _call(name: str, args: list[_Node]) -> _Node:
    low, high, impl = _FUNCTIONS[name]
    if len(args) < low or (high is not None and len(args) > high):
        wanted = str(low) if low == high else f"{low}..{high if high is not None else 'n'}"
        raise ExprError(f"{name}() takes {wanted} argument(s), got {len(args)}")
    failed = next((a for a in args if isinstance(a, _Fail)), None)
    if failed is not None:
        return failed
    if all(isinstance(a, _Const) for a in args):
        values = [a.value for a in args]  # type: ignore[union-attr]
        if name not in _RANDOM:
            return _fold(lambda: impl(None, *values))
        # random_gaussian(1, 100000, 2.5): the arguments are fixed, only the
        # draw varies; one trial draw reports a bad parameter at parse time
        trial = _fold(lambda: impl(random.Random(0), *values))
        if isinstance(trial, _Fail):
            return trial
    return _Call(name, tuple(args), max((a.depth for a in args), default=0) + 1)


def _case(branches: list[tuple[_Node, _Node]], otherwise: _Node) -> _Node:
    if isinstance(branches[0][0], _Fail):  # the first condition is always evaluated
        return branches[0][0]
    depth = max(max(c.depth, v.depth) for c, v in branches)
    return _Case(tuple(branches), otherwise, max(depth, otherwise.depth) + 1)


# -- the parser: operator precedence over explicit stacks -----------------------
#
# Not recursive descent: a script may nest thousands of parentheses, as
# pgbench's bison parser allows, and Python's stack would not hold them.


@dataclass(slots=True)
class _Op:
    """A pending operator: binary (two operands) or prefix (one)."""

    text: str
    precedence: int
    binary: bool


@dataclass(slots=True)
class _Group:
    """An open parenthesis, a function call's or a CASE's."""

    kind: str  # "(" | "call" | "case"
    name: str = ""  # the function
    base: int = 0  # operands below this one belong to outer expressions
    stage: str = ""  # CASE: the last keyword read, "when", "then" or "else"


# pgbench's parser fails ("memory exhausted") past 10,000 stack entries.
MAX_NESTING = 9_997


class _Parser:
    def __init__(self, text: str, constants: Mapping[str, Number]) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.constants = constants
        self.variables: set[str] = set()
        self.operands: list[_Node] = []
        self.stack: list[_Op | _Group] = []

    def take(self) -> _Tok:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def peek(self) -> _Tok:
        return self.tokens[self.pos]

    def parse(self) -> _Node:
        if self.peek().kind == "end":
            raise ExprError("empty expression")
        want_operand = True
        while True:
            if len(self.stack) + len(self.operands) > MAX_NESTING:
                raise ExprError("expression is nested too deeply")
            tok = self.take()
            if want_operand:
                want_operand = self.operand(tok)
            elif tok.kind == "end":
                self.reduce_to_group()
                if self.stack:
                    raise ExprError(_missing(self.stack[-1]))
                return self.operands[-1]
            else:
                want_operand = self.after_operand(tok)

    # An operand is expected: a value, a prefix operator or an opening.
    # Returns whether an operand is still expected.
    def operand(self, tok: _Tok) -> bool:
        word = tok.text.lower() if tok.kind == "name" else ""
        if tok.kind == "num":
            self.operands.append(_number(tok.text))
        elif tok.kind == "var":
            self.variables.add(tok.text)
            value = self.constants.get(tok.text)
            self.operands.append(_Var(tok.text) if value is None else _Const(value))
        elif tok.kind == "op" and tok.text == "-" and self.peek().text == _INT64_MIN_TEXT:
            self.take()  # pgbench's one way to write INT64_MIN
            self.operands.append(_Const(INT64_MIN))
        elif (tok.kind == "op" and tok.text in _PREFIX) or word == "not":
            self.stack.append(_Op(word or tok.text, _PREFIX[word or tok.text], binary=False))
            return True
        elif tok.kind == "op" and tok.text == "(":
            self.stack.append(_Group("("))
            return True
        elif word in ("true", "false"):
            self.operands.append(_Const(word == "true"))
        elif word == "case":
            if self.take().text.lower() != "when":
                raise ExprError("CASE needs at least one WHEN ... THEN")
            self.stack.append(_Group("case", base=len(self.operands), stage="when"))
            return True
        elif tok.kind == "name" and word not in _KEYWORDS:
            return self.call(word)
        else:
            raise ExprError(f"unexpected {tok.text or 'end of expression'!r}")
        return False

    def call(self, name: str) -> bool:
        if name not in _FUNCTIONS:
            raise ExprError(f"unknown function {name!r}")
        tok = self.take()
        if tok.text != "(":
            raise ExprError(f"expected '(' but found {tok.text or 'end of expression'!r}")
        if self.peek().text == ")":
            self.take()
            self.operands.append(_call(name, []))
            return False
        self.stack.append(_Group("call", name=name, base=len(self.operands)))
        return True

    # An operand was just read: a binary operator, a closing or a separator.
    def after_operand(self, tok: _Tok) -> bool:
        word = tok.text.lower() if tok.kind == "name" else ""
        symbol = word if word in ("and", "or") else tok.text if tok.kind == "op" else ""
        if symbol in _PRECEDENCE:
            self.reduce_above(_PRECEDENCE[symbol])
            self.stack.append(_Op(symbol, _PRECEDENCE[symbol], binary=True))
            return True
        group = self.reduce_to_group()
        if tok.text == ")" and group is not None and group.kind in ("(", "call"):
            self.stack.pop()
            if group.kind == "call":
                args = self.operands[group.base :]
                del self.operands[group.base :]
                self.operands.append(_call(group.name, args))
            return False
        if tok.text == "," and group is not None and group.kind == "call":
            return True
        if word in ("when", "then", "else", "end") and group is not None and group.kind == "case":
            return self.case_word(word, group)
        raise ExprError(f"unexpected {tok.text!r} after expression")

    def case_word(self, word: str, group: _Group) -> bool:
        expected = {"when": ("then",), "then": ("when", "else", "end"), "else": ("end",)}
        if word not in expected[group.stage]:
            raise ExprError(f"unexpected {word!r} in CASE")
        if word == "end":
            if group.stage == "then":  # pgbench yields NULL there; dbload has no NULL to bind
                raise ExprError("CASE without ELSE is not supported")
            self.stack.pop()
            parts = self.operands[group.base :]
            del self.operands[group.base :]
            pairs = list(zip(parts[:-1:2], parts[1:-1:2], strict=True))
            self.operands.append(_case(pairs, parts[-1]))
            return False
        group.stage = word
        return True

    def reduce_above(self, precedence: int) -> None:
        """Apply the pending operators that bind at least as tightly as an
        incoming binary operator of ``precedence`` (all are left-associative
        but the comparisons, which do not associate)."""
        while self.stack and isinstance(top := self.stack[-1], _Op):
            if top.precedence < precedence:
                break
            if top.precedence == precedence:
                if precedence == _CMP and top.binary:
                    raise ExprError("comparisons do not chain: use AND (a < b AND b < c)")
                if not top.binary and top.text != "~":  # NOT and signs are right-associative
                    break
            self.apply(top)

    def reduce_to_group(self) -> _Group | None:
        while self.stack and isinstance(top := self.stack[-1], _Op):
            self.apply(top)
        return self.stack[-1] if self.stack else None  # type: ignore[return-value]

    def apply(self, op: _Op) -> None:
        self.stack.pop()
        if op.binary:
            right = self.operands.pop()
            self.operands.append(_binary(op.text, self.operands.pop(), right))
        elif op.text != "+":
            self.operands.append(_unary(op.text, self.operands.pop()))


def _missing(group: _Op | _Group) -> str:
    if isinstance(group, _Group) and group.kind == "case":
        return "expected 'end' but found 'end of expression'"
    return "expected ')' but found 'end of expression'"


def _number(text: str) -> _Const:
    if not any(c in text for c in ".eE"):
        value = int(text)
        if value > INT64_MAX:
            raise ExprError(f"bigint constant overflow ({text})")
        return _Const(value)
    number = float(text)
    mantissa = text.lower().partition("e")[0]
    # strtod's ERANGE: too large, or too small to be a normal double
    underflow = abs(number) < 2.2250738585072014e-308 and mantissa.strip("0.") != ""
    if math.isinf(number) or underflow:
        raise ExprError(f"double constant overflow ({text})")
    return _Const(number)


# -- evaluation ------------------------------------------------------------------

# Trees up to this height become nested closures (the fast path); higher
# ones are evaluated by a loop over an explicit stack, which any height fits.
_CLOSURE_DEPTH = 64


def _closure(node: _Node) -> Fn:
    if isinstance(node, _Const):
        value = node.value
        return lambda v, r: value
    if isinstance(node, _Var):
        name = node.name
        return lambda v, r: v[name]  # type: ignore[return-value]
    if isinstance(node, _Unary):
        inner, unary = _closure(node.arg), _UNARY[node.op]
        return lambda v, r: unary(inner(v, r))
    if isinstance(node, _Binary):
        return _binary_closure(node)
    if isinstance(node, _Case):
        return _case_closure(node)
    if isinstance(node, _Fail):
        return _raiser(node.message)
    return _call_closure(node)


def _raiser(message: str) -> Fn:
    def fail(v: Vars, r: random.Random) -> Number:
        raise EvalError(message)

    return fail


def _binary_closure(node: _Binary) -> Fn:
    left, right = _closure(node.left), _closure(node.right)
    if node.op == "and":
        return lambda v, r: to_bool(left(v, r)) and to_bool(right(v, r))
    if node.op == "or":
        return lambda v, r: to_bool(left(v, r)) or to_bool(right(v, r))
    fn = _BINARY[node.op]
    if isinstance(node.right, _Const):
        rv = node.right.value
        return lambda v, r: fn(left(v, r), rv)
    if isinstance(node.left, _Const):
        lv = node.left.value
        return lambda v, r: fn(lv, right(v, r))
    return lambda v, r: fn(left(v, r), right(v, r))


def _case_closure(node: _Case) -> Fn:
    pairs = tuple((_closure(c), _closure(x)) for c, x in node.branches)
    otherwise = _closure(node.otherwise)

    def evaluate(v: Vars, r: random.Random) -> Number:
        for cond, value in pairs:
            if cond(v, r):  # pgbench: non-zero numbers and true are true
                return value(v, r)
        return otherwise(v, r)

    return evaluate


def _call_closure(node: _Call) -> Fn:
    impl = _FUNCTIONS[node.name][2]
    if node.name == "random" and all(isinstance(a, _Const) for a in node.args):
        return _uniform(*(a.value for a in node.args))  # type: ignore[union-attr]
    fns = [_closure(a) for a in node.args]
    # Unrolled for the common arities: this is the hot path of \set.
    if len(fns) == 1:
        (a,) = fns
        return lambda v, r: impl(r, a(v, r))
    if len(fns) == 2:
        a, b = fns
        return lambda v, r: impl(r, a(v, r), b(v, r))
    if len(fns) == 3:
        a, b, c = fns
        return lambda v, r: impl(r, a(v, r), b(v, r), c(v, r))
    return lambda v, r: impl(r, *[f(v, r) for f in fns])


def _uniform(lb: Number, ub: Number) -> Fn:
    """random() with fixed bounds (already checked), the most common \\set of all."""
    lo, hi = _bounds(lb, ub)
    span = hi - lo + 1
    if span >= 2**52:
        return lambda v, r: _draw(r, lo, span)
    return lambda v, r: lo + int(r.random() * span)  # _draw, inlined


def _run(root: _Node, v: Vars, r: random.Random) -> Number:
    """Evaluate a tree of any height, in the same order as its closures."""
    values: list[Number] = []
    work: list[tuple[_Node, int]] = [(root, 0)]  # (node, how far along it is)
    while work:
        node, stage = work.pop()
        if isinstance(node, _Const):
            values.append(node.value)
        elif isinstance(node, _Fail):
            raise EvalError(node.message)
        elif isinstance(node, _Var):
            values.append(v[node.name])  # type: ignore[arg-type]
        elif isinstance(node, _Unary):
            if stage == 0:
                work += ((node, 1), (node.arg, 0))
            else:
                values.append(_UNARY[node.op](values.pop()))
        elif isinstance(node, _Binary) and node.op in ("and", "or"):
            if stage == 0:
                work += ((node, 1), (node.left, 0))
            elif stage == 1:
                left = to_bool(values.pop())
                if left == (node.op == "or"):  # decided without the right side
                    values.append(left)
                else:
                    work += ((node, 2), (node.right, 0))
            else:
                values.append(to_bool(values.pop()))
        elif isinstance(node, _Binary):
            if stage == 0:
                work += ((node, 1), (node.right, 0), (node.left, 0))
            else:
                b = values.pop()
                values.append(_BINARY[node.op](values.pop(), b))
        elif isinstance(node, _Case):
            branch, testing = divmod(stage, 2)  # even stage: evaluate a condition
            if not testing and branch == len(node.branches):
                work.append((node.otherwise, 0))
            elif not testing:
                work += ((node, stage + 1), (node.branches[branch][0], 0))
            elif values.pop():
                work.append((node.branches[branch][1], 0))
            else:
                work.append((node, stage + 1))
        elif stage == 0:
            work.append((node, 1))
            work += ((arg, 0) for arg in reversed(node.args))
        else:
            count = len(node.args)
            args = values[len(values) - count :]
            del values[len(values) - count :]
            values.append(_FUNCTIONS[node.name][2](r, *args))
    return values[0]


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
    tree = parser.parse()
    if isinstance(tree, _Fail):  # 1 / 0, or :scale - :scale / 0 once folded
        raise ExprError(tree.message)
    if tree.depth <= _CLOSURE_DEPTH:
        evaluate = _closure(tree)
    else:

        def evaluate(v: Vars, r: random.Random) -> Number:
            return _run(tree, v, r)

    return Expression(
        text=text.strip(BLANKS), evaluate=evaluate, variables=frozenset(parser.variables)
    )
