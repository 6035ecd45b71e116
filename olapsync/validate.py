"""Validate and reshape source batches with Polars lazy frames. Pure: Arrow in, Arrow out.

Each batch is split into clean rows, cast to the exact Arrow types ClickHouse stores, and
rejected rows, each with every reason it failed and its source values as JSON. Nothing is
clamped or dropped silently: a row is loaded unchanged, rejected with a reason, or counted
as an orphan (its parent row is gone).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa

from olapsync.errors import SourceError
from olapsync.specs import NONFINITE, Column, TableSpec
from olapsync.window import DATETIME_MAX, DATETIME_MIN

# What became of each source row (`Split.status`).
CLEAN, REJECTED, ORPHAN = 0, 1, 2
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_REASON = "__reason"
_BAD = "__bad"
_CODED = "__coded_"  # a LowCardinality column as Categorical, carried beside its text


@dataclass(frozen=True)
class Split:
    """One validated batch.

    clean: rows ready to insert, with the spec's Arrow types.
    rejected: columns `key`, `reason`, `source_row` (JSON), one row per rejected row.
    orphans: clean rows left out because their parent row does not exist.
    status: one code per input row, in input order: `CLEAN`, `REJECTED` or `ORPHAN`
        (UInt8), so a caller can follow each source row to what became of it.
    """

    clean: pa.Table
    rejected: pl.DataFrame
    orphans: int
    status: pl.Series = field(default_factory=lambda: pl.Series("status", [], pl.UInt8))

    @property
    def rows(self) -> int:
        return int(self.clean.num_rows) + self.rejected.height + self.orphans


def _accepts(col: Column, dtype: pl.DataType) -> bool:
    if col.kind in ("int32", "int64"):
        return dtype.is_integer()
    if col.kind == "float64":
        return dtype.is_numeric()
    if col.kind == "datetime":
        return isinstance(dtype, pl.Datetime | pl.Date)
    return dtype in (pl.String, pl.Null)


def check_schema(schema: pl.Schema, spec: TableSpec) -> None:
    """Fail clearly when a source column is missing or of a type that cannot be loaded.

    Raises:
        SourceError: naming the column, its source type and the expected kind.
    """
    for col in spec.columns:
        if col.name not in schema:
            raise SourceError(
                f"Source table {spec.source_table!r} returned no column {col.name!r}: "
                "check the table or the spec."
            )
        dtype = schema[col.name]
        if dtype != pl.Null and not _accepts(col, dtype):
            raise SourceError(
                f"Source column {spec.source_table}.{col.source or col.name} has type {dtype}, "
                f"which cannot be loaded as {col.ch_type}: fix the source or the spec."
            )


def _normalize(col: Column, dtype: pl.DataType) -> pl.Expr:
    """Lossless reshaping before the checks: every timestamp becomes UTC."""
    expr = pl.col(col.name)
    if col.kind != "datetime":
        return expr
    if isinstance(dtype, pl.Date):
        return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return expr.dt.convert_time_zone("UTC")
    if isinstance(dtype, pl.Datetime):
        return expr.dt.replace_time_zone("UTC")
    return expr.cast(pl.Datetime("us", "UTC"))


Check = tuple[pl.Expr, pl.Expr]  # (the row fails, why)


def _flagged(frame: pl.DataFrame) -> frozenset[str]:
    """The columns whose values the source query could flag (see `specs.NONFINITE`): the
    keys of any one flag object, as every object names all of them."""
    if NONFINITE not in frame.schema:
        return frozenset()
    first = frame.get_column(NONFINITE).drop_nulls().head(1).to_list()
    return frozenset(json.loads(first[0])) if first else frozenset()


def _flag(col: Column, flagged: frozenset[str]) -> pl.Expr | None:
    """The source text of this column's value where it did not convert, else NULL."""
    if col.name not in flagged:
        return None
    return pl.col(NONFINITE).str.json_path_match(f"$['{col.name}']")


def _flag_reason(col: Column, flag: pl.Expr) -> pl.Expr:
    if col.kind == "datetime":
        return pl.format(f"{col.name} is '{{}}'", flag)
    what = "a finite number" if col.kind == "float64" else "a whole number"
    base = col.ch_type.removeprefix("Nullable(").removesuffix(")")
    return pl.format(f"{col.name} '{{}}' is not {what} in the {base} range", flag)


def _column_checks(col: Column, flagged: frozenset[str]) -> list[Check]:
    c = pl.col(col.name)
    checks: list[Check] = []
    flag = _flag(col, flagged)
    if not col.nullable:
        is_null = c.is_null() if flag is None else c.is_null() & flag.is_null()
        checks.append((is_null, pl.lit(f"{col.name} is NULL")))
    if flag is not None:
        checks.append((flag.is_not_null(), _flag_reason(col, flag)))
    if col.kind == "datetime":
        checks.append(
            (
                (c < DATETIME_MIN) | (c > DATETIME_MAX),
                pl.format(
                    f"{col.name} {{}} is outside the ClickHouse DateTime range "
                    "1970-01-01 00:00:00..2106-02-07 06:28:15 UTC",
                    c.dt.strftime("%Y-%m-%d %H:%M:%S%.f"),
                ),
            )
        )
    elif col.kind in _INT_RANGES:
        lo, hi = _INT_RANGES[col.kind]
        checks.append(
            (~c.is_between(lo, hi), pl.format(f"{col.name} {{}} does not fit {col.ch_type}", c))
        )
    elif col.kind == "float64":
        checks.append(
            (
                ~c.cast(pl.Float64).is_finite(),
                pl.format(f"{col.name} {{}} is not a finite number", c),
            )
        )
    return checks


def _source_row_json(frame_schema: pl.Schema, spec: TableSpec, flagged: frozenset[str]) -> pl.Expr:
    """The source values as JSON text, with NaN/Infinity and timestamps kept readable, and
    a value that did not convert shown as its source text."""
    kinds = {c.name: c for c in spec.columns}
    fields = []
    for name, dtype in frame_schema.items():
        if name in (_REASON, NONFINITE) or name.startswith(_CODED):
            continue
        expr = pl.col(name)
        if dtype.is_float() or dtype.is_decimal():
            expr = expr.cast(pl.String)
        elif isinstance(dtype, pl.Datetime):
            expr = expr.dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ")
        flag = _flag(kinds[name], flagged) if name in kinds else None
        if flag is not None:
            expr = pl.coalesce(expr.cast(pl.String), flag)
        fields.append(expr.alias(name))
    return pl.struct(fields).struct.json_encode()


def _rule_fails(ok: pl.Expr, frame: pl.DataFrame, coded: list[str]) -> pl.Expr | None:
    """True for the rows a rule rejects; None when it rejects none of this batch.

    A rule on a single LowCardinality column is judged on the column's distinct values (a
    rule judges each row by its own values), and only the rows holding a rejected value fail.
    """
    fails = ~ok.fill_null(True)
    names = ok.meta.root_names()
    if len(set(names)) != 1 or names[0] not in coded:
        return fails
    name = names[0]
    distinct = frame.get_column(_CODED + name).unique().cast(pl.String).to_frame(name)
    bad = distinct.filter(fails).get_column(name)
    if bad.is_empty():
        return None
    expr = pl.col(name).is_in(bad.drop_nulls().implode())
    return expr | pl.col(name).is_null() if bad.null_count() else expr


def validate(
    batch: pa.RecordBatch | pa.Table | pl.DataFrame,
    spec: TableSpec,
    parents: pl.Series | None = None,
) -> Split:
    """Split one source batch into clean, rejected and orphan rows.

    Args:
        batch: rows as read from PostgreSQL by `spec.source_query()`.
        spec: the table's spec.
        parents: the parent keys that exist (e.g. the new user ids); rows whose
            `spec.parent` column is not among them are orphans. None disables the check.

    Returns:
        A `Split`; `clean` has exactly the spec's columns and Arrow types.

    Raises:
        SourceError: a column is missing or has a type that cannot be loaded.

    Example:
        >>> import pyarrow as pa
        >>> from olapsync.specs import TableSpec, Column
        >>> spec = TableSpec("t", "crm", "t", (Column("id", "int64"),), key="id")
        >>> validate(pa.table({"id": [1, None]}), spec).rejected["reason"].to_list()
        ['id is NULL']
    """
    frame = batch if isinstance(batch, pl.DataFrame) else pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    check_schema(frame.schema, spec)
    if NONFINITE in frame.schema and frame[NONFINITE].null_count() == frame.height:
        # Every value of this batch converted: its NULLs are plain NULLs.
        frame = frame.drop(NONFINITE)
    flagged = _flagged(frame)
    # LowCardinality columns go to ClickHouse as Categorical, so they are encoded once, here;
    # a rule on one of them is then judged once per distinct value, not once per row.
    coded = [
        c.name for c in spec.columns if c.low_cardinality and frame.schema[c.name] == pl.String
    ]
    frame = frame.with_columns(pl.col(n).cast(pl.Categorical).alias(_CODED + n) for n in coded)

    checks: list[Check] = []
    for col in spec.columns:
        checks += _column_checks(col, flagged)
    for rule in spec.rules:
        why = pl.lit(rule.reason) if isinstance(rule.reason, str) else rule.reason
        fails = _rule_fails(rule.ok, frame, coded)
        if fails is not None:
            checks.append((fails, why))
    if spec.quarantine is False:
        key = pl.col(spec.key)
        checks.append(
            (
                key.is_duplicated() & key.is_not_null(),
                pl.format(f"{spec.key} {{}} appears more than once", key),
            )
        )
    # One cheap boolean pass over every row; reasons are spelled out for the bad ones only.
    bad = pl.any_horizontal(f.fill_null(False) for f, _ in checks) if checks else pl.lit(False)
    checked = (
        frame.lazy()
        .with_columns(_normalize(col, frame.schema[col.name]) for col in spec.columns)
        .with_columns(bad.alias(_BAD))
        .collect()
    )
    if checked.get_column(_BAD).any():
        good = checked.filter(~pl.col(_BAD))
        quarantine = _quarantine(checked.filter(pl.col(_BAD)), checks, spec, flagged)
    else:  # the usual batch: nothing to spell out
        good, quarantine = checked, pl.DataFrame(schema=_QUARANTINE_SCHEMA)
    bad_rows = checked.get_column(_BAD)
    status = bad_rows.cast(pl.UInt8)
    orphans = 0
    if parents is not None and spec.parent is not None:
        known = checked.get_column(spec.parent[1]).is_in(parents.implode()).fill_null(True)
        orphan_rows = ~bad_rows & ~known
        orphans = int(orphan_rows.sum())
        if orphans:
            good = good.filter(known.filter(~bad_rows))
            status = status + orphan_rows.cast(pl.UInt8) * ORPHAN

    types = spec.arrow_types()
    casts = []
    for col in spec.columns:
        expr = pl.col(_CODED + col.name if col.name in coded else col.name)
        if col.kind == "datetime":
            # Whole seconds: ClickHouse DateTime has no fraction; the docs say so.
            expr = expr.dt.epoch("s")
        casts.append(expr.cast(types[col.name], strict=True).alias(col.name))
    clean = good.select(casts).rechunk().to_arrow()
    return Split(clean=clean, rejected=quarantine, orphans=orphans, status=status.alias("status"))


_QUARANTINE_SCHEMA = {"key": pl.Int64, "reason": pl.String, "source_row": pl.String}


def _quarantine(
    bad: pl.DataFrame, checks: list[Check], spec: TableSpec, flagged: frozenset[str]
) -> pl.DataFrame:
    """The rejected rows: key, every reason each one failed, and its source values as JSON."""
    rejected = bad.with_columns(
        pl.concat_str(
            [pl.when(f.fill_null(False)).then(why) for f, why in checks],
            separator="; ",
            ignore_nulls=True,
        ).alias(_REASON)
    ).drop(_BAD)
    return rejected.select(
        pl.col(spec.key).cast(pl.Int64, strict=False).alias("key"),
        pl.col(_REASON).alias("reason"),
        _source_row_json(rejected.schema, spec, flagged).alias("source_row"),
    )
