"""Table specs as data: one declaration per table, from which DDL, source queries, Arrow
schemas and validation rules all derive. Pure: no I/O.

The two seed tables ship as `USERS` and `telemetry_spec()`; a user can declare another
`TableSpec` the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from olapsync.casts import Conversion, SourceType, convert
from olapsync.errors import SourceError

Kind = Literal["int32", "int64", "float64", "string", "datetime"]

_CH_TYPES: dict[str, str] = {
    "int32": "Int32",
    "int64": "Int64",
    "float64": "Float64",
    "string": "String",
    "datetime": "DateTime('UTC')",
}
POLARS_TYPES: dict[str, pl.DataType] = {
    "int32": pl.Int32(),
    "int64": pl.Int64(),
    "float64": pl.Float64(),
    "string": pl.String(),
    # ClickHouse DateTime is UInt32 seconds; sending that avoids a conversion on insert.
    "datetime": pl.UInt32(),
}
# The one extra source column: NULL for a row whose values all converted to their kinds (or
# are NULL), else a JSON object {column: source text | null} naming each value that did not:
# a timestamp that is 'infinity' or '-infinity', a number that is NaN or out of its kind's
# range, text that is not a number. One mostly-NULL column instead of a flag per
# column: every column read costs PostgreSQL and connectorx time on every row. (The name is
# older than the numbers it now also carries.)
NONFINITE = "__nonfinite"


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, possibly schema-qualified, safely double-quoted."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


@dataclass(frozen=True)
class Column:
    """One column: its ClickHouse name and kind, and where it comes from.

    Args:
        name: column name in ClickHouse (and, unless `source` says otherwise, PostgreSQL).
        kind: the value kind; it fixes the ClickHouse type and the range checks.
        nullable: NULL allowed; otherwise a NULL rejects the row.
        low_cardinality: store as `LowCardinality(String)` (few distinct values).
        source: the PostgreSQL column name, when it differs from `name`.
    """

    name: str
    kind: Kind
    nullable: bool = False
    low_cardinality: bool = False
    source: str | None = None

    @property
    def ch_type(self) -> str:
        base = _CH_TYPES[self.kind]
        if self.low_cardinality:
            base = f"LowCardinality({base})"
        return f"Nullable({base})" if self.nullable else base

    @property
    def source_ident(self) -> str:
        """The quoted name of this column in the source table."""
        return quote_ident(self.source or self.name)

    def conversion(self, source_type: SourceType | None = None) -> Conversion | None:
        """How this column is read as its kind from a source column of `source_type` (None:
        of the type the kind reads as it is); None when that type cannot be (see
        `olapsync.casts`)."""
        return convert(self.kind, self.source_ident, source_type)


@dataclass(frozen=True)
class Rule:
    """A row-level check beyond types and NULLs.

    Args:
        name: short name, for listings.
        ok: a Polars expression, True for a good row (NULL counts as good: NULLs are the
            column's own check). It judges each row by that row's values alone (no
            aggregations: rows are validated in batches); a rule on a single LowCardinality
            column is therefore evaluated once per distinct value.
        reason: an expression (or fixed text) saying why a row failed.
    """

    name: str
    ok: pl.Expr = field(compare=False)
    reason: pl.Expr | str = field(compare=False)


@dataclass(frozen=True)
class TableSpec:
    """Everything olapsync knows about one table.

    Args:
        name: ClickHouse table name (staging is `<name>_staging`, quarantine
            `<name>_rejected`).
        source: which source URL it is read from: "crm" or "telemetry".
        source_table: PostgreSQL table, optionally schema-qualified.
        columns: the columns, in ClickHouse order.
        key: unique row id (primary key in the source).
        engine: ClickHouse engine clause, e.g. "MergeTree" or "Join(ANY, LEFT, user_id)".
        partition_by: ClickHouse PARTITION BY expression, or None.
        order_by: ClickHouse ORDER BY columns (MergeTree only).
        load: "full" reloads the whole table each run; "window" replaces time partitions.
        time_column: the column windows and partitions are cut on ("window" load).
        rules: extra row checks.
        quarantine: rejected rows go to `<name>_rejected` (True) or fail the run (False).
        parent: (table, column) this table's rows must reference; rows whose parent is
            gone are orphans and are not loaded.
        watermark: the column that says when a row reached the source (a `datetime`
            column), which `sync` reads new and late rows by; None: no sync.
    """

    name: str
    source: Literal["crm", "telemetry"]
    source_table: str
    columns: tuple[Column, ...]
    key: str
    engine: str = "MergeTree"
    partition_by: str | None = None
    order_by: tuple[str, ...] = ()
    load: Literal["full", "window"] = "full"
    time_column: str | None = None
    rules: tuple[Rule, ...] = ()
    quarantine: bool = False
    parent: tuple[str, str] | None = None
    watermark: str | None = None

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate column names in {names}")
        if self.key not in names:
            raise ValueError(f"{self.name}: key {self.key!r} is not a column")
        if self.load == "window" and (self.time_column not in names or not self.partition_by):
            raise ValueError(f"{self.name}: a window load needs time_column and partition_by")

    @property
    def staging(self) -> str:
        return f"{self.name}_staging"

    @property
    def rejected(self) -> str:
        return f"{self.name}_rejected"

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def is_merge_tree(self) -> bool:
        return self.engine.endswith("MergeTree")

    def ddl(self, database: str, table: str | None = None, *, settings: str = "") -> str:
        """`CREATE TABLE IF NOT EXISTS` for the target (or a same-shaped `table`)."""
        cols = ",\n    ".join(f"`{c.name}` {c.ch_type}" for c in self.columns)
        if self.is_merge_tree:
            cols += f",\n    {self.key_index}"
        parts = [f"CREATE TABLE IF NOT EXISTS `{database}`.`{table or self.name}` (\n    {cols}\n)"]
        parts.append(f"ENGINE = {self.engine}")
        if self.partition_by:
            parts.append(f"PARTITION BY {self.partition_by}")
        if self.is_merge_tree:
            parts.append(f"ORDER BY ({', '.join(self.order_by) or 'tuple()'})")
            if settings:
                parts.append(f"SETTINGS {settings}")
        return "\n".join(parts)

    @property
    def key_index(self) -> str:
        """A skip index on the key: the range of keys in each granule (ClickHouse docs,
        "Data skipping indexes", minmax). Asking whether some ids are in the table then reads
        only granules whose range could hold them; new ids, above every range, cost about
        nothing. A sync asks that for every row it appends."""
        return f"INDEX key_range `{self.key}` TYPE minmax GRANULARITY 1"

    def rejected_ddl(self, database: str, *, settings: str = "") -> str:
        key_type = _CH_TYPES[self.column(self.key).kind]
        return (
            f"CREATE TABLE IF NOT EXISTS `{database}`.`{self.rejected}` (\n"
            "    `run_id` String,\n"
            "    `rejected_at` DateTime('UTC'),\n"
            f"    `{self.key}` Nullable({key_type}),\n"
            "    `reason` String,\n"
            "    `source_row` String\n"
            ")\nENGINE = MergeTree\nORDER BY (run_id, rejected_at)"
            + (f"\nSETTINGS {settings}" if settings else "")
        )

    def source_query(
        self,
        where: str = "",
        *,
        types: Mapping[str, SourceType] | None = None,
        relation: str | None = None,
        extra: Sequence[str] = (),
    ) -> str:
        """The SELECT that reads this table from PostgreSQL.

        Args:
            where: a condition on source columns, or "".
            types: each source column's type (by source name), as the catalog says; every
                column is then converted to its kind (see `olapsync.casts`). None: the
                types each kind reads as they are.
            relation: what to read FROM (quoted SQL, e.g. `ONLY "s"."t_2026_01"`), when
                not `source_table`.
            extra: more SELECT expressions, after the columns (e.g. the row hash the
                source fingerprint sums, `olapsync.fingerprint.FP_COLUMN`).

        Values that do not convert come as NULL; the `NONFINITE` column names them.

        Raises:
            SourceError: a column is missing from `types`, or of a type its kind cannot
                be read from.
        """
        exprs, guards = [], []
        for col in self.columns:
            source_type = self._source_type(col, types)
            conv = col.conversion(source_type)
            if conv is None:
                assert source_type is not None
                raise SourceError(
                    f"Source column {self.source_table}.{col.source or col.name} has type "
                    f"{source_type.declared}, which cannot be loaded as {col.ch_type}: fix the "
                    "source or the spec."
                )
            exprs.append(f"{conv.value} AS {quote_ident(col.name)}")
            if conv.ok is not None:
                guards.append((col.name, col.source_ident, conv.ok))
        if guards:
            all_ok = " AND ".join(ok for _, _, ok in guards)
            fields = ", ".join(
                f"'{name.replace(chr(39), chr(39) * 2)}', CASE WHEN NOT {ok} THEN {src}::text END"
                for name, src, ok in guards
            )
            exprs.append(
                f"CASE WHEN NOT ({all_ok}) THEN json_build_object({fields})::text END "
                f"AS {quote_ident(NONFINITE)}"
            )
        exprs.extend(extra)
        sql = f"SELECT {', '.join(exprs)} FROM {relation or quote_ident(self.source_table)}"
        return f"{sql} WHERE {where}" if where else sql

    def _source_type(
        self, col: Column, types: Mapping[str, SourceType] | None
    ) -> SourceType | None:
        if types is None:
            return None
        name = col.source or col.name
        if name not in types:
            raise SourceError(
                f"Source table {self.source_table!r} has no column {name!r}: "
                "check the table or the spec."
            )
        return types[name]

    def arrow_types(self) -> dict[str, pl.DataType]:
        """The Polars (hence Arrow) type each column has when it is inserted.

        LowCardinality columns go as Arrow dictionaries, which ClickHouse takes as they are
        instead of hashing every string again.
        """
        return {
            c.name: pl.Categorical() if c.low_cardinality else POLARS_TYPES[c.kind]
            for c in self.columns
        }


def row_signature(spec: TableSpec) -> str:
    """A short signature of what a row hash covers (the columns, in order, their kinds and
    source names): fingerprints recorded under another signature say nothing about the rows
    now (`olapsync.partitions.MonthRecord.signature`)."""
    text = "|".join(f"{c.name}:{c.kind}:{c.source or c.name}" for c in spec.columns)
    return hashlib.sha256(f"v1|{spec.source_table}|{text}".encode()).hexdigest()[:16]


USERS = TableSpec(
    name="users",
    source="crm",
    source_table="users",
    key="user_id",
    columns=(
        Column("user_id", "int32"),
        Column("user_uuid", "string"),
        Column("name", "string"),
        Column("email", "string"),
        Column("age", "int32", nullable=True),
        Column("gender", "string", nullable=True),
        Column("country", "string", nullable=True),
        Column("address", "string", nullable=True),
        Column("phone", "string", nullable=True),
        Column("registration_ts", "datetime"),
        Column("registered_at", "datetime"),
    ),
    engine="Join(ANY, LEFT, user_id)",
    load="full",
    # A user that cannot be loaded fails the run: dropping it would delete its telemetry
    # as orphans.
    quarantine=False,
)

DEFAULT_PROSTHESIS_TYPES = ("arm", "hand", "leg")


def telemetry_spec(prosthesis_types: tuple[str, ...] = DEFAULT_PROSTHESIS_TYPES) -> TableSpec:
    """The seed's `telemetry_events`, accepting the given prosthesis types."""
    allowed = ", ".join(prosthesis_types)
    return TableSpec(
        name="telemetry_events",
        source="telemetry",
        source_table="telemetry_events",
        key="id",
        columns=(
            Column("id", "int64"),
            Column("user_id", "int32"),
            Column("prosthesis_type", "string", low_cardinality=True),
            Column("muscle_group", "string", low_cardinality=True),
            Column("signal_frequency", "int32"),
            Column("signal_duration", "int32"),
            Column("signal_amplitude", "float64"),
            Column("event_timestamp", "datetime"),
            Column("saved_ts", "datetime"),
        ),
        engine="MergeTree",
        partition_by="toYYYYMM(event_timestamp)",
        order_by=("user_id", "event_timestamp"),
        load="window",
        time_column="event_timestamp",
        quarantine=True,
        parent=("users", "user_id"),
        watermark="saved_ts",
        rules=(
            Rule(
                "prosthesis_type allowed",
                pl.col("prosthesis_type").is_in(list(prosthesis_types)),
                pl.format(
                    f"prosthesis_type '{{}}' is not one of ({allowed})", pl.col("prosthesis_type")
                ),
            ),
            Rule(
                "muscle_group non-empty",
                pl.col("muscle_group").str.strip_chars().str.len_chars() > 0,
                "muscle_group is empty",
            ),
            Rule(
                "signal_frequency > 0",
                pl.col("signal_frequency") > 0,
                pl.format("signal_frequency {} is not > 0", pl.col("signal_frequency")),
            ),
            Rule(
                "signal_duration >= 0",
                pl.col("signal_duration") >= 0,
                pl.format("signal_duration {} is negative", pl.col("signal_duration")),
            ),
        ),
    )


TELEMETRY = telemetry_spec()
