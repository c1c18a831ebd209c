"""pgbench's expression language for ``\\set`` and ``\\if``, compiled to closures.

An expression is parsed once, when the script is loaded, into a small tree
whose constant parts are folded away, then into Python closures; evaluating
it is then a handful of calls (the interpreter runs it once per
transaction, on the load generator's hot path). Semantics follow pgbench 15:
values are NULL (None), booleans, int64 integers and doubles; integer
arithmetic truncates toward zero like C and fails on overflow, an operation
with a double operand is double and follows C's libm (``sqrt(-1)`` is NaN,
``1.0 / 0`` is Infinity), any function of a NULL is NULL, and the random,
hash and permute functions use pgbench's algorithms; evaluated with
:func:`client_rng`'s state, the random functions draw pgbench 15's very
values for a given ``--random-seed`` and client.

Folding never fails: a constant part that fails (``1 / 0``) becomes a node
that raises :class:`EvalError` when it is evaluated, since pgbench only
fails there at run time (and a ``\\set`` in an ``\\if false`` branch never
runs). Neither the parser nor the evaluator recurses per nesting level
beyond a small bound, so an expression nested as deeply as pgbench accepts
parses and evaluates; anything that goes wrong is an :class:`ExprError`
(parse time) or an :class:`EvalError` (evaluation), nothing else.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from dbload.workload.model import Value

Number = int | float
Vars = Mapping[str, object]


class Rng(Protocol):
    """What expressions draw from: :class:`PgPrng` (pgbench's values) or a
    :class:`random.Random`."""

    def random(self) -> float: ...

    def getrandbits(self, k: int, /) -> int: ...


Fn = Callable[[Vars, Rng], Value]


class ExprError(ValueError):
    """A malformed expression; the parser adds the file and line."""


class EvalError(ArithmeticError):
    """An expression that cannot be evaluated (division by zero, bad bounds)."""


# pgbench's lexer (exprscan.l): ASCII digits and blanks only; any byte from
# 0x80 up is a letter, so a non-ASCII character may be part of a name. A
# variable's name may even start with a digit there (``:1x``).
_ALNUM = r"A-Za-z0-9_\x80-\U0010ffff"
_IDENT = rf"[A-Za-z_\x80-\U0010ffff][{_ALNUM}]*"
BLANKS = " \t\n\r\f\v"
_TOKEN = re.compile(
    rf"""[{BLANKS}]*(?:
      (?P<num>[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?
             |[0-9]+[eE][+-]?[0-9]+|[0-9]+)
    | :(?P<var>[{_ALNUM}]+)
    | (?P<name>{_IDENT})
    | (?P<op><=|>=|<>|!=|<<|>>|[-+*/%(),<>=&|#~])
    )""",
    re.VERBOSE,
)
# pg_strcasecmp folds ASCII letters only (str.lower would fold far more)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


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


# -- values: pgbench's types, its text forms and its coercions ------------------

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_UINT64 = 2**64 - 1
_INT64_MIN_TEXT = "9223372036854775808"  # only valid right after a unary minus
_DBL_MIN = 2.2250738585072014e-308  # below it strtod reports ERANGE (underflow)
_C_SPACE = " \t\n\v\f\r"  # C's isspace() in the C locale

# makeVariableValue's int test (is_an_int), then strtod's grammar in full
_INT_TEXT = re.compile(rf"[{_C_SPACE}]*[+-]?[0-9]*\Z")
_INT_STRICT = re.compile(rf"[{_C_SPACE}]*([+-]?[0-9]+)[{_C_SPACE}]*\Z")
_DEC_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_HEX_TEXT = re.compile(
    r"([+-]?)0[xX]((?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?)\Z"
)
_SPECIAL_TEXT = re.compile(r"([+-]?)(inf|infinity|nan(?:\([0-9A-Za-z_]*\))?)\Z", re.IGNORECASE)


def _strtod(text: str) -> float | None:
    """C's strtod on the whole of ``text``: None where pgbench's strtodouble
    fails (not a number, trailing characters, overflow or underflow)."""
    body = text.lstrip(_C_SPACE)
    special = _SPECIAL_TEXT.match(body)
    if special is not None:
        sign, word = special.groups()
        value = math.nan if _lower(word).startswith("nan") else math.inf
        return -value if sign == "-" else value
    hexa = _HEX_TEXT.match(body)
    if hexa is not None:
        mantissa = hexa.group(2)
        try:
            value = float.fromhex(mantissa if "p" in _lower(mantissa) else mantissa + "p0")
        except OverflowError:
            return None
        number = -value if hexa.group(1) == "-" else value
        nonzero = any(c not in "0." for c in _lower(mantissa).partition("p")[0])
    elif _DEC_TEXT.match(body):
        number = float(body)
        nonzero = any(c not in "0.+-" for c in _lower(body).partition("e")[0])
    else:
        return None
    if math.isinf(number) or (nonzero and abs(number) < _DBL_MIN):
        return None  # ERANGE
    return number


def from_text(name: str, text: str) -> Value:
    """A text variable (``-D``, ``\\gset``, ``\\setshell``) typed as pgbench's
    makeVariableValue does when an expression reads it: ``null``; prefixes of
    true/yes and false/no, on, off and of; an int64; a double (C's strtod);
    else an :class:`EvalError`."""
    if not text:  # pgbench fails silently there; say what it was
        raise EvalError(f'malformed variable "{name}" value: ""')
    low = _lower(text)
    if low == "null":
        return None
    if "true".startswith(low) or "yes".startswith(low) or low == "on":
        return True
    if "false".startswith(low) or "no".startswith(low) or low in ("off", "of"):
        return False
    if _INT_TEXT.match(text):
        digits = _INT_STRICT.match(text)
        if digits is None:  # a sign without digits, or blanks only
            raise EvalError(f'invalid input syntax for type bigint: "{text}"')
        value = int(digits.group(1))
        if not INT64_MIN <= value <= INT64_MAX:
            raise EvalError(f'value "{text}" is out of range for type bigint')
        return value
    number = _strtod(text)
    if number is None:
        raise EvalError(f'malformed variable "{name}" value: "{text}"')
    return number


def _double_text(value: float) -> str:
    """pgbench's "%.15g" through PostgreSQL's own snprintf (Infinity, NaN)."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return f"{value:.15g}"


def wire_text(value: Value) -> str:
    """The text pgbench sends for a value (its getVariable): booleans as
    true/false, ints as digits, doubles as "%.15g" (Infinity, -Infinity, NaN),
    text as it is, and NULL as the four letters ``NULL``: pgbench 15 binds
    that text (a text column gets 'NULL', an integer column an error), and in
    -M simple it lands in the SQL as the keyword NULL."""
    if type(value) is int:  # the common case first (not a bool: a subclass)
        return str(value)
    if type(value) is str:
        return value
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "NULL"
    assert isinstance(value, float)
    return _double_text(value)


def truth(value: Value) -> bool:
    """pgbench's valueTruth, which ``\\if`` / ``\\elif`` and CASE apply: NULL
    is false, a number is true unless zero (NaN is true), a boolean is
    itself; a text variable is typed first (:func:`from_text`). Never raises
    but for a malformed text value."""
    if type(value) is str:
        value = from_text("?", value)
    if value is None:
        return False
    return bool(value) if value == value else True


def debug_text(value: Value) -> str:
    """A value as pgbench's debug() prints it (after the ``debug(...): ``)."""
    if value is None:
        return "null"
    if value is True or value is False:
        return f"boolean {'true' if value else 'false'}"
    if type(value) is int:
        return f"int {value}"
    if isinstance(value, float):
        return f"double {_double_text(value)}"
    return f"text {value}"  # not reached: variables are typed when read


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "int", float: "double"}.get(type(value), "value")


def to_int(value: Value) -> int:
    """pgbench's coerceToInt: a double is rounded half-to-even (C's rint),
    so ``int(5.5)`` is 6 and ``int(-2.7)`` is -3, as pgbench prints them."""
    if type(value) is int:
        return value
    if not isinstance(value, float):
        raise EvalError(f"cannot coerce {_kind(value)} to int")
    if not math.isfinite(value):
        raise EvalError(f"double to int overflow for {_double_text(value)}")
    result = round(value)  # round() on a float is half-to-even, like rint()
    if not INT64_MIN <= result <= INT64_MAX:
        raise EvalError(f"double to int overflow for {value:f}")
    return result


def to_float(value: Value) -> float:
    if type(value) is float:
        return value
    if type(value) is not int:
        raise EvalError(f"cannot coerce {_kind(value)} to double")
    return float(value)


def to_bool(value: Value) -> bool:
    """pgbench's coerceToBool (NOT, AND, OR): only a boolean is one."""
    if value is True or value is False:
        return value
    raise EvalError(f"cannot coerce {_kind(value)} to boolean")


# -- arithmetic with pgbench's (C's) semantics --------------------------------
#
# Every operator and function but IS, debug(), AND, OR and CASE gives NULL
# when an argument is NULL (pgbench evaluates all the arguments first).


def _wrap(value: int) -> int:
    """``value`` reduced to int64 the way the machine wraps it."""
    value &= _UINT64
    return value - 2**64 if value > INT64_MAX else value


def _both_int(a: Value, b: Value) -> bool:
    """Whether pgbench computes ``a op b`` in int64 (else in doubles)."""
    if type(a) is int and type(b) is int:
        return True
    if type(a) is not float and type(b) is not float:
        # pgbench's int path when neither is a double, its double path else
        raise EvalError(f"cannot coerce {_kind(a if type(a) is not int else b)} to int")
    return False


def _checked(name: str, op: Callable[[int, int], int]) -> Callable[[Value, Value], Value]:
    def arith(a: Value, b: Value) -> Value:
        if a is None or b is None:
            return None
        if _both_int(a, b):
            result = op(a, b)  # type: ignore[arg-type]
            if not INT64_MIN <= result <= INT64_MAX:
                raise EvalError(f"bigint {name} out of range")
            return result
        return op(to_float(a), to_float(b))  # type: ignore[arg-type]

    return arith


def _div(a: Value, b: Value) -> Value:
    if a is None or b is None:
        return None
    if _both_int(a, b):
        x, y = a, b
        assert type(x) is int and type(y) is int
        if y == 0:
            raise EvalError("division by zero")
        if y == -1 and x == INT64_MIN:
            raise EvalError("bigint div out of range")
        q = abs(x) // abs(y)  # C truncates toward zero, Python's // floors
        return q if (x >= 0) == (y >= 0) else -q
    x, y = to_float(a), to_float(b)
    if y == 0.0:  # IEEE: x / 0 is a signed infinity, 0 / 0 is NaN
        if x == 0.0 or x != x:
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def _mod(a: Value, b: Value) -> Value:
    # '%' is integer-only in pgbench: doubles are coerced (rounded) first
    if a is None or b is None:
        return None
    x, y = to_int(a), to_int(b)
    if y == 0:
        raise EvalError("division by zero")
    r = abs(x) % abs(y)  # C's remainder takes the sign of the dividend
    return r if x >= 0 else -r


def _compare(op: Callable[[Number, Number], bool]) -> Callable[[Value, Value], Value]:
    """pgbench compares two ints exactly and anything else as doubles."""

    def compare(a: Value, b: Value) -> Value:
        if a is None or b is None:
            return None
        if _both_int(a, b):
            return op(a, b)  # type: ignore[arg-type]
        return op(to_float(a), to_float(b))

    return compare


def _bits(op: Callable[[int, int], int]) -> Callable[[Value, Value], Value]:
    def bits(a: Value, b: Value) -> Value:
        if a is None or b is None:
            return None
        return op(to_int(a), to_int(b))

    return bits


# C leaves an oversized or negative shift count undefined; pgbench on x86-64
# uses the count's low six bits, and a left shift wraps: what it prints.
_BINARY: dict[str, Callable[[Value, Value], Value]] = {
    "+": _checked("add", lambda a, b: a + b),
    "-": _checked("sub", lambda a, b: a - b),
    "*": _checked("mul", lambda a, b: a * b),
    "/": _div,
    "%": _mod,
    "=": _compare(lambda a, b: a == b),
    "<>": _compare(lambda a, b: a != b),
    "!=": _compare(lambda a, b: a != b),
    "<": _compare(lambda a, b: a < b),
    "<=": _compare(lambda a, b: a <= b),
    ">": _compare(lambda a, b: a > b),
    ">=": _compare(lambda a, b: a >= b),
    "&": _bits(lambda a, b: a & b),
    "|": _bits(lambda a, b: a | b),
    "#": _bits(lambda a, b: a ^ b),
    "<<": _bits(lambda a, b: _wrap(a << (b & 63))),
    ">>": _bits(lambda a, b: a >> (b & 63)),
}


def _not(a: Value) -> Value:
    return None if a is None else not to_bool(a)


_UNARY: dict[str, Callable[[Value], Value]] = {
    "-": lambda a: _BINARY["-"](0, a),  # pgbench computes 0 - x: INT64_MIN overflows
    "~": lambda a: _BINARY["#"](-1, a),  # and ~x as -1 # x
    "not": _not,
    # IS NULL / IS TRUE / IS FALSE compare type and value, NULL included
    "isnull": lambda a: a is None,
    "istrue": lambda a: a is True,
    "isfalse": lambda a: a is False,
}

# Binding strength of each binary operator, as in pgbench's exprparse.y
# (higher binds tighter); comparisons do not associate: 1 < 2 < 3 is an
# error. IS, ISNULL and NOTNULL are postfix, between NOT and comparisons.
_OR, _AND, _NOT, _IS, _CMP, _BIT, _ADD, _MUL, _SIGN = range(1, 10)
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


def _bounds(lb: Value, ub: Value) -> tuple[int, int]:
    lo, hi = to_int(lb), to_int(ub)
    if hi < lo:
        raise EvalError("empty range given to random")
    if hi - lo + 1 > INT64_MAX:
        raise EvalError("random range is too large")
    return lo, hi


def _c_f(value: float) -> str:
    """C's "%f" through PostgreSQL's snprintf, as pgbench's messages show it."""
    return f"{value:f}" if math.isfinite(value) else _double_text(value)


def _garbage(name: str, value: float) -> None:
    # a parameter pgbench's checks let through but draws garbage from
    # (a NaN, an infinite gaussian one): a script error here instead
    if value != value or (name == "gaussian" and value == math.inf):
        raise EvalError(f"{name} parameter must be a finite number (not {_c_f(value)})")


def rand_uniform(rng: Rng, lb: Value, ub: Value) -> int:
    """pgbench's getrand: pg_prng_uint64_range's bitmask rejection."""
    lo, hi = _bounds(lb, ub)
    span = hi - lo
    if span == 0:  # pg_prng_uint64_range draws nothing for an empty range
        return lo
    bits = span.bit_length()
    value = rng.getrandbits(bits)
    while value > span:
        value = rng.getrandbits(bits)
    return lo + value


def rand_gaussian(rng: Rng, lb: Value, ub: Value, param: Value) -> int:
    """pgbench 15's getGaussianRand (Box-Muller with sin; 16 moved to cos)."""
    lo, hi = _bounds(lb, ub)
    p = to_float(param)
    if p < MIN_GAUSSIAN_PARAM:
        raise EvalError(
            f"gaussian parameter must be at least {MIN_GAUSSIAN_PARAM:f} (not {_c_f(p)})"
        )
    _garbage("gaussian", p)
    while True:
        rand1 = 1.0 - rng.random()  # (0, 1]: log() stays finite
        rand2 = 1.0 - rng.random()
        stdev = math.sqrt(-2.0 * math.log(rand1)) * math.sin(2.0 * math.pi * rand2)
        if -p <= stdev < p:
            break
    fraction = (stdev + p) / (p * 2.0)
    return lo + int((hi - lo + 1) * fraction)


def rand_exponential(rng: Rng, lb: Value, ub: Value, param: Value) -> int:
    lo, hi = _bounds(lb, ub)
    p = to_float(param)
    if p <= 0.0:
        raise EvalError(f"exponential parameter must be greater than zero (not {_c_f(p)})")
    _garbage("exponential", p)
    cut = math.exp(-p)
    uniform = 1.0 - rng.random()  # (0, 1]
    fraction = -math.log(cut + (1.0 - cut) * uniform) / p
    return lo + int((hi - lo + 1) * fraction)


def rand_zipfian(rng: Rng, lb: Value, ub: Value, param: Value) -> int:
    """Devroye's rejection method, as pgbench's computeIterativeZipfian."""
    lo, hi = _bounds(lb, ub)
    s = to_float(param)
    if not MIN_ZIPFIAN_PARAM <= s <= MAX_ZIPFIAN_PARAM:  # also refuses NaN
        raise EvalError(
            f"zipfian parameter must be in range [{MIN_ZIPFIAN_PARAM:.3f}, "
            f"{MAX_ZIPFIAN_PARAM:.0f}] (not {_c_f(s)})"
        )
    n = hi - lo + 1
    if n <= 1:
        return lo
    limit = float(n)  # C compares the double x with n made a double
    b = 2.0 ** (s - 1.0)
    exponent = -1.0 / (s - 1.0)
    while True:
        u = rng.random()
        v = rng.random()
        if u == 0.0:  # C's pow(0, -k) is inf: pgbench rejects that draw
            continue
        try:
            x: int = math.floor(u**exponent)
        except OverflowError:  # C's pow() gives inf there, and pgbench rejects it
            continue
        if x > limit:  # out of range: reject early (also keeps 1/x finite)
            continue
        t = (1.0 + 1.0 / x) ** (s - 1.0)
        if v * x * (t - 1.0) / (b - 1.0) <= t / b:
            return lo - 1 + x


def _sqrt(value: Value) -> float:
    x = to_float(value)
    return math.nan if x < 0 else math.sqrt(x)


def _ln(value: Value) -> float:
    x = to_float(value)
    if x == 0.0:
        return -math.inf
    return math.nan if x < 0 else math.log(x)


def _exp(value: Value) -> float:
    try:
        return math.exp(to_float(value))
    except OverflowError:
        return math.inf


def _pow(base: Value, exponent: Value) -> float:
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


def _abs(value: Value) -> Value:
    if value is None:
        return None
    if type(value) is int:
        return _wrap(abs(value))  # C's llabs: abs(INT64_MIN) stays INT64_MIN
    if value is True or value is False:
        # pgbench reads a boolean's bytes as a double: the smallest
        # subnormal for true, zero for false (what pgbench 15 prints)
        return 5e-324 if value else 0.0
    d = to_float(value)
    return -d if d < 0.0 else d  # pgbench's own test: abs(-0.0) stays -0.0


def _extreme(pick_first: Callable[[Number, Number], bool], values: tuple[Value, ...]) -> Value:
    # pgbench returns a double as soon as one argument is a double, and picks
    # with C's Min/Max macros (a < b ? a : b), which decides where NaN goes
    items: list[Number]
    if any(type(v) is float for v in values):
        items = [to_float(v) for v in values]
    else:
        items = [to_int(v) for v in values]
    result = items[0]
    for item in items[1:]:
        result = result if pick_first(result, item) else item
    return result


# -- pgbench's hash functions, PRNG and permute() ---------------------------------

_FNV_PRIME = 0x100000001B3
_FNV_OFFSET_BASIS = 0xCBF29CE484222325
_MM2_MUL = 0xC6A4A7935BD1E995
_MM2_MUL_TIMES_8 = (_MM2_MUL * 8) & _UINT64
_MM2_ROT = 47


def hash_fnv1a(value: int, seed: int) -> int:
    """pgbench's getHashFnv1a: FNV-1a over the value's 8 bytes, low first."""
    result = _FNV_OFFSET_BASIS ^ (seed & _UINT64)
    for _ in range(8):
        result = ((result ^ (value & 0xFF)) * _FNV_PRIME) & _UINT64
        value >>= 8
    return _wrap(result)


def hash_murmur2(value: int, seed: int) -> int:
    """pgbench's getHashMurmur2: MurmurHash64A of one 8-byte word."""
    k = ((value & _UINT64) * _MM2_MUL) & _UINT64
    k = ((k ^ (k >> _MM2_ROT)) * _MM2_MUL) & _UINT64
    result = (((seed & _UINT64) ^ _MM2_MUL_TIMES_8 ^ k) * _MM2_MUL) & _UINT64
    result = ((result ^ (result >> _MM2_ROT)) * _MM2_MUL) & _UINT64
    return _wrap(result ^ (result >> _MM2_ROT))


class PgPrng:
    """PostgreSQL's pg_prng (xoroshiro128**, seeded through splitmix64): the
    state pgbench's random functions, permute() and its base sequence draw
    from. It has :class:`random.Random`'s ``random()``, ``getrandbits()``,
    ``getstate()`` and ``setstate()``, with pg_prng's values: ``random()`` is
    pg_prng_double, ``getrandbits(k)`` the top ``k`` bits of one 64-bit
    draw (what pg_prng_uint64_range shifts out), so either can be the
    ``rng`` an expression is evaluated with."""

    __slots__ = ("s0", "s1")

    def __init__(self, seed: int) -> None:
        seed &= _UINT64
        seed, self.s0 = self._splitmix64(seed)
        seed, self.s1 = self._splitmix64(seed)
        if self.s0 == 0 and self.s1 == 0:  # pg_prng_seed_check
            self.s0, self.s1 = 0x5851F42D4C957F2D, 0x14057B7EF767814F

    @staticmethod
    def _splitmix64(state: int) -> tuple[int, int]:
        state = (state + 0x9E3779B97F4A7C15) & _UINT64
        value = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _UINT64
        value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _UINT64
        return state, value ^ (value >> 31)

    # The three draws below repeat the xoroshiro128** step inline: each is a
    # hot path (a method call costs as much as the step itself). Rotations
    # are masked once, after the XORs (and the multiply by 9: only the low
    # 64 bits of its operand matter).
    def uint64(self) -> int:
        s0 = self.s0
        sx = self.s1 ^ s0
        self.s0 = (((s0 << 24) | (s0 >> 40)) ^ sx ^ (sx << 16)) & _UINT64
        self.s1 = ((sx << 37) | (sx >> 27)) & _UINT64
        x = (s0 * 5) & _UINT64
        return (((x << 7) | (x >> 57)) * 9) & _UINT64

    def getrandbits(self, k: int, /) -> int:
        """The top ``k`` (1 to 64) bits of one draw."""
        s0 = self.s0
        sx = self.s1 ^ s0
        self.s0 = (((s0 << 24) | (s0 >> 40)) ^ sx ^ (sx << 16)) & _UINT64
        self.s1 = ((sx << 37) | (sx >> 27)) & _UINT64
        x = (s0 * 5) & _UINT64
        return ((((x << 7) | (x >> 57)) * 9) & _UINT64) >> (64 - k)

    def random(self) -> float:
        """pg_prng_double: the top 52 bits of a draw, in [0, 1)."""
        s0 = self.s0
        sx = self.s1 ^ s0
        self.s0 = (((s0 << 24) | (s0 >> 40)) ^ sx ^ (sx << 16)) & _UINT64
        self.s1 = ((sx << 37) | (sx >> 27)) & _UINT64
        x = (s0 * 5) & _UINT64
        return (((((x << 7) | (x >> 57)) * 9) & _UINT64) >> 12) * _2_TO_MINUS_52

    def uint64_range(self, low: int, high: int) -> int:
        """pg_prng_uint64_range: bitmask rejection, as PostgreSQL draws."""
        if high <= low:
            return low
        span = high - low
        shift = 64 - span.bit_length()
        while True:
            value = self.uint64() >> shift
            if value <= span:
                return low + value

    def getstate(self) -> tuple[int, int]:
        return self.s0, self.s1

    def setstate(self, state: tuple[int, int]) -> None:
        self.s0, self.s1 = state


_2_TO_MINUS_52 = 2.0**-52


def client_rng(random_seed: int, client_id: int) -> PgPrng:
    """Client ``client_id``'s own state for the script's random functions,
    as pgbench 15 seeds it for ``--random-seed=random_seed``: main() seeds
    each client's state, in client order, with one draw of the base
    sequence (pg_prng seeded with the random seed). Independent of the
    number of clients, threads or mode."""
    base = PgPrng(random_seed)
    for _ in range(client_id):
        base.uint64()
    return PgPrng(base.uint64())


def default_seed(random_seed: int, clients: int) -> int:
    """pgbench's ``:default_seed`` for ``--random-seed=random_seed`` with
    ``clients`` clients: its base sequence (pg_prng seeded with the random
    seed) gives one draw to each client's own generator, then the next draw,
    as a signed int64, is the default seed of every client (checked against
    pgbench 15 for 1 to 4 clients and any -j)."""
    prng = PgPrng(random_seed)
    for _ in range(clients):
        prng.uint64()
    return _wrap(prng.uint64())


def permute(value: int, size: int, seed: int) -> int:
    """pgbench's permute(): a pseudorandom permutation of [0, size)."""
    if size <= 0:
        raise EvalError("permute size parameter must be greater than zero")
    if size < 2:
        return 0
    prng = PgPrng(seed)
    v = (value & _UINT64) % size
    masklen = size.bit_length() - 1
    mask = (1 << masklen) - 1
    for _ in range(6):
        # a random odd multiplier, XOR and rotation of the lower half...
        m = (prng.uint64() & mask) | 1
        r = prng.uint64() & mask
        if v <= mask:
            v = ((v * m) ^ r) & mask
            v = ((v << 1) & mask) | (v >> (masklen - 1))
        # ... of the upper half, then a random offset modulo the size
        m = (prng.uint64() & mask) | 1
        r = prng.uint64() & mask
        t = size - 1 - v
        if t <= mask:
            t = ((t * m) ^ r) & mask
            t = ((t << 1) & mask) | (t >> (masklen - 1))
            v = size - 1 - t
        v = (v + prng.uint64_range(0, size - 1)) % size
    return v


# -- the function table -------------------------------------------------------------


def _nullable(impl: Callable[..., Value]) -> Callable[..., Value]:
    """pgbench's rule for functions: a NULL argument makes the result NULL
    (after every argument was evaluated, so their errors still count)."""

    def call(rng: Rng, *args: Value) -> Value:
        for arg in args:
            if arg is None:
                return None
        return impl(rng, *args)

    return call


# name -> (min args, max args or None for any, implementation(rng, *args));
# hash functions and permute() take the default seed as their last argument
# when it is left out (pgbench adds :default_seed when it parses the call)
_Signature = tuple[int, int | None, Callable[..., Value]]
_STRICT: dict[str, _Signature] = {
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
    "hash": (1, 2, lambda rng, a, s: hash_murmur2(to_int(a), to_int(s))),
    "hash_murmur2": (1, 2, lambda rng, a, s: hash_murmur2(to_int(a), to_int(s))),
    "hash_fnv1a": (1, 2, lambda rng, a, s: hash_fnv1a(to_int(a), to_int(s))),
    "permute": (2, 3, lambda rng, a, n, s: permute(to_int(a), to_int(n), to_int(s))),
}
_FUNCTIONS: dict[str, _Signature] = {
    name: (low, high, _nullable(impl)) for name, (low, high, impl) in _STRICT.items()
}
# debug(x) prints x and returns it, NULL included: never folded, never NULL-strict
_FUNCTIONS["debug"] = (1, 1, lambda rng, a: a)
_RANDOM = frozenset({"random", "random_gaussian", "random_exponential", "random_zipfian"})
_SEEDED = {"hash": 2, "hash_murmur2": 2, "hash_fnv1a": 2, "permute": 3}  # full arity
_KEYWORDS = frozenset(
    {"when", "then", "else", "end", "and", "or", "not", "case", "is", "isnull", "notnull"}
    | {"null", "true", "false"}
)
DEFAULT_SEED = "default_seed"


def function_names() -> list[str]:
    return sorted(_FUNCTIONS)


# -- the tree ---------------------------------------------------------------
#
# Constants are folded while the tree is built, so the hot path only
# computes what can change. ``depth`` is the height of what is left.


@dataclass(frozen=True, slots=True)
class _Const:
    value: Value
    depth: int = 0


@dataclass(frozen=True, slots=True)
class _Var:
    name: str
    depth: int = 1


@dataclass(frozen=True, slots=True)
class _Unary:
    op: str  # a key of _UNARY
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
    otherwise: _Node  # a NULL constant when there is no ELSE
    depth: int


@dataclass(frozen=True, slots=True)
class _Call:
    name: str
    args: tuple[_Node, ...]
    depth: int


@dataclass(frozen=True, slots=True)
class _Fail:
    """A constant part that fails (1 / 0): an error when it is evaluated, not
    when it is parsed, as in pgbench (a CASE branch, the right side of AND /
    OR or a whole ``\\set`` in an ``\\if false`` branch may never be)."""

    message: str
    depth: int = 0


_Node = _Const | _Var | _Unary | _Binary | _Case | _Call | _Fail


def _fold(fn: Callable[[], Value]) -> _Const | _Fail:
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


def _lazy(op: str, left: Value, right: _Node) -> _Node | None:
    """AND / OR with a constant left side, as pgbench's evalLazyFunc: a NULL
    gives NULL and a deciding value decides, the right side unevaluated;
    None when the right side must still be evaluated."""
    if left is None:
        return _Const(None)
    try:
        decided = to_bool(left) == (op == "or")
    except EvalError as exc:
        return _Fail(str(exc))
    if decided:
        return _Const(left)
    if isinstance(right, _Fail):
        return right
    if isinstance(right, _Const):
        b = right.value
        return _fold(lambda: None if b is None else to_bool(b))
    return None


def _binary(op: str, left: _Node, right: _Node) -> _Node:
    if isinstance(left, _Fail):
        return left
    if op in ("and", "or"):
        if isinstance(left, _Const):
            folded = _lazy(op, left.value, right)
            if folded is not None:
                return folded
    elif isinstance(right, _Fail) and isinstance(left, _Const):
        return right  # else the left side runs first: it may fail, or debug()
    elif isinstance(left, _Const) and isinstance(right, _Const):
        a, b = left.value, right.value
        return _fold(lambda: _BINARY[op](a, b))
    return _Binary(op, left, right, max(left.depth, right.depth) + 1)


def _call(name: str, args: list[_Node]) -> _Node:
    low, high, impl = _FUNCTIONS[name]
    if len(args) < low or (high is not None and len(args) > high):
        wanted = str(low) if low == high else f"{low}..{high if high is not None else 'n'}"
        raise ExprError(f"{name}() takes {wanted} argument(s), got {len(args)}")
    for arg in args:  # arguments run in order: a failure after a constant is certain
        if isinstance(arg, _Fail):
            return arg
        if not isinstance(arg, _Const):
            break
    if name != "debug" and all(isinstance(a, _Const) for a in args):  # debug() prints
        values = [a.value for a in args]  # type: ignore[union-attr]
        if name not in _RANDOM or None in values:
            return _fold(lambda: impl(None, *values))
        # random_gaussian(1, 100000, 2.5): the arguments are fixed, only the
        # draw varies; one trial draw finds a bad parameter once and for all
        trial = _fold(lambda: impl(PgPrng(0), *values))
        if isinstance(trial, _Fail):
            return trial
    return _Call(name, tuple(args), max((a.depth for a in args), default=0) + 1)


def _case(branches: list[tuple[_Node, _Node]], otherwise: _Node) -> _Node:
    # Not folded further, even with constant conditions: tests wrap
    # expressions in CASE WHEN true layers to reach the deep evaluator.
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
# what may follow IS (and IS NOT): the postfix test it makes
_IS_WHAT = {"null": "isnull", "true": "istrue", "false": "isfalse"}


class _Parser:
    def __init__(self, text: str, constants: Mapping[str, Value]) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0
        self.constants = constants
        self.variables: set[str] = set()
        self.operands: list[_Node] = []
        self.stack: list[_Op | _Group] = []
        self.debugs = False

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

    def variable(self, name: str) -> _Node:
        self.variables.add(name)
        if name not in self.constants:
            return _Var(name)
        value = self.constants[name]
        if type(value) is str:  # a -D text: typed as pgbench types it, once
            text = value
            return _fold(lambda: from_text(name, text))
        if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
            return _Fail(f'value "{value}" is out of range for type bigint')
        return _Const(value)

    # An operand is expected: a value, a prefix operator or an opening.
    # Returns whether an operand is still expected.
    def operand(self, tok: _Tok) -> bool:
        word = _lower(tok.text) if tok.kind == "name" else ""
        if tok.kind == "num":
            self.operands.append(_number(tok.text))
        elif tok.kind == "var":
            self.operands.append(self.variable(tok.text))
        elif tok.kind == "op" and tok.text == "-" and self.peek().text == _INT64_MIN_TEXT:
            self.take()  # pgbench's one way to write INT64_MIN
            self.operands.append(_Const(INT64_MIN))
        elif (tok.kind == "op" and tok.text in _PREFIX) or word == "not":
            self.stack.append(_Op(word or tok.text, _PREFIX[word or tok.text], binary=False))
            return True
        elif tok.kind == "op" and tok.text == "(":
            self.stack.append(_Group("("))
            return True
        elif word in ("true", "false", "null"):
            self.operands.append(_Const({"true": True, "false": False}.get(word)))
        elif word == "case":
            if _lower(self.take().text) != "when":
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
        self.debugs = self.debugs or name == "debug"
        tok = self.take()
        if tok.text != "(":
            raise ExprError(f"expected '(' but found {tok.text or 'end of expression'!r}")
        if self.peek().text == ")":
            self.take()
            self.operands.append(self.make_call(name, []))
            return False
        self.stack.append(_Group("call", name=name, base=len(self.operands)))
        return True

    def make_call(self, name: str, args: list[_Node]) -> _Node:
        if len(args) == _SEEDED.get(name, 0) - 1:  # hash(x): hash(x, :default_seed)
            args.append(self.variable(DEFAULT_SEED))
        return _call(name, args)

    # An operand was just read: a binary operator, a postfix test, a closing
    # or a separator.
    def after_operand(self, tok: _Tok) -> bool:
        word = _lower(tok.text) if tok.kind == "name" else ""
        symbol = word if word in ("and", "or") else tok.text if tok.kind == "op" else ""
        if symbol in _PRECEDENCE:
            self.reduce_above(_PRECEDENCE[symbol])
            self.stack.append(_Op(symbol, _PRECEDENCE[symbol], binary=True))
            return True
        if word in ("is", "isnull", "notnull"):
            self.postfix(word)
            return False
        group = self.reduce_to_group()
        if tok.text == ")" and group is not None and group.kind in ("(", "call"):
            self.stack.pop()
            if group.kind == "call":
                args = self.operands[group.base :]
                del self.operands[group.base :]
                self.operands.append(self.make_call(group.name, args))
            return False
        if tok.text == "," and group is not None and group.kind == "call":
            return True
        if word in ("when", "then", "else", "end") and group is not None and group.kind == "case":
            return self.case_word(word, group)
        raise ExprError(f"unexpected {tok.text!r} after expression")

    def postfix(self, word: str) -> None:
        """``x IS [NOT] NULL|TRUE|FALSE``, ``x ISNULL``, ``x NOTNULL``: applied
        at once to the operand, once what binds tighter is applied."""
        negate = word == "notnull"
        test = "isnull"
        if word == "is":
            what = _lower(self.take().text) if self.peek().kind == "name" else ""
            if what == "not":
                negate = True
                what = _lower(self.take().text) if self.peek().kind == "name" else ""
            if what not in _IS_WHAT:
                shown = what or self.peek().text
                raise ExprError(f"IS must be followed by [NOT] NULL, TRUE or FALSE, not {shown!r}")
            test = _IS_WHAT[what]
        self.reduce_above(_IS)
        node = _unary(test, self.operands.pop())
        self.operands.append(_unary("not", node) if negate else node)

    def case_word(self, word: str, group: _Group) -> bool:
        expected = {"when": ("then",), "then": ("when", "else", "end"), "else": ("end",)}
        if word not in expected[group.stage]:
            raise ExprError(f"unexpected {word!r} in CASE")
        if word == "end":
            self.stack.pop()
            parts = self.operands[group.base :]
            del self.operands[group.base :]
            if group.stage == "then":  # no ELSE: NULL
                parts.append(_Const(None))
            pairs = list(zip(parts[:-1:2], parts[1:-1:2], strict=True))
            self.operands.append(_case(pairs, parts[-1]))
            return False
        group.stage = word
        return True

    def reduce_above(self, precedence: int) -> None:
        """Apply the pending operators that bind at least as tightly as an
        incoming operator of ``precedence`` (all are left-associative but the
        comparisons, which do not associate)."""
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
    """A numeric constant, refused at parse time where pgbench's lexer
    refuses it (strtoint64 / strtodouble on the token)."""
    if not any(c in text for c in ".eE"):
        value = int(text)
        if value > INT64_MAX:
            raise ExprError(f"bigint constant overflow ({text})")
        return _Const(value)
    number = _strtod(text)
    if number is None:
        raise ExprError(f"double constant overflow ({text})")
    return _Const(number)


# -- evaluation ------------------------------------------------------------------

# Trees up to this height become nested closures (the fast path); higher
# ones are evaluated by a loop over an explicit stack, which any height fits.
_CLOSURE_DEPTH = 64


def _lookup(v: Vars, name: str) -> Value:
    """A variable's value; a text one typed as pgbench types it."""
    try:
        value = v[name]
    except KeyError:
        raise EvalError(f'undefined variable "{name}"') from None
    if type(value) is str:
        return from_text(name, value)
    return value  # type: ignore[return-value]


def _debug(v: Vars, value: Value) -> Value:
    """debug(): one line on stderr, as pgbench prints it, with the script and
    command the interpreter passed (see :meth:`Expression.evaluate_at`)."""
    script, command = getattr(v, "debug_where", (0, 0))
    sys.stderr.write(f"debug(script={script},command={command}): {debug_text(value)}\n")
    return value


def _and_or(op: str, left: Value, right: Callable[[], Value]) -> Value:
    """pgbench's lazy AND / OR: NULL on the left gives NULL unevaluated."""
    if left is None:
        return None
    if to_bool(left) == (op == "or"):
        return left
    value = right()
    return None if value is None else to_bool(value)


def _closure(node: _Node) -> Fn:
    if isinstance(node, _Const):
        value = node.value
        return lambda v, r: value
    if isinstance(node, _Var):
        return _var_closure(node.name)
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


def _var_closure(name: str) -> Fn:
    def var(v: Vars, r: Rng) -> Value:  # _lookup, inlined
        try:
            value = v[name]
        except KeyError:
            raise EvalError(f'undefined variable "{name}"') from None
        if value.__class__ is str:
            return from_text(name, value)
        return value  # type: ignore[return-value]

    return var


def _raiser(message: str) -> Fn:
    def fail(v: Vars, r: Rng) -> Value:
        raise EvalError(message)

    return fail


def _binary_closure(node: _Binary) -> Fn:
    left, right = _closure(node.left), _closure(node.right)
    if node.op in ("and", "or"):
        op = node.op
        return lambda v, r: _and_or(op, left(v, r), lambda: right(v, r))
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

    def evaluate(v: Vars, r: Rng) -> Value:
        for cond, value in pairs:
            # truth(), inlined: NULL, false, 0 and 0.0 are false (NaN is not)
            c = cond(v, r)
            if c is not None and c != 0:
                return value(v, r)
        return otherwise(v, r)

    return evaluate


def _call_closure(node: _Call) -> Fn:
    if node.name == "debug":
        arg = _closure(node.args[0])
        return lambda v, r: _debug(v, arg(v, r))
    if all(isinstance(a, _Const) for a in node.args):  # a random draw, never NULL here
        if node.name == "random":
            return _uniform(*(a.value for a in node.args))  # type: ignore[union-attr]
        values = tuple(a.value for a in node.args)  # type: ignore[union-attr]
        draw = _STRICT[node.name][2]
        return lambda v, r: draw(r, *values)
    fns = [_closure(a) for a in node.args]
    if len(fns) > 3:
        impl = _FUNCTIONS[node.name][2]
        return lambda v, r: impl(r, *[f(v, r) for f in fns])
    return _strict_call(_STRICT[node.name][2], fns)


def _strict_call(raw: Callable[..., Value], fns: list[Fn]) -> Fn:
    """A call of 1 to 3 arguments, unrolled (the hot path of \\set), with
    pgbench's NULL rule checked inline."""
    if len(fns) == 1:
        (a,) = fns

        def call1(v: Vars, r: Rng) -> Value:
            x = a(v, r)
            return None if x is None else raw(r, x)

        return call1
    if len(fns) == 2:
        a, b = fns

        def call2(v: Vars, r: Rng) -> Value:
            x, y = a(v, r), b(v, r)
            return None if x is None or y is None else raw(r, x, y)

        return call2
    a, b, c = fns

    def call3(v: Vars, r: Rng) -> Value:
        x, y, z = a(v, r), b(v, r), c(v, r)
        return None if x is None or y is None or z is None else raw(r, x, y, z)

    return call3


def _uniform(lb: Value, ub: Value) -> Fn:
    """random() with fixed bounds (already checked), the most common \\set of
    all: rand_uniform with the range's bit count worked out once."""
    lo, hi = _bounds(lb, ub)
    span = hi - lo
    if span == 0:
        return lambda v, r: lo
    bits = span.bit_length()

    def draw(v: Vars, r: Rng) -> Value:
        value = r.getrandbits(bits)
        while value > span:
            value = r.getrandbits(bits)
        return lo + value

    return draw


def _run(root: _Node, v: Vars, r: Rng) -> Value:
    """Evaluate a tree of any height, in the same order as its closures."""
    values: list[Value] = []
    work: list[tuple[_Node, int]] = [(root, 0)]  # (node, how far along it is)
    while work:
        node, stage = work.pop()
        if isinstance(node, _Const):
            values.append(node.value)
        elif isinstance(node, _Fail):
            raise EvalError(node.message)
        elif isinstance(node, _Var):
            values.append(_lookup(v, node.name))
        elif isinstance(node, _Unary):
            if stage == 0:
                work += ((node, 1), (node.arg, 0))
            else:
                values.append(_UNARY[node.op](values.pop()))
        elif isinstance(node, _Binary) and node.op in ("and", "or"):
            if stage == 0:
                work += ((node, 1), (node.left, 0))
            elif stage == 1:
                left = values.pop()
                if left is None or to_bool(left) == (node.op == "or"):
                    values.append(left)  # decided without the right side
                else:
                    work += ((node, 2), (node.right, 0))
            else:
                right = values.pop()
                values.append(None if right is None else to_bool(right))
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
            elif truth(values.pop()):
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
            if node.name == "debug":
                values.append(_debug(v, args[0]))
            else:
                values.append(_FUNCTIONS[node.name][2](r, *args))
    return values[0]


class DebugEnv(Mapping[str, object]):
    """Variables seen through, with the place debug() names: pgbench's
    ``script=N,command=M`` (the script's index, the command's 1-based number
    in it, every SQL and meta-command counted as pgbench counts them)."""

    __slots__ = ("debug_where", "env")

    def __init__(self, env: Vars, script: int, command: int) -> None:
        self.env = env
        self.debug_where = (script, command)

    def __getitem__(self, name: str) -> object:
        return self.env[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.env)

    def __len__(self) -> int:
        return len(self.env)


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled expression and the variables it reads.

    ``evaluate(env, rng)`` is the hot path. ``failure`` is the error every
    evaluation raises when the expression always fails (``1 / 0``); pgbench
    only finds it when it runs the command, and so does ``evaluate``.
    ``debugs``: the expression calls debug(); evaluate it with
    :meth:`evaluate_at` so that the line it prints names the command."""

    text: str
    evaluate: Fn
    variables: frozenset[str]
    failure: str | None = None
    debugs: bool = field(default=False)

    def evaluate_at(self, env: Vars, rng: Rng, script: int, command: int) -> Value:
        """``evaluate``, with the script index and 1-based command number
        that debug() prints (costs nothing more when there is no debug())."""
        if not self.debugs:
            return self.evaluate(env, rng)
        return self.evaluate(DebugEnv(env, script, command), rng)


def compile_expression(text: str, constants: Mapping[str, Value] | None = None) -> Expression:
    """Parse ``text``; raises :class:`ExprError` with a short reason for what
    pgbench refuses when it parses the script (syntax, unknown function,
    argument count, constant overflow), never for what it only finds when
    it evaluates (that is :class:`EvalError`, from ``evaluate``).

    ``constants`` are variables whose value is fixed for the whole stream
    (``:scale``, ``-D`` values, ``:default_seed``): they are folded into the
    compiled code. A text constant is typed as pgbench types it.
    """
    parser = _Parser(text, constants or {})
    tree = parser.parse()
    if tree.depth <= _CLOSURE_DEPTH:
        evaluate = _closure(tree)
    else:

        def evaluate(v: Vars, r: Rng) -> Value:
            return _run(tree, v, r)

    return Expression(
        text=text.strip(BLANKS),
        evaluate=evaluate,
        variables=frozenset(parser.variables),
        failure=tree.message if isinstance(tree, _Fail) else None,
        debugs=parser.debugs,
    )
