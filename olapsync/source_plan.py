"""Planning a read of a source table: what its columns are, what it is made of, and how to cut
it into ranges that each cost only the rows they return.

The rule (issue 15, item 8): no shape of source may make a read cost more than about one pass
over what it selects. A range that the source cannot seek to is a full scan, so ranges are
cut only along what PostgreSQL can seek on:

- a table (or materialized view) is walked in ranges of blocks (TID range scans, PostgreSQL
  14+: each block is read once, as a sequential scan reads it);
- a partitioned table is read leaf by leaf, each in block ranges; an inheritance parent is
  read as `ONLY` itself and then each child, the same way;
- a read with a condition reads only the leaves the planner keeps for it (partition pruning,
  from `EXPLAIN`); within a leaf, a selective condition on the time column walks an index
  on that column in ranges of time, when there is one; otherwise the condition filters the
  block ranges, which still read each block once;
- without block ranges (a view, a foreign table, PostgreSQL 13 and older), key ranges when a
  btree index leads with the key (checked in `pg_index`), else one stream that PostgreSQL
  sends only as it is taken (a server-side cursor, see `source.read_table`).

Everything here runs in the read's snapshot, through the small `Rows` queries it is given.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from olapsync.casts import INTEGERS, SourceType
from olapsync.errors import SourceError
from olapsync.fingerprint import FP_COLUMN, pg_row_hash
from olapsync.specs import TableSpec, quote_ident

Rows = Callable[..., list[tuple[Any, ...]]]  # (sql, params=()) -> rows, in the snapshot


@dataclass(frozen=True)
class Range:
    """One stream of a read: its queries (one connection each) and how to run them.

    partition_on: walk this integer key, indexed, in ranges (`source.read_batches`); `rows`
        is the relation's size, which tells how dense its keys are.
    seek: read with sequential scans disabled, so each query is an index range scan.
    cursor: read by a server-side cursor, which PostgreSQL fills only as it is fetched.
    """

    queries: tuple[str, ...]
    partition_on: str | None = None
    rows: int = 0
    seek: bool = False
    cursor: bool = False


@dataclass(frozen=True)
class Relation:
    """One relation of a source: the table itself, or a partition or child of it."""

    oid: int
    schema: str
    name: str
    kind: str  # pg_class.relkind
    rows: int  # estimate (an upper bound when the relation was never analyzed)
    blocks: int  # size now
    block_ranges: bool  # TID range scans work on it

    @property
    def sql(self) -> str:
        """`ONLY "schema"."name"`: this relation's own rows, without its children."""
        return f"ONLY {quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def rows_per_block(self) -> float:
        return self.rows / self.blocks if self.blocks else 0.0


def column_types(rows: Rows, table: str) -> dict[str, SourceType]:
    """The type of each column of `table` (by name), domains resolved to their base type.

    Raises:
        SourceError: the table does not exist.
    """
    found = rows(
        "WITH RECURSIVE cols(attnum, name, declared, typ, domain) AS ("
        " SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid, false"
        " FROM pg_attribute a WHERE a.attrelid = to_regclass(%s)"
        " AND a.attnum > 0 AND NOT a.attisdropped"
        " UNION ALL SELECT c.attnum, c.name, c.declared, t.typbasetype, true"
        " FROM cols c JOIN pg_type t ON t.oid = c.typ WHERE t.typtype = 'd')"
        " SELECT c.name, c.declared, t.typname, t.typcategory, t.oid::regtype::text,"
        " bool_or(c.domain) OVER (PARTITION BY c.attnum)"
        " FROM cols c JOIN pg_type t ON t.oid = c.typ WHERE t.typtype <> 'd' ORDER BY c.attnum",
        (quote_ident(table),),
    )
    if not found:
        raise SourceError(
            f"Source table {table!r} does not exist or has no columns: check its name, "
            "schema and the search_path of the user olapsync connects as."
        )
    return {
        str(name): SourceType(str(declared), str(base), str(cat), str(base_sql), bool(domain))
        for name, declared, base, cat, base_sql, domain in found
    }


def row_hash_column(spec: TableSpec, types: Mapping[str, SourceType]) -> str:
    """The SELECT expression of a row's source hash, `... AS "__fp"`: the same expression
    `verify` sums per month (`olapsync.fingerprint`), over the source's own values."""
    columns = []
    for c in spec.columns:
        name = c.source or c.name
        if name not in types:
            raise SourceError(
                f"Source table {spec.source_table!r} has no column {name!r}: "
                "check the table or the spec."
            )
        columns.append((c.source_ident, types[name].base))
    return f"{pg_row_hash(columns)} AS {quote_ident(FP_COLUMN)}"


def relations(rows: Rows, table: str) -> list[Relation]:
    """`table` and every partition or inheritance child under it, `table` first."""
    found = rows(
        "WITH RECURSIVE tree(oid, depth) AS (SELECT to_regclass(%s)::oid, 0"
        " UNION SELECT i.inhrelid, t.depth + 1 FROM pg_inherits i"
        " JOIN tree t ON i.inhparent = t.oid)"
        " SELECT c.oid, n.nspname, c.relname, c.relkind,"
        " CASE WHEN c.relkind IN ('r', 'm') THEN"
        "  pg_relation_size(c.oid) / current_setting('block_size')::int ELSE 0 END,"
        " c.reltuples, c.relpages, current_setting('block_size')::int,"
        " current_setting('server_version_num')::int >= 140000"
        " FROM (SELECT oid, min(depth) AS depth FROM tree GROUP BY oid) t"
        " JOIN pg_class c ON c.oid = t.oid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " ORDER BY t.depth, n.nspname, c.relname",
        (quote_ident(table),),
    )
    out = []
    for oid, schema, name, kind, blocks, reltuples, relpages, block_size, tid_ranges in found:
        if reltuples >= 0 and relpages > 0:
            estimate = int(reltuples / relpages * blocks)
        elif reltuples >= 0 and blocks == 0:
            estimate = int(reltuples)
        else:  # never analyzed: as many rows as a block can hold (MaxHeapTuplesPerPage)
            estimate = blocks * (block_size // 28)
        out.append(
            Relation(
                int(oid),
                str(schema),
                str(name),
                str(kind),
                estimate,
                int(blocks),
                bool(tid_ranges) and kind in ("r", "m"),
            )
        )
    return out


def leading_index_columns(rows: Rows, oids: list[int]) -> dict[int, set[str]]:
    """The columns a valid, non-partial btree index of each relation leads with."""
    found = rows(
        "SELECT i.indrelid, a.attname FROM pg_index i"
        " JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
        " WHERE i.indrelid = ANY(%s) AND i.indisvalid AND i.indpred IS NULL"
        " AND am.amname = 'btree'",
        (oids,),
    )
    out: dict[int, set[str]] = {}
    for oid, column in found:
        out.setdefault(int(oid), set()).add(str(column))
    return out


def scanned(rows: Rows, table: str, where: str) -> dict[tuple[str, str], int]:
    """The relations PostgreSQL's plan for `where` on `table` reads (partitions it cannot
    prune), each with the planner's estimate of its rows that match."""
    found = rows(f"EXPLAIN (FORMAT JSON, VERBOSE) SELECT 1 FROM {quote_ident(table)} WHERE {where}")
    plan = found[0][0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    out: dict[tuple[str, str], int] = {}

    def visit(node: Mapping[str, Any]) -> None:
        if "Relation Name" in node:
            key = (str(node.get("Schema", "")), str(node["Relation Name"]))
            out[key] = out.get(key, 0) + int(node.get("Plan Rows", 0))
        for child in node.get("Plans", ()):
            visit(child)

    visit(plan[0]["Plan"])
    return out


def access(rows: Rows, table: str, where: str) -> str:
    """How PostgreSQL would find the rows of `table` matching `where`: "index" when its plan
    reads every relation through an index, else "scan" (a sequential scan somewhere)."""
    found = rows(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {quote_ident(table)} WHERE {where}")
    plan = found[0][0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    kinds: list[str] = []

    def visit(node: Mapping[str, Any]) -> None:
        if "Relation Name" in node:
            kinds.append(str(node.get("Node Type", "")))
        for child in node.get("Plans", ()):
            visit(child)

    visit(plan[0]["Plan"])
    return "scan" if any(k == "Seq Scan" for k in kinds) else "index"


def plan_read(
    rows: Rows,
    spec: TableSpec,
    where: str = "",
    *,
    chunk_rows: int,
    partitions: int = 1,
    fingerprint: bool = False,
) -> list[Range]:
    """The ranges that read `spec`'s rows matching `where`, each row in exactly one of them,
    each range about `chunk_rows` rows; no ranges when nothing can match.

    `chunk_rows` <= 0 asks for one stream, whatever its size. With `fingerprint`, every row
    also carries its source hash (`row_hash_column`).

    Raises:
        SourceError: the table or a column is missing, or a column has a type its kind
            cannot be read from (see `olapsync.casts`).
    """
    types = column_types(rows, spec.source_table)
    columns = (row_hash_column(spec, types),) if fingerprint else ()

    def query(extra: str = "", relation: str | None = None) -> str:
        cond = " AND ".join(f"({c})" for c in (where, extra) if c)
        return spec.source_query(cond, types=types, relation=relation, extra=columns)

    whole = query()  # checks every column before anything is read
    tree = relations(rows, spec.source_table)
    if chunk_rows <= 0:
        return [Range((whole,))]
    if not tree or tree[0].kind not in ("r", "p", "m", "f"):
        return [Range((whole,), cursor=True)]  # a view: nothing to seek on
    stored = [r for r in tree if r.kind in ("r", "m", "f")]
    matching = {r.oid: r.rows for r in stored}
    if where:
        kept = scanned(rows, spec.source_table, where)
        stored = [r for r in stored if (r.schema, r.name) in kept]
        matching = {r.oid: kept[(r.schema, r.name)] for r in stored}
    if not stored:
        return []  # the planner proved that no row matches
    # A foreign table's size is unknown: only a stream taken as it comes is bounded.
    if all(r.kind != "f" for r in stored) and sum(matching.values()) <= chunk_rows:
        return [Range((whole,))]
    indexes = leading_index_columns(rows, [r.oid for r in stored])
    times = _times_in(spec, where, types)
    key_col = spec.column(spec.key).source or spec.key
    out: list[Range] = []
    for rel in stored:
        has = indexes.get(rel.oid, set())
        seek = next((t for t in times if t in has), None)
        if seek is not None and 2 * matching[rel.oid] <= rel.rows:
            n = math.ceil(matching[rel.oid] / chunk_rows)
            cuts = _time_cuts(rows, rel, seek, where, n * max(partitions, 1))
            out += _time_ranges(query, rel, seek, cuts, partitions)
        elif rel.block_ranges:
            out += _block_ranges(query, rel, chunk_rows, partitions)
        elif key_col in has and types[key_col].base in INTEGERS and not types[key_col].domain:
            out.append(Range((query(relation=rel.sql),), partition_on=spec.key, rows=rel.rows))
        else:
            out.append(Range((query(relation=rel.sql),), cursor=True))
    return out


def _times_in(spec: TableSpec, where: str, types: Mapping[str, SourceType]) -> list[str]:
    """The source's timestamp columns that `where` names, the spec's time column first: an
    index on one of them lets a selective read (a window on event_timestamp, new rows by
    saved_ts) walk just what it selects."""
    names = [c.source or c.name for c in spec.columns if c.kind == "datetime"]
    if spec.time_column is not None:
        first = spec.column(spec.time_column)
        names.sort(key=lambda n: n != (first.source or first.name))
    return [
        n
        for n in names
        if types[n].base in ("timestamp", "timestamptz", "date")
        and re.search(rf'(^|[^\w"])({re.escape(n)}|{re.escape(quote_ident(n))})($|[^\w"])', where)
    ]


def _block_ranges(
    query: Callable[..., str], rel: Relation, chunk_rows: int, partitions: int
) -> list[Range]:
    # Blocks are measured after the snapshot was taken, so every row version it sees lies
    # below `rel.blocks`; the last range is open-ended all the same.
    if rel.blocks <= 1:
        return [Range((query(relation=rel.sql),))]
    per_block = rel.rows_per_block
    step = max(1, int(chunk_rows / per_block)) if per_block > 0 else rel.blocks
    starts = list(range(0, rel.blocks, step))
    out = []
    for i, lo in enumerate(starts):
        last = i + 1 == len(starts)
        hi = rel.blocks if last else starts[i + 1]
        n = min(partitions, hi - lo)
        cuts = [lo + (hi - lo) * k // n for k in range(n)]
        ends: list[int | None] = [*cuts[1:], None if last else hi]
        out.append(
            Range(
                tuple(
                    query(
                        f"ctid >= '({a},0)'::tid"
                        + (f" AND ctid < '({b},0)'::tid" if b is not None else ""),
                        rel.sql,
                    )
                    for a, b in zip(cuts, ends, strict=True)
                )
            )
        )
    return out


def _time_cuts(rows: Rows, rel: Relation, column: str, where: str, n: int) -> list[str]:
    """Up to `n - 1` increasing time values (SQL literals) cutting `rel`'s rows matching
    `where` into about equal spans, from its least and greatest time (index probes)."""
    col = quote_ident(column)
    # Finite and within Python's datetime (years 1..9999): the cuts are computed in Python.
    found = rows(
        f"SELECT min({col}), max({col}) FROM {rel.sql} WHERE ({where})"
        f" AND {col} >= '0001-01-01 00:00:00+00' AND {col} < '10000-01-01 00:00:00+00'"
    )
    lo, hi = found[0] if found else (None, None)
    if lo is None or hi is None or n <= 1:
        return []
    if isinstance(lo, datetime) and lo.tzinfo is not None:
        # In UTC: steps of wall-clock time in the session's zone are not monotonic at a
        # DST fold, and cuts out of order would read rows twice.
        lo, hi = lo.astimezone(UTC), hi.astimezone(UTC)
    values = sorted({lo + (hi - lo) * k / n for k in range(1, n)})
    return [_time_literal(v) for v in values]


def _time_literal(value: date | datetime) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return f"'{value.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f}+00'"
        return f"'{value:%Y-%m-%d %H:%M:%S.%f}'"
    return f"'{value:%Y-%m-%d}'"


def _time_ranges(
    query: Callable[..., str], rel: Relation, column: str, cuts: list[str], partitions: int
) -> list[Range]:
    """Consecutive half-open spans between the cuts, open at both ends (infinities, and a
    NULL time if `where` lets one through, fall in the first or last span), grouped
    `partitions` to a range."""
    col = quote_ident(column)
    conds = []
    bounds: list[str | None] = [None, *cuts, None]
    for a, b in itertools.pairwise(bounds):
        if a is None and b is None:
            conds.append("")
        elif a is None:
            conds.append(f"{col} < {b}")
        elif b is None:
            conds.append(f"({col} >= {a} OR {col} IS NULL)")
        else:
            conds.append(f"{col} >= {a} AND {col} < {b}")
    size = max(partitions, 1)
    return [
        Range(tuple(query(c, rel.sql) for c in conds[i : i + size]), seek=True)
        for i in range(0, len(conds), size)
    ]
