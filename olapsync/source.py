"""Reading PostgreSQL with connectorx: Arrow batches of bounded size, optionally over several
connections. The only module that talks to the sources.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import polars as pl
import psycopg
import pyarrow as pa

# connectorx logs every connection retry through Rust's env_logger unless told not to.
os.environ.setdefault("RUST_LOG", "off")
import connectorx as cx

from olapsync.cursor import cursor_batches
from olapsync.errors import SourceError
from olapsync.memory import release_freed_memory
from olapsync.native import (
    is_panic,
    panic_text,
    quiet_native,
    reader_failure,
)
from olapsync.pg import (
    Snapshot,
    SourceUrl,
    driver_cause,
    pg_url,
    source_error,
)
from olapsync.source_plan import column_types, plan_read, row_hash_column
from olapsync.specs import TableSpec, quote_ident
from olapsync.window import DATETIME_MAX, DATETIME_MIN, Window

log = logging.getLogger(__name__)


def _pg_literal(value: datetime) -> str:
    # connectorx takes no bind parameters; bounds are rendered from datetime objects only,
    # never from user text. The explicit +00 makes a `timestamp` column read it as UTC and
    # a `timestamptz` column interpret it exactly, whatever the session TimeZone.
    return f"'{value:%Y-%m-%d %H:%M:%S.%f}+00'"


def window_condition(spec: TableSpec, window: Window) -> str:
    """The WHERE condition selecting the window's rows of `spec` in PostgreSQL."""
    assert spec.time_column is not None
    col = quote_ident(spec.column(spec.time_column).source or spec.time_column)
    parts = []
    if window.start is not None:
        parts.append(f"{col} >= {_pg_literal(window.start)}")
    if window.end is not None:
        parts.append(f"{col} < {_pg_literal(window.end)}")
    return " AND ".join(parts)


def read_arrow(
    url: SourceUrl, query: str, *, what: str = "run a query", pre_execution: list[str] | None = None
) -> pa.Table:
    """Run a small query (after the `pre_execution` statements) and return the whole result.

    Raises:
        SourceError: the query or the reader failed (one line, whatever connectorx raised).
    """
    try:
        with quiet_native():
            table: pa.Table = cx.read_sql(
                pg_url(url).reveal(), query, return_type="arrow", pre_execution_query=pre_execution
            )
    except BaseException as exc:
        if not reader_failure(exc):
            raise
        raise _reader_error(url, exc, what) from driver_cause(url, exc)
    return table


def _reader_error(url: SourceUrl, exc: BaseException, what: str) -> SourceError:
    """`_source_error` for anything a connectorx call raised, a Rust panic included."""
    if is_panic(exc) or not isinstance(exc, Exception):
        return source_error(url, RuntimeError(panic_text(exc)), what)
    return source_error(url, exc, what)


def read_table(
    url: SourceUrl,
    spec: TableSpec,
    where: str = "",
    *,
    batch_size: int,
    partitions: int = 1,
    chunk_rows: int = 0,
    what: str = "read rows",
    snapshot: Snapshot | None = None,
    fingerprint: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Stream `spec`'s rows matching `where` as Arrow batches of at most `batch_size` rows.

    With `snapshot`, the read runs in that snapshot (a run's reads all share one, see
    `Snapshot`), else in its own. With `fingerprint`, each batch also has the column
    `olapsync.fingerprint.FP_COLUMN`: each row's source hash, which the source fingerprint of
    a month sums (`olapsync.fingerprint.fingerprints_from_batch`).

    The read runs in one snapshot (see `Snapshot`): the catalog is read there once (column
    types, which make every column arrive as its kind, see `olapsync.casts`; the table's
    partitions, children and indexes), and every range reads there too. A read bigger than
    `chunk_rows` rows is cut into ranges of about `chunk_rows` rows along what PostgreSQL
    can seek on, so that the whole read costs about one pass over what it selects (see
    `olapsync.source_plan`); a range is one connectorx stream, split over `partitions`
    connections. connectorx buffers a stream's whole result ahead of the caller (see
    `read_batches`); the ranges bound that to about two of them. Where nothing can be sought
    (a view), one server-side cursor streams the rows: PostgreSQL sends each batch only
    when it is fetched, so memory holds one batch (at about twice connectorx's CPU cost).

    Raises:
        SourceError: the source cannot be read (a missing table or column, a type that
            cannot be loaded, a server or reader failure); always one line.
    """
    if snapshot is None:
        with Snapshot(url, what=what) as own:
            yield from read_table(
                url,
                spec,
                where,
                batch_size=batch_size,
                partitions=partitions,
                chunk_rows=chunk_rows,
                what=what,
                snapshot=own,
                fingerprint=fingerprint,
            )
        return
    ranges = plan_read(
        snapshot.rows,
        spec,
        where,
        chunk_rows=chunk_rows,
        partitions=partitions,
        fingerprint=fingerprint,
    )

    def open_range(i: int) -> Iterator[pa.RecordBatch]:
        snapshot.keep_alive()
        r = ranges[i]
        if r.cursor:
            return _cursor_stream(snapshot, r.queries[0], batch_size, what)
        if r.partition_on is not None:
            return read_batches(
                url,
                r.queries[0],
                batch_size=batch_size,
                partition_on=r.partition_on,
                partitions=partitions,
                chunk_rows=chunk_rows,
                table_rows=r.rows,
                what=what,
                snapshot=snapshot,
            )
        pre = snapshot.pre_execution
        if r.seek:  # an index range scan; a sequential scan would read everything
            pre = [*(pre or []), "SET enable_seqscan = off"]
        return _stream(url, list(r.queries), batch_size, None, 1, None, pre, what)

    if ranges:
        yield from _walk(open_range, len(ranges), chunk_rows)


def read_all(
    url: SourceUrl,
    spec: TableSpec,
    where: str = "",
    *,
    what: str = "read rows",
    snapshot: Snapshot | None = None,
    fingerprint: bool = False,
) -> pa.Table:
    """All of `spec`'s rows matching `where` as one table (a small table, such as users),
    every column converted to its kind as `read_table` converts it; `snapshot` and
    `fingerprint` as for `read_table`.

    Raises:
        SourceError: as `read_table`.
    """
    if snapshot is None:
        with Snapshot(url, what=what) as own:
            return read_all(url, spec, where, what=what, snapshot=own, fingerprint=fingerprint)
    types = column_types(snapshot.rows, spec.source_table)
    extra = (row_hash_column(spec, types),) if fingerprint else ()
    query = spec.source_query(where, types=types, extra=extra)
    return read_arrow(url, query, what=what, pre_execution=snapshot.pre_execution)


def _cursor_stream(
    snapshot: Snapshot, query: str, batch_size: int, what: str
) -> Iterator[pa.RecordBatch]:
    try:
        yield from cursor_batches(snapshot.conn, query, batch_size)
    except psycopg.Error as exc:
        raise source_error(snapshot.url, exc, what) from driver_cause(snapshot.url, exc)


def _walk(
    open_range: Callable[[int], Iterator[pa.RecordBatch]], count: int, chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    """Take `count` ranges in order, opening the next once half of the current is taken."""
    current = open_range(0)
    for i in range(count):
        following: Iterator[pa.RecordBatch] | None = None
        taken = 0
        for batch in current:
            yield batch
            taken += batch.num_rows
            if following is None and i + 1 < count and taken * 2 >= chunk_rows:
                following = open_range(i + 1)
        if i + 1 < count:
            current = following if following is not None else open_range(i + 1)


def read_batches(
    url: SourceUrl,
    query: str,
    *,
    batch_size: int,
    partition_on: str | None = None,
    partitions: int = 1,
    chunk_rows: int = 0,
    table_rows: int = 0,
    what: str = "read rows",
    snapshot: Snapshot | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream `query` as Arrow batches of at most `batch_size` rows.

    With `partition_on` (an integer key column) and `partitions > 1`, each read is split
    into that many key ranges, each on its own connection.

    With `partition_on` and `chunk_rows`, the key is walked in consecutive ranges of about
    `chunk_rows` rows (`table_rows`, the table's size, tells how dense the keys are), one
    connectorx stream each; the next range is opened once half of the current one has been
    taken. connectorx fetches a stream as fast as the source sends it and keeps every batch
    not yet taken, so one stream over a big table held the whole table in memory whenever
    loading was slower than reading (20M rows: 1.4 GB and growing); ranges bound it to
    about two of them. With a `snapshot`, every range reads in it.
    """
    pre = snapshot.pre_execution if snapshot is not None else None
    if partition_on is None or chunk_rows <= 0:
        yield from _stream(url, query, batch_size, partition_on, partitions, None, pre, what)
        return
    sql = (
        f"SELECT min(cx_range.{quote_ident(partition_on)}), "
        f"max(cx_range.{quote_ident(partition_on)}) FROM ({query}) AS cx_range"
    )
    if snapshot is not None:
        lo, hi = snapshot.rows(sql)[0]
    else:
        bounds = read_arrow(url, sql, what=what)
        lo, hi = bounds.column(0)[0].as_py(), bounds.column(1)[0].as_py()
    if lo is None or hi is None:
        return  # no rows
    span = hi - lo + 1
    density = min(1.0, table_rows / span) if table_rows > 0 else 1.0
    step = max(1, int(chunk_rows / density))
    ranges = [(a, min(a + step - 1, hi)) for a in range(lo, hi + 1, step)]

    def open_range(i: int) -> Iterator[pa.RecordBatch]:
        if snapshot is not None:
            snapshot.keep_alive()
        return _stream(url, query, batch_size, partition_on, partitions, ranges[i], pre, what)

    yield from _walk(open_range, len(ranges), chunk_rows)


def _stream(
    url: SourceUrl,
    query: str | list[str],
    batch_size: int,
    partition_on: str | None,
    partitions: int,
    key_range: tuple[int, int] | None,
    pre: list[str] | None,
    what: str,
) -> Iterator[pa.RecordBatch]:
    """One connectorx stream (over a list of queries: one connection each); it starts
    fetching at once, before the first batch is taken."""
    split = partition_on is not None and (partitions > 1 or key_range is not None)
    try:
        with quiet_native():
            reader = cx.read_sql(
                pg_url(url).reveal(),
                query if isinstance(query, str) or len(query) > 1 else query[0],
                return_type="arrow_stream",
                batch_size=batch_size,
                protocol="cursor",
                partition_on=partition_on if split else None,
                partition_num=partitions if split else None,
                partition_range=key_range,
                pre_execution_query=pre,
            )
    except BaseException as exc:
        if not reader_failure(exc):
            raise
        raise _reader_error(url, exc, what) from driver_cause(url, exc)
    return _drain(reader, url, what)


def _drain(reader: Any, url: SourceUrl, what: str) -> Iterator[pa.RecordBatch]:
    while True:
        release_freed_memory()
        try:
            with quiet_native():
                batch = reader.read_next_batch()
        except StopIteration:
            return
        except BaseException as exc:
            if not reader_failure(exc):
                raise
            raise _reader_error(url, exc, what) from driver_cause(url, exc)
        if batch.num_rows:
            yield batch


def count_by_month(url: SourceUrl, spec: TableSpec, window: Window) -> dict[str | None, int]:
    """Source rows of the window per `YYYYMM` partition; None: rows without a usable event
    time, which validation rejects (`olapsync.validate`): NULL, ±infinity, or outside
    ClickHouse's DateTime range (`DATETIME_MIN`..`DATETIME_MAX`), so that no partition is
    counted that the run cannot create."""
    assert spec.time_column is not None
    col = quote_ident(spec.column(spec.time_column).source or spec.time_column)
    where = window_condition(spec, window)
    # extract(epoch) reads a `timestamp` as UTC and a `timestamptz` exactly; rendering the
    # month from it is independent of the session TimeZone.
    month = f"to_char(to_timestamp(extract(epoch FROM {col})) AT TIME ZONE 'UTC', 'YYYYMM')"
    usable = (
        f"isfinite({col}) AND {col} >= {_pg_literal(DATETIME_MIN)} "
        f"AND {col} <= {_pg_literal(DATETIME_MAX)}"
    )
    sql = (
        f"SELECT CASE WHEN {usable} THEN {month} END AS p, count(*) AS n "
        f"FROM {quote_ident(spec.source_table)}{' WHERE ' + where if where else ''} GROUP BY 1"
    )
    table = read_arrow(url, sql, what=f"count {spec.source_table} per month")
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return {p: int(n) for p, n in frame.iter_rows()}


def rows_per_parent(url: SourceUrl, spec: TableSpec, window: Window) -> dict[int | None, int]:
    """Source rows of the window per value of `spec.parent`'s column (None: NULL)."""
    assert spec.parent is not None
    col = spec.column(spec.parent[1]).source_ident
    where = window_condition(spec, window)
    sql = (
        f"SELECT {col} AS p, count(*) AS n FROM {quote_ident(spec.source_table)}"
        f"{' WHERE ' + where if where else ''} GROUP BY 1"
    )
    frame = pl.from_arrow(read_arrow(url, sql, what=f"count {spec.source_table} per parent"))
    assert isinstance(frame, pl.DataFrame)
    return {None if p is None else int(p): int(n) for p, n in frame.iter_rows()}
