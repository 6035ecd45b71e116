"""Parity between PostgreSQL and ClickHouse for the refresh benchmark: per month a row count
and a checksum that both engines compute identically from the same rows, plus the same for
the users table as a whole.

The checksum of a set of rows is the exact sum of h(row) over its rows, where

    h(row) = the first 8 bytes of md5(text(row)), read as a signed big-endian 64-bit integer
    text(row) = the row's columns in table order, joined by '|', each rendered as
        integers     decimal                                   42, -7
        strings      their UTF-8 text as stored                biceps
        floats       the 16 lowercase hex digits of the IEEE 754 bits, big-endian
                     (no decimal text to round: 0.1 -> 3fb999999999999a, -0.0 differs from 0.0)
        timestamps   whole seconds since 1970-01-01 UTC, truncated (ClickHouse's DateTime
                     holds whole seconds, so PostgreSQL's microseconds are cut the same way)
        NULL         \\N

PostgreSQL sums in `numeric` and ClickHouse in `Int128`, so neither overflows. The sum is
order-independent, and a change of any one value changes text(row) and so, but for an md5
collision in the first 64 bits, the sum. Parity compares what ClickHouse holds with what
olapsync should hold: the source rows of users that exist in the CRM.

Pure: the SQL text for both engines and the comparison; the callers run it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from olapsync.specs import TELEMETRY, USERS, Column, TableSpec, quote_ident

NULL_TEXT = "\\N"


def _pg_value(col: Column) -> str:
    src = col.source_ident
    if col.kind == "float64":
        text = f"encode(float8send({src}), 'hex')"
    elif col.kind == "datetime":
        text = f"floor(extract(epoch FROM {src}))::bigint::text"
    else:
        text = f"{src}::text"
    return f"coalesce({text}, '{NULL_TEXT}')"


def _ch_value(col: Column) -> str:
    name = f"`{col.name}`"
    if col.kind == "float64":
        text = f"lower(leftPad(hex(reinterpretAsUInt64({name})), 16, '0'))"
    elif col.kind == "datetime":
        text = f"toString(toUnixTimestamp({name}))"
    else:
        text = f"toString({name})"
    # ClickHouse string literals take backslash escapes; PostgreSQL's standard ones do not.
    null = NULL_TEXT.replace("\\", "\\\\")
    return f"ifNull({text}, '{null}')" if col.nullable else text


def pg_row_hash(spec: TableSpec) -> str:
    """The PostgreSQL expression for h(row) of `spec`'s source table (bigint)."""
    text = " || '|' || ".join(_pg_value(c) for c in spec.columns)
    return f"('x' || left(md5({text}), 16))::bit(64)::bigint"


def ch_row_hash(spec: TableSpec) -> str:
    """The ClickHouse expression for h(row) of `spec`'s table (Int64)."""
    text = ", '|', ".join(_ch_value(c) for c in spec.columns)
    return f"reinterpretAsInt64(reverse(substring(MD5(concat({text})), 1, 8)))"


def _pg_month(spec: TableSpec) -> str:
    ts = spec.column(spec.time_column or "").source_ident
    return f"(extract(year FROM {ts}) * 100 + extract(month FROM {ts}))::int"


def pg_months_sql(spec: TableSpec = TELEMETRY) -> str:
    """Per month (`YYYYMM`): rows and checksum of the source rows whose parent (the user)
    is in the bound array `%(parents)s`."""
    parent_col = spec.column(spec.parent[1] if spec.parent else spec.key).source_ident
    return (
        f"SELECT {_pg_month(spec)} AS month, count(*), coalesce(sum({pg_row_hash(spec)}), 0) "
        f"FROM {quote_ident(spec.source_table)} WHERE {parent_col} = ANY(%(parents)s) "
        "GROUP BY 1 ORDER BY 1"
    )


def ch_months_sql(database: str, spec: TableSpec = TELEMETRY) -> str:
    """Per month (`toYYYYMM` of the time column): rows and checksum of the target table."""
    return (
        f"SELECT toYYYYMM(`{spec.time_column}`) AS month, count(), "
        f"sum(toInt128({ch_row_hash(spec)})) FROM `{database}`.`{spec.name}` "
        "GROUP BY month ORDER BY month"
    )


def pg_table_sql(spec: TableSpec = USERS) -> str:
    """Rows and checksum of a whole source table."""
    return (
        f"SELECT count(*), coalesce(sum({pg_row_hash(spec)}), 0) "
        f"FROM {quote_ident(spec.source_table)}"
    )


def ch_table_sql(database: str, spec: TableSpec = USERS) -> str:
    """Rows and checksum of a whole target table."""
    return f"SELECT count(), sum(toInt128({ch_row_hash(spec)})) FROM `{database}`.`{spec.name}`"


@dataclass
class Fingerprints:
    """Per month `YYYYMM` -> (rows, checksum), and (rows, checksum) of the users table."""

    months: dict[int, tuple[int, int]] = field(default_factory=dict)
    users: tuple[int, int] = (0, 0)

    @classmethod
    def from_rows(cls, months: Sequence[Sequence[Any]], users: Sequence[Any]) -> Fingerprints:
        return cls(
            {int(m): (int(n), int(s or 0)) for m, n, s in months},
            (int(users[0]), int(users[1] or 0)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "months": {str(m): list(v) for m, v in self.months.items()},
            "users": list(self.users),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fingerprints:
        return cls(
            {int(m): (int(v[0]), int(v[1])) for m, v in data["months"].items()},
            (int(data["users"][0]), int(data["users"][1])),
        )


@dataclass(frozen=True)
class Parity:
    """How ClickHouse compares with what it should hold. `differ`: months whose count or
    checksum differs, including months present on one side only; `users_exact`: the users
    table as a whole."""

    months: int
    differ: tuple[int, ...]
    users_exact: bool

    @property
    def exact(self) -> bool:
        return not self.differ and self.users_exact

    def describe(self) -> str:
        if self.exact:
            return f"exact ({self.months} months, users)"
        parts = []
        if self.differ:
            shown = ", ".join(str(m) for m in self.differ[:4])
            more = f" +{len(self.differ) - 4}" if len(self.differ) > 4 else ""
            parts.append(f"{len(self.differ)} of {self.months} months differ ({shown}{more})")
        if not self.users_exact:
            parts.append("users differ")
        return "NOT exact: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exact": self.exact,
            "months": self.months,
            "differ": list(self.differ),
            "users_exact": self.users_exact,
        }


def compare(expected: Fingerprints, found: Fingerprints) -> Parity:
    """Compare ClickHouse's fingerprints (`found`) with PostgreSQL's (`expected`)."""
    months = sorted(set(expected.months) | set(found.months))
    differ = tuple(m for m in months if expected.months.get(m) != found.months.get(m))
    return Parity(len(months), differ, expected.users == found.users)
