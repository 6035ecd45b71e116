"""Per-month fingerprints, `(rows, sum of 64-bit row hashes mod 2^64)` over every loaded
column, so that a run can tell which months changed since they were loaded (a sum: an XOR
cancels duplicated rows). PostgreSQL and ClickHouse hash differently: each side is compared
only with its own earlier value (source now vs at load, target now vs what the load wrote).

Pure: this module builds SQL and folds results; the I/O helpers take a `rows(sql, params)`
callable (a source snapshot's, a ClickHouse target's) and so run in the caller's snapshot.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl

from olapsync.errors import SourceError
from olapsync.specs import TableSpec, quote_ident

MOD = 1 << 64
FP_COLUMN = "__fp"
# The key of a table fingerprinted as a whole: ClickHouse's partition id of an unpartitioned table.
WHOLE = "all"

# Runs a query with bound parameters, returns its rows: `Snapshot.rows` (a tuple for `%s`)
# on the source side, `Target.rows` (a dict for `{name:Type}`) on the target.
Rows = Callable[[str, Any], Sequence[Sequence[Any]]]


@dataclass(frozen=True)
class Fingerprint:
    """A set of rows: how many, and the sum of their row hashes mod 2^64 (in [0, 2^64)).
    Fingerprints add and subtract like the sets they stand for (disjoint union, removal)."""

    rows: int = 0
    hash: int = 0
    EMPTY: ClassVar[Fingerprint]

    def __post_init__(self) -> None:
        if not 0 <= self.hash < MOD:
            raise ValueError(f"hash {self.hash} is not in [0, 2^64): use Fingerprint.of().")

    @classmethod
    def of(cls, rows: Any, hash: Any) -> Fingerprint:
        """From a database's count and sum (int, Decimal or None for an empty sum), mod 2^64."""
        return cls(int(rows), int(hash or 0) % MOD)

    def __add__(self, other: Fingerprint) -> Fingerprint:
        return Fingerprint(self.rows + other.rows, (self.hash + other.hash) % MOD)

    def __sub__(self, other: Fingerprint) -> Fingerprint:
        return Fingerprint(self.rows - other.rows, (self.hash - other.hash) % MOD)

    @property
    def hex(self) -> str:
        return f"{self.hash:016x}"

    def __str__(self) -> str:
        return f"{self.rows} rows #{self.hex[:8]}"

    def to_dict(self) -> dict[str, Any]:
        """`{"rows": int, "hash": "16 hex digits"}`: JSON readers lose integers above 2^53."""
        return {"rows": self.rows, "hash": self.hex}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fingerprint:
        """The inverse of `to_dict` (the hash as hex text or an int)."""
        value = data["hash"]
        return cls.of(data["rows"], int(value, 16) if isinstance(value, str) else value)


Fingerprint.EMPTY = Fingerprint()


def combine(*parts: Mapping[Any, Fingerprint]) -> dict[Any, Fingerprint]:
    """Per key, the sum of the fingerprints of `parts` (e.g. of the batches of one read)."""
    out: dict[Any, Fingerprint] = {}
    for part in parts:
        for key, fp in part.items():
            out[key] = out.get(key, Fingerprint.EMPTY) + fp
    return out


# ---- PostgreSQL -------------------------------------------------------------------------------

# `format_type` spellings (and common aliases) to `pg_type.typname`.
_PG_ALIASES = {
    **{"smallint": "int2", "integer": "int4", "int": "int4", "bigint": "int8", "real": "float4"},
    **{"double precision": "float8", "decimal": "numeric", "boolean": "bool"},
    **{"character varying": "varchar", "character": "bpchar"},
    **{"timestamp without time zone": "timestamp", "timestamp with time zone": "timestamptz"},
}
EPOCH_DATE = "DATE '1970-01-01'"
_TEXT = 'hashtextextended({x}::text COLLATE "C", {s})'  # "C": bytes, whatever the collation
_FLOAT = "(hashfloat8extended({x}::float8, {s}) # CASE WHEN {x} = 0 AND atan2({x}, -1) < 0 THEN {k} ELSE 0 END)"
# One hash per type, by its own extended hash function: no text conversion, exact, and
# independent of TimeZone, DateStyle and extra_float_digits. Each is in PostgreSQL 14+,
# immutable and parallel-safe.
_PG_HASHES = {
    "int2": "hashint4extended({x}, {s})",
    "int4": "hashint4extended({x}, {s})",
    "int8": "hashint8extended({x}, {s})",
    # PostgreSQL's float hash, like its `=`, takes -0.0 for 0.0, which ClickHouse does not
    # (atan2 runs on zeros only). float4 -> float8 is exact.
    "float4": _FLOAT,
    "float8": _FLOAT,
    # The numeric hash ignores the display scale (1.5 = 1.50), which the text shows.
    "numeric": "(hash_numeric_extended({x}, {s}) # coalesce(scale({x}), -1))",
    **dict.fromkeys(["text", "varchar", "bpchar", "citext", "name"], _TEXT),
    "timestamp": "timestamp_hash_extended({x}, {s})",  # the stored microseconds
    "timestamptz": "timestamp_hash_extended({x} AT TIME ZONE 'UTC', {s})",
    # date - date fails on ±infinity, whose text does not depend on DateStyle.
    "date": f"CASE WHEN isfinite({{x}}) THEN hashint4extended({{x}} - {EPOCH_DATE}, {{s}}) "
    "ELSE hashtextextended({x}::text, {s}) END",
    "uuid": "uuid_hash_extended({x}, {s})",
    "bool": "hashint4extended({x}::int4, {s})",
}
_OTHER = "hashtextextended({x}::text, {s})"


def pg_type(name: str) -> str:
    """A PostgreSQL type as `format_type` or `pg_type.typname` spells it, as its typname:
    'character varying(20)' -> 'varchar', 'timestamp(3) with time zone' -> 'timestamptz'."""
    bare = re.sub(r"\s*\([^)]*\)", "", name).strip().lower()
    bare = bare.rsplit(".", 1)[-1].strip('"')  # pg_catalog.int4, public."citext"
    return _PG_ALIASES.get(bare, bare)


def _null_constant(seed: int) -> int:
    """A fixed, arbitrary int8 standing for NULL in column `seed`."""
    digest = hashlib.blake2b(f"olapsync null {seed}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def pg_column_hash(expr: str, type_name: str, seed: int) -> str:
    """An int8 SQL expression hashing `expr` (of type `type_name`) with `seed`; never NULL
    (NULL is a constant of the column's own). Other types hash their text."""
    template = _PG_HASHES.get(pg_type(type_name), _OTHER)
    h = template.format(x=f"({expr})", s=seed, k=_null_constant(-seed))
    return f"coalesce({h}, {_null_constant(seed)})"


def pg_row_hash(columns: Sequence[tuple[str, str]]) -> str:
    """An int8 SQL expression hashing a row of `columns`, (SQL expression, e.g. a quoted name;
    PostgreSQL type name): the XOR of their hashes, each seeded with its position from 1 (a
    value moved to another column changes it). Raises ValueError without columns."""
    if not columns:
        raise ValueError("a row hash needs at least one column")
    return " # ".join(pg_column_hash(e, t, i) for i, (e, t) in enumerate(columns, 1))


def pg_day(expr: str, type_name: str) -> str:
    """The day number (days since 1970-01-01 UTC, int4) of a timestamp, timestamptz or date
    expression, NULL for NULL and ±infinity (else ValueError): cheaper than `date_trunc`."""
    x, t = f"({expr})", pg_type(type_name)
    if t not in ("timestamp", "timestamptz", "date"):
        raise ValueError(f"time column {expr} is {type_name}: use a timestamp, timestamptz or date")
    date = {"timestamp": f"{x}::date", "timestamptz": f"({x} AT TIME ZONE 'UTC')::date"}.get(t, x)
    return f"CASE WHEN isfinite({x}) THEN {date} - {EPOCH_DATE} END"


def pg_fingerprint_sql(
    table: str, columns: Sequence[tuple[str, str]], time_column: str | None, where: str = ""
) -> str:
    """One aggregate pass over `table` (unquoted, may be schema-qualified): `(day, count, sum
    of row hashes)` per day of `time_column` (one of `columns`' expressions, else ValueError),
    or one row `(NULL, count, sum)` when it is None. The sum is an exact numeric, NULL over
    no rows; `months_from_days` folds the rows into months."""
    src = f"{quote_ident(table)}{' WHERE ' + where if where else ''}"
    row_hash = pg_row_hash(columns)
    if time_column is None:
        return f"SELECT NULL::int4 AS day, count(*), sum({row_hash}) FROM {src}"
    types = dict(columns)
    if time_column not in types:
        raise ValueError(f"time column {time_column} is not one of the hashed columns")
    day = pg_day(time_column, types[time_column])
    # LIMIT ALL keeps the subquery from being pulled up. Pulled up, the planner estimates
    # one group per distinct timestamp (~every row) and sorts every row; behind the fence it
    # assumes few days and aggregates in its parallel workers (Partial HashAggregate).
    return (
        f"SELECT day, count(*), sum(h) FROM (SELECT {day} AS day, {row_hash} AS h "
        f"FROM {src} LIMIT ALL) AS fp GROUP BY day"
    )


def day_to_month(day: int) -> str:
    """The `YYYYMM` month (proleptic Gregorian, as ClickHouse's `toYYYYMM`) of day number
    `day` (days since 1970-01-01), for any year PostgreSQL can store."""
    # H. Hinnant, "chrono-Compatible Low-Level Date Algorithms", civil_from_days.
    z = day + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    return f"{yoe + era * 400 + (month <= 2):04d}{month:02d}"


def months_from_days(rows: Iterable[Sequence[Any]]) -> dict[str | None, Fingerprint]:
    """Fold `(day, count, sum)` rows into `YYYYMM` months; a NULL day (no time, or ±infinity)
    goes to the None bucket. Months outside ClickHouse's DateTime range are ordinary keys."""
    out: dict[str | None, Fingerprint] = {}
    for day, count, total in rows:
        key = None if day is None else day_to_month(int(day))
        out[key] = out.get(key, Fingerprint.EMPTY) + Fingerprint.of(count, total)
    return out


_PER_DAY = {"ns": 86_400_000_000_000, "us": 86_400_000_000, "ms": 86_400_000}


def fingerprints_from_batch(
    batch: Any, time_column: str | None, hash_column: str = FP_COLUMN
) -> dict[str | None, Fingerprint]:
    """Per month, what `pg_fingerprint_sql` gives over the rows of `batch` (a Polars frame,
    Arrow table or record batch) read with `pg_row_hash(...) AS __fp`; `combine` the batches.
    `time_column`: a Datetime (naive = UTC) or Date, NULL for a NULL or ±infinite source time;
    None: one `WHOLE` bucket. Raises ValueError when it is neither a Datetime nor a Date."""
    frame = batch if isinstance(batch, pl.DataFrame) else pl.DataFrame(pl.from_arrow(batch))
    h = pl.col(hash_column).cast(pl.Int64)
    # Halves whose sums cannot overflow an Int64 below 2^31 rows: exact, whatever Polars
    # does on overflow.
    sums = [pl.len().alias("n"), (h // (1 << 32)).sum().alias("hi"), (h % (1 << 32)).sum()]
    if time_column is None:
        n, hi, lo = frame.select(sums).row(0)
        return {WHOLE: Fingerprint.of(n, (hi << 32) + lo)}
    dtype = frame.schema[time_column]
    if isinstance(dtype, pl.Datetime):
        unit = dtype.time_unit or "us"
        day = pl.col(time_column).dt.epoch(unit) // _PER_DAY[unit]
    elif dtype == pl.Date:
        day = pl.col(time_column).cast(pl.Int32)
    else:
        raise ValueError(f"time column {time_column!r} is {dtype}: use a Datetime or a Date")
    grouped = frame.group_by(day.alias("day")).agg(sums)
    return months_from_days((d, n, (hi << 32) + lo) for d, n, hi, lo in grouped.iter_rows())


# ---- ClickHouse -------------------------------------------------------------------------------


def _ch_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def ch_row_hash(columns: Sequence[str]) -> str:
    """A UInt64 ClickHouse expression hashing a row of the named columns.

    `cityHash64(tuple(...))`: it equals `cityHash64(a, b, ...)` on a row without NULLs, but
    hashes a NULL as a value of its own, where the bare form returns NULL and `sum` would skip
    the row. Numbers hash by their bits (-0.0 is not 0.0), DateTime by its seconds,
    LowCardinality by its values.
    """
    if not columns:
        raise ValueError("a row hash needs at least one column")
    return f"cityHash64(tuple({', '.join(map(_ch_ident, columns))}))"


def ch_fingerprint_sql(
    qualified_table: str,
    columns: Sequence[str],
    partitions: Sequence[str] | None = None,
    partitioned: bool = True,
) -> tuple[str, dict[str, Any]]:
    """`(partition id, count, sum of row hashes)` per partition of `qualified_table` (only
    `partitions` when given, bound as a parameter); unpartitioned, one row `(WHOLE, ...)`.
    `sum` of UInt64 wraps mod 2^64. Works on any engine that can be SELECTed (`Join` too)."""
    fp = f"count(), sum({ch_row_hash(columns)})"
    if not partitioned:
        return f"SELECT '{WHOLE}', {fp} FROM {qualified_table}", {}
    if partitions is None:
        return f"SELECT _partition_id, {fp} FROM {qualified_table} GROUP BY 1", {}
    return (
        f"SELECT _partition_id, {fp} FROM {qualified_table} "
        "WHERE _partition_id IN {partitions:Array(String)} GROUP BY 1",
        {"partitions": list(partitions)},
    )


# ---- I/O through a `rows` callable --------------------------------------------------------------

# (column name, typname) of the table its one parameter names (quoted); a domain as its base
# type (one level: a domain over a domain hashes its text, exact but slower).
CATALOG_SQL = (
    "SELECT a.attname::text, b.typname::text FROM pg_attribute a "
    "JOIN pg_type t ON t.oid = a.atttypid "
    "JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END "
    "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
)


def catalog_columns(rows: Rows, table: str) -> list[tuple[str, str]]:
    """(column name, typname) of PostgreSQL `table` (unquoted); SourceError if it is missing."""
    found = [(str(n), str(t)) for n, t in rows(CATALOG_SQL, (quote_ident(table),))]
    if not found:
        raise SourceError(f"Table {table!r} is not in PostgreSQL: check its name in the spec.")
    return found


def pg_columns(spec: TableSpec, catalog: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """`spec`'s columns as (quoted source name, type) for `pg_row_hash`, in the spec's order;
    SourceError when one is not in `catalog`."""
    types = dict(catalog)
    out = []
    for col in spec.columns:
        name = col.source or col.name
        if name not in types:
            raise SourceError(
                f"Column {name!r} is not in PostgreSQL table {spec.source_table!r}: "
                "add it there or fix the table spec."
            )
        out.append((col.source_ident, types[name]))
    return out


def ch_columns(spec: TableSpec) -> list[str]:
    """`spec`'s columns as ClickHouse names for `ch_row_hash`, in the same order."""
    return [col.name for col in spec.columns]


def pg_time_column(spec: TableSpec) -> str | None:
    """The quoted source column months are cut on, or None for a table taken as a whole."""
    if spec.partition_by is None or spec.time_column is None:
        return None
    return spec.column(spec.time_column).source_ident


def source_fingerprints(
    rows: Rows, spec: TableSpec, where: str = ""
) -> dict[str | None, Fingerprint]:
    """Per `YYYYMM` month of the source rows of `spec` matching `where` (None: no usable
    time), or `{WHOLE: ...}` for an unpartitioned table. One catalog query and one pass."""
    columns = pg_columns(spec, catalog_columns(rows, spec.source_table))
    time = pg_time_column(spec)
    result = rows(pg_fingerprint_sql(spec.source_table, columns, time, where), ())
    if time is None:
        return {WHOLE: Fingerprint.of(result[0][1], result[0][2])}
    return months_from_days(result)


def target_fingerprints(
    rows: Rows, spec: TableSpec, qualified_table: str, partitions: Sequence[str] | None = None
) -> dict[str, Fingerprint]:
    """Per partition id of ClickHouse `qualified_table` (shaped as `spec`), only `partitions`
    when given; a partition without rows is absent. `{WHOLE: ...}` when unpartitioned."""
    if partitions is not None and not partitions:
        return {}
    partitioned = spec.partition_by is not None
    sql, params = ch_fingerprint_sql(
        qualified_table, ch_columns(spec), partitions if partitioned else None, partitioned
    )
    return {str(p): Fingerprint.of(n, h) for p, n, h in rows(sql, params)}
