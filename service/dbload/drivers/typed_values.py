"""A script's values (text, as pgbench binds them) as the Python objects
asyncpg binds under SQLAlchemy, by the type the server gave each parameter.

pgbench, psycopg and dbload's own asyncpg driver send the text and let the
server parse it; SQLAlchemy's asyncpg dialect encodes Python objects by the
parameter's type, in the client. So a text the type cannot take must fail
here as the server would have failed it, with its SQLSTATE and message
(``1.5`` into an int4 is 22P02, ``3000000000`` is 22003), not as a
ValueError out of the worker or asyncpg's catch-all 22000. The dates and
times are read in ISO 8601, which the server reads too; the other forms
it takes ("Jan 1 2024") fail here.
"""

from __future__ import annotations

import datetime
import decimal
import re
from collections.abc import Callable
from typing import Any

INVALID_TEXT = "22P02"  # invalid_text_representation
OUT_OF_RANGE = "22003"  # numeric_value_out_of_range
BAD_DATETIME = "22007"  # invalid_datetime_format
FIELD_OUT_OF_RANGE = "22008"  # datetime_field_overflow
BAD_PARAMETER = "22023"  # invalid_parameter_value: what bytea's hex input raises

Convert = Callable[[str], Any]


class ValueRejected(Exception):
    """A value its parameter's type cannot take, refused before it is sent,
    with the SQLSTATE and message the server gives for that text."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message


def _syntax(type_name: str, value: str, code: str = INVALID_TEXT) -> ValueRejected:
    return ValueRejected(code, f'invalid input syntax for type {type_name}: "{value}"')


_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")


def _integer(type_name: str, low: int, high: int) -> Convert:
    def convert(value: str) -> int:
        if _INTEGER.fullmatch(value) is None:  # int() would take "1_000" and "٣"
            raise _syntax(type_name, value)
        number = int(value)
        if not low <= number <= high:
            raise ValueRejected(
                OUT_OF_RANGE, f'value "{value}" is out of range for type {type_name}'
            )
        return number

    return convert


def _float(type_name: str) -> Convert:
    def convert(value: str) -> float:
        try:
            return float(value)
        except ValueError:
            raise _syntax(type_name, value) from None

    return convert


def _numeric(value: str) -> decimal.Decimal:
    try:
        return decimal.Decimal(value.strip())
    except decimal.InvalidOperation:
        raise _syntax("numeric", value) from None


# PostgreSQL's boolean input: these words, any unique prefix of them
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _bool(value: str) -> bool:
    text = value.strip().lower()
    if text and text not in ("o",):  # "o": on or off
        if any(word.startswith(text) for word in _TRUE):
            return True
        if any(word.startswith(text) for word in _FALSE):
            return False
    raise _syntax("boolean", value)


# the shape of an ISO date or time: a value of that shape that does not
# parse has a field out of range (month 13), as the server says
_ISO_SHAPED = re.compile(r"[0-9][0-9 :+\-.T]*")


def _datetime(type_name: str, parse: Callable[[str], Any]) -> Convert:
    def convert(value: str) -> Any:
        try:
            return parse(value.strip())
        except ValueError:
            if _ISO_SHAPED.fullmatch(value.strip()):
                message = f'date/time field value out of range: "{value}"'
                raise ValueRejected(FIELD_OUT_OF_RANGE, message) from None
            raise _syntax(type_name, value, BAD_DATETIME) from None

    return convert


def _bytea(value: str) -> bytes:
    """bytea's input: hex (``\\x0102``) or the escape format."""
    if value.startswith("\\x"):
        return _hex(value[2:])
    out = bytearray()
    i = 0
    while i < len(value):
        char = value[i]
        if char != "\\":
            out += char.encode()
            i += 1
        elif value[i + 1 : i + 2] == "\\":
            out.append(0x5C)
            i += 2
        elif re.fullmatch(r"[0-3][0-7]{2}", value[i + 1 : i + 4]):
            out.append(int(value[i + 1 : i + 4], 8))
            i += 4
        else:
            raise _syntax("bytea", value)
    return bytes(out)


def _hex(digits: str) -> bytes:
    """The server's hex format (its hex_decode): pairs of digits, blanks
    between the pairs, refused with its messages."""
    out = bytearray()
    i = 0
    while i < len(digits):
        if digits[i] in " \t\n\r":
            i += 1
            continue
        pair = digits[i : i + 2]
        for char in pair:
            if char not in _HEX:
                raise ValueRejected(BAD_PARAMETER, f'invalid hexadecimal digit: "{char}"')
        if len(pair) < 2:
            raise ValueRejected(BAD_PARAMETER, "invalid hexadecimal data: odd number of digits")
        out.append(int(pair, 16))
        i += 2
    return bytes(out)


_HEX = frozenset("0123456789abcdefABCDEF")


def _keep(value: str) -> str:
    return value


FROM_TEXT: dict[str, Convert] = {
    "int2": _integer("smallint", -(2**15), 2**15 - 1),
    "int4": _integer("integer", -(2**31), 2**31 - 1),
    "int8": _integer("bigint", -(2**63), 2**63 - 1),
    "oid": _integer("oid", 0, 2**32 - 1),
    "float4": _float("real"),
    "float8": _float("double precision"),
    "numeric": _numeric,
    "bool": _bool,
    "bytea": _bytea,
    "date": _datetime("date", datetime.date.fromisoformat),
    "timestamp": _datetime("timestamp without time zone", datetime.datetime.fromisoformat),
    "timestamptz": _datetime("timestamp with time zone", datetime.datetime.fromisoformat),
    "time": _datetime("time without time zone", datetime.time.fromisoformat),
}


def converter(type_name: str) -> Convert:
    """How a value for a parameter of this type (pg_type's name) is bound:
    the text itself for a type asyncpg takes as text (text, varchar, ...)."""
    return FROM_TEXT.get(type_name, _keep)
