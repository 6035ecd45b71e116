"""Reading PostgreSQL with connectorx: Arrow batches of bounded size, optionally over several
connections. The only module that talks to the sources.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import polars as pl
import psycopg
import pyarrow as pa

# connectorx logs every connection retry through Rust's env_logger unless told not to.
os.environ.setdefault("RUST_LOG", "off")
import connectorx as cx

from olapsync.errors import SourceError
from olapsync.redact import redact_text, redact_url, url_password
from olapsync.specs import TableSpec, quote_ident
from olapsync.window import Window

log = logging.getLogger(__name__)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _malloc_trim() if sys.platform.startswith("linux") else None


def release_freed_memory() -> None:
    """Hand memory freed by earlier batches back to the OS (glibc only; else a no-op).

    connectorx builds batches with the system allocator from several threads; glibc keeps
    what they free in per-thread arenas, 50-85 MB at 5M rows, which peak RSS then counts.
    Trimming between batches costs about a millisecond and keeps memory bounded by the
    batches in flight.
    """
    if _TRIM is not None:
        _TRIM(0)


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


def _source_error(url: str, exc: Exception, what: str) -> SourceError:
    text = redact_text(str(exc).strip(), (url_password(url),))
    first = text.splitlines()[0] if text else type(exc).__name__
    return SourceError(f"PostgreSQL at {redact_url(url)} failed to {what}: {first}")


def check_connection(url: str, *, timeout: int = 10) -> None:
    """Fail fast and clearly when PostgreSQL is unreachable or refuses us.

    connectorx's pool retries a failed connection for 30 seconds and then reports only a
    time-out; a plain libpq handshake says at once what is wrong.
    """
    try:
        with psycopg.connect(url, connect_timeout=timeout):
            pass
    except psycopg.Error as exc:
        raise _source_error(url, exc, "accept a connection") from None


def read_arrow(url: str, query: str, *, what: str = "run a query") -> pa.Table:
    """Run a small query and return the whole result."""
    try:
        return cx.read_sql(url, query, return_type="arrow")
    except Exception as exc:
        raise _source_error(url, exc, what) from None


def read_batches(
    url: str,
    query: str,
    *,
    batch_size: int,
    partition_on: str | None = None,
    partitions: int = 1,
    chunk_rows: int = 0,
    table_rows: int = 0,
    what: str = "read rows",
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
    about two of them.
    """
    if partition_on is None or chunk_rows <= 0:
        yield from _stream(url, query, batch_size, partition_on, partitions, None, what)
        return
    bounds = read_arrow(
        url,
        f"SELECT min(cx_range.{quote_ident(partition_on)}) AS lo, "
        f"max(cx_range.{quote_ident(partition_on)}) AS hi "
        f"FROM ({query}) AS cx_range",
        what=what,
    )
    lo, hi = bounds.column(0)[0].as_py(), bounds.column(1)[0].as_py()
    if lo is None or hi is None:
        return  # no rows
    span = hi - lo + 1
    density = min(1.0, table_rows / span) if table_rows > 0 else 1.0
    step = max(1, int(chunk_rows / density))
    ranges = [(a, min(a + step - 1, hi)) for a in range(lo, hi + 1, step)]

    def open_range(i: int) -> Iterator[pa.RecordBatch]:
        return _stream(url, query, batch_size, partition_on, partitions, ranges[i], what)

    current = open_range(0)
    for i in range(len(ranges)):
        following: Iterator[pa.RecordBatch] | None = None
        taken = 0
        for batch in current:
            yield batch
            taken += batch.num_rows
            if following is None and i + 1 < len(ranges) and taken * 2 >= chunk_rows:
                following = open_range(i + 1)
        if i + 1 < len(ranges):
            current = following if following is not None else open_range(i + 1)


def _stream(
    url: str,
    query: str,
    batch_size: int,
    partition_on: str | None,
    partitions: int,
    key_range: tuple[int, int] | None,
    what: str,
) -> Iterator[pa.RecordBatch]:
    """One connectorx stream; it starts fetching at once, before the first batch is taken."""
    split = partition_on is not None and (partitions > 1 or key_range is not None)
    try:
        reader = cx.read_sql(
            url,
            query,
            return_type="arrow_stream",
            batch_size=batch_size,
            protocol="cursor",
            partition_on=partition_on if split else None,
            partition_num=partitions if split else None,
            partition_range=key_range,
        )
    except Exception as exc:
        raise _source_error(url, exc, what) from None
    return _drain(reader, url, what)


def _drain(reader: Any, url: str, what: str) -> Iterator[pa.RecordBatch]:
    try:
        while True:
            release_freed_memory()
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            if batch.num_rows:
                yield batch
    except Exception as exc:
        raise _source_error(url, exc, what) from None


def estimate_rows(url: str, table: str) -> int:
    """PostgreSQL's own row estimate for `table` (no scan); 0 when unknown."""
    quoted = quote_ident(table).replace("'", "''")
    result = read_arrow(
        url,
        f"SELECT GREATEST(reltuples, 0)::bigint AS n FROM pg_class "
        f"WHERE oid = to_regclass('{quoted}')",
        what=f"estimate the size of {table}",
    )
    return int(result.column(0)[0].as_py() or 0) if result.num_rows else 0


def count_by_month(url: str, spec: TableSpec, window: Window) -> dict[str | None, int]:
    """Source rows of the window per `YYYYMM` partition (None: no usable timestamp)."""
    assert spec.time_column is not None
    col = quote_ident(spec.column(spec.time_column).source or spec.time_column)
    where = window_condition(spec, window)
    # extract(epoch) reads a `timestamp` as UTC and a `timestamptz` exactly; rendering the
    # month from it is independent of the session TimeZone.
    month = f"to_char(to_timestamp(extract(epoch FROM {col})) AT TIME ZONE 'UTC', 'YYYYMM')"
    sql = (
        f"SELECT CASE WHEN isfinite({col}) THEN {month} END AS p, count(*) AS n "
        f"FROM {quote_ident(spec.source_table)}{' WHERE ' + where if where else ''} GROUP BY 1"
    )
    table = read_arrow(url, sql, what=f"count {spec.source_table} per month")
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return {p: int(n) for p, n in frame.iter_rows()}
