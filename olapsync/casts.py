"""How a source column of a PostgreSQL type is read as its spec's kind. Pure: SQL text only.

The rule (issue 15, item 6): every column is converted to its kind inside the source query,
so the reader only ever receives types it reads exactly. A value that does not convert
arrives as NULL, with its source text in the row's flag column (`specs.NONFINITE`), and
validation rejects the row with a reason. The guards are comparisons and regular expressions,
which cannot fail, and a conversion runs only where its guard holds (inside a CASE, whose
branches PostgreSQL evaluates lazily), so no value can make the query fail.

    kind       read as it is                   converted behind a guard      refused
    int32/64   smallint, integer, bigint (1)   numeric, real, double; text   anything else
    float64    real, double, smallint,         numeric; text                 anything else
               integer, bigint (2)
    string     text                            any type, by its text output  -
    datetime   timestamp, timestamptz, date (3)                              anything else

(1) validation rejects a value outside the kind's range ("does not fit Int32").
(2) a float64 column holds the nearest double of a source number: numeric with more
    significant digits than a double keeps (15-17), or a bigint beyond 2^53, loads rounded
    to nearest, as PostgreSQL's own `numeric::float8` and ClickHouse's `toFloat64` round.
    The seed types signal_amplitude as a float; a value beyond the double range (above
    1.7976931348623157e308, or nonzero below 4.9406564584124654e-324 in magnitude), NaN
    and Infinity are rejected.
(3) 'infinity' and '-infinity' are flagged (as before: the guard is one isfinite() call,
    so the seed's timestamps cost what they did). Any finite value reaches validation,
    which rejects what ClickHouse DateTime cannot hold (outside 1970..2106); connectorx
    decodes years up to 262143 (chrono's limit), and a later one (PostgreSQL allows 294276)
    fails the read with one SourceError line.

A column whose type is a domain is first cast to the domain's base type (which readers
know); `char(n)` loses its trailing blanks, as `::text` does in PostgreSQL; a text value is a
number only in plain decimal notation (no hexadecimal, no digit separators, at most 1000
characters).
"""

from __future__ import annotations

from dataclasses import dataclass

INTEGERS = frozenset({"int2", "int4", "int8"})
FLOATS = frozenset({"float4", "float8"})
TIMESTAMPS = frozenset({"timestamp", "timestamptz", "date"})
# Kinds, and the base types each reads as they are.
AS_IS: dict[str, frozenset[str]] = {
    "int32": INTEGERS,
    "int64": INTEGERS,
    "float64": INTEGERS | FLOATS,
    "string": frozenset({"text"}),
    "datetime": TIMESTAMPS,
}
_PG_INT = {"int32": "int4", "int64": "int8"}
# Half-open ranges [lo, hi): both bounds are exact in numeric and in double precision.
_INT_RANGE = {
    "int32": ("-2147483648", "2147483648"),
    "int64": ("-9223372036854775808", "9223372036854775808"),
}
# The largest finite double and the smallest positive one (a subnormal), rounded toward
# zero, so that every value inside converts without an overflow or underflow error.
_DOUBLE_MAX = "1.7976931348623157e308"
_DOUBLE_MIN = "4.9406564584124654e-324"
# POSIX classes rather than backslash escapes: the same text whatever
# standard_conforming_strings says.
_INTEGER_TEXT = "^[[:space:]]*[+-]?[0-9]+[[:space:]]*$"
_NUMBER_TEXT = "^[[:space:]]*[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]{1,4})?[[:space:]]*$"


@dataclass(frozen=True)
class SourceType:
    """A source column's type, as PostgreSQL's catalog describes it.

    Attributes:
        declared: the type as declared, for messages (`format_type`, e.g. "numeric(12,4)").
        base: `pg_type.typname` of the type, or of a domain's base type (e.g. "numeric").
        category: `pg_type.typcategory` of the base type ("N" numeric, "S" string, ...).
        base_sql: the base type as a cast target (`regtype` text, qualified when needed).
        domain: the column's type is a domain over `base`.
    """

    declared: str
    base: str
    category: str
    base_sql: str = ""
    domain: bool = False


@dataclass(frozen=True)
class Conversion:
    """How one column is read.

    value: SQL giving the value as the kind (NULL where `ok` fails).
    ok: SQL that is false exactly for a non-NULL value that does not convert (NULL or true
        otherwise); None when every value converts.
    """

    value: str
    ok: str | None = None


def convert(kind: str, src: str, source_type: SourceType | None) -> Conversion | None:
    """How to read the column `src` (quoted SQL) as `kind`; None when its type cannot be.

    Without a `source_type` the column is taken to be of the type its kind reads as is (text
    output for a string, a timestamp for a datetime).
    """
    if source_type is None:
        if kind == "string":
            return Conversion(f"{src}::text")
        return _timestamp(src) if kind == "datetime" else Conversion(src)
    base = source_type.base
    x = f"{src}::{source_type.base_sql or base}" if source_type.domain else src
    if kind == "string":
        return Conversion(src if base == "text" and not source_type.domain else f"{src}::text")
    if kind == "datetime":
        return _timestamp(x) if base in TIMESTAMPS else None
    if base in AS_IS[kind]:
        return Conversion(x)
    if kind in _PG_INT:
        lo, hi = _INT_RANGE[kind]
        target = _PG_INT[kind]
        if base == "numeric" or base in FLOATS:
            ok = f"({x} = trunc({x}) AND {x} >= {lo} AND {x} < {hi})"
        elif source_type.category == "S":
            text = f"{x}::text"
            within = f"{text}::numeric >= {lo} AND {text}::numeric < {hi}"
            ok = _text_guard(text, _INTEGER_TEXT, within)
        else:
            return None
        return Conversion(f"CASE WHEN {ok} THEN {x}::{target} END", ok)
    if kind == "float64":
        if base == "numeric":
            ok = _double_range(x)
            return Conversion(f"CASE WHEN {ok} THEN {x}::float8 END", ok)
        if source_type.category == "S":
            text = f"{x}::text"
            ok = _text_guard(text, _NUMBER_TEXT, _double_range(f"{text}::numeric"))
            return Conversion(f"CASE WHEN {ok} THEN {text}::float8 END", ok)
    return None


def _timestamp(x: str) -> Conversion:
    ok = f"isfinite({x})"
    return Conversion(f"CASE WHEN {ok} THEN {x} END", ok)


def _double_range(number: str) -> str:
    """True for a numeric that converts to a double without overflow or underflow; NaN and
    the infinities sort above every number in PostgreSQL, so they fail too."""
    return f"(abs({number}) <= {_DOUBLE_MAX} AND ({number} = 0 OR abs({number}) >= {_DOUBLE_MIN}))"


def _text_guard(text: str, pattern: str, within: str) -> str:
    # The numeric cast in `within` runs only on text the pattern accepted (CASE is lazy;
    # AND is not guaranteed to be), and the length bound keeps it inside numeric's range.
    return (
        f"({text} IS NULL OR CASE WHEN length({text}) <= 1000 AND {text} ~ '{pattern}' "
        f"THEN {within} ELSE false END)"
    )
