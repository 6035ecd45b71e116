"""What a read costs PostgreSQL, counted in tuples (issue 15, item 8): whatever the source's
shape, a read in ranges reads about one pass over what it selects, and returns each row
exactly once. Counted with `pg_stat_user_tables` (sequential tuples read plus tuples fetched
by index scans) over the source and its partitions or children, before and after the read."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import pytest

import olapsync.source as reader
from olapsync.specs import TELEMETRY
from tests.support import Source

# Every shape holds the 6,013 generated events; ranges of 500 rows cut them in a dozen.
CHUNK = 500
MONTHS = ["2025-09", "2025-10", "2025-11", "2025-12", "2026-01", "2026-02", "2026-03"]
NO_AUTOVACUUM = "WITH (autovacuum_enabled = false)"


def _month_after(month: str) -> str:
    year, mon = map(int, month.split("-"))
    return f"{year + mon // 12}-{mon % 12 + 1:02d}"


def plain_with_key(source: Source) -> str:
    return "telemetry_events"  # the generated table: primary key on id


def plain_without_index(source: Source) -> str:
    source.execute(
        f"CREATE TABLE bare {NO_AUTOVACUUM} AS SELECT * FROM telemetry_events ORDER BY random()"
    )
    return "bare"


def partitioned(source: Source, *, index: str = "") -> str:
    """Partitioned by month on event_timestamp (declarative), a default partition for the
    rest (infinity, before 1970, NULL)."""
    source.execute(
        "CREATE TABLE parts (LIKE telemetry_events) PARTITION BY RANGE (event_timestamp)"
    )
    for month in MONTHS:
        source.execute(
            f"CREATE TABLE parts_{month.replace('-', '_')} PARTITION OF parts "
            f"FOR VALUES FROM ('{month}-01') TO ('{_month_after(month)}-01') {NO_AUTOVACUUM}"
        )
    source.execute(f"CREATE TABLE parts_other PARTITION OF parts DEFAULT {NO_AUTOVACUUM}")
    if index:
        source.execute(f"CREATE INDEX ON parts ({index})")
    source.execute("INSERT INTO parts SELECT * FROM telemetry_events ORDER BY random()")
    return "parts"


def partitioned_with_index(source: Source) -> str:
    return partitioned(source, index="id")


def inheritance(source: Source) -> str:
    """A parent holding rows of its own, and two children constrained to halves of time."""
    source.execute(f"CREATE TABLE family (LIKE telemetry_events) {NO_AUTOVACUUM}")
    source.execute(
        "CREATE TABLE family_old (CHECK (event_timestamp < '2026-01-01')) INHERITS (family) "
        + NO_AUTOVACUUM
    )
    source.execute(
        "CREATE TABLE family_new (CHECK (event_timestamp >= '2026-01-01')) INHERITS (family) "
        + NO_AUTOVACUUM
    )
    source.execute(
        "INSERT INTO family_old SELECT * FROM telemetry_events "
        "WHERE event_timestamp < '2026-01-01' AND id % 4 <> 0"
    )
    source.execute(
        "INSERT INTO family_new SELECT * FROM telemetry_events "
        "WHERE event_timestamp >= '2026-01-01' AND id % 4 <> 0"
    )
    source.execute(
        "INSERT INTO family SELECT * FROM telemetry_events "
        "WHERE id % 4 = 0 OR event_timestamp IS NULL"
    )
    return "family"


def view(source: Source) -> str:
    source.execute("CREATE VIEW events_view AS SELECT * FROM telemetry_events")
    return "events_view"


def plain_with_time_index(source: Source) -> str:
    source.execute(
        f"CREATE TABLE timed {NO_AUTOVACUUM} AS SELECT * FROM telemetry_events ORDER BY random()"
    )
    source.execute("CREATE INDEX ON timed (event_timestamp)")
    return "timed"


def plain_with_saved_ts_index(source: Source) -> str:
    # What `sync` reads (issue 17): rows saved since the last run, by an index on saved_ts.
    source.execute(
        f"CREATE TABLE saved {NO_AUTOVACUUM} AS SELECT * FROM telemetry_events ORDER BY random()"
    )
    source.execute("CREATE INDEX ON saved (saved_ts)")
    return "saved"


Shape = Callable[[Source], str]
SHAPES: dict[str, Shape] = {
    "plain table with a primary key": plain_with_key,
    "plain table without any index": plain_without_index,
    "partitioned by month, no index": partitioned,
    "partitioned by month, index on id": partitioned_with_index,
    "inheritance parent and children": inheritance,
    "view": view,
}


def tables_under(source: Source, table: str) -> list[str]:
    """The tables a read of `table` scans: it and its partitions or children, or for a view
    the table it selects from."""
    if table == "events_view":
        return ["telemetry_events"]
    rows = source.execute(
        "WITH RECURSIVE t(oid) AS (SELECT %s::regclass::oid UNION "
        "SELECT inhrelid FROM pg_inherits JOIN t ON inhparent = t.oid) "
        "SELECT oid::regclass::text FROM t",
        [table],
    )
    return [r[0] for r in rows]


def tuples_read(source: Source, tables: list[str]) -> int:
    """Tuples PostgreSQL has read from `tables`, once every other session has ended (a
    session hands its counts over when it ends, connectorx's included)."""
    deadline = time.monotonic() + 30
    while source.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )[0][0]:
        assert time.monotonic() < deadline, "sessions of the read did not end"
        time.sleep(0.05)
    rows = source.execute(
        "SELECT coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)), 0)::bigint "
        "FROM pg_stat_user_tables WHERE relid = ANY(%s::regclass[])",
        [tables],
    )
    return int(rows[0][0])


def measured_read(source: Source, table: str, where: str) -> tuple[list[int], int]:
    """The ids a read in ranges returns, and the tuples it read."""
    source.execute(f"ANALYZE {table}" if table != "events_view" else "ANALYZE telemetry_events")
    tables = tables_under(source, table)
    before = tuples_read(source, tables)
    spec = dataclasses.replace(TELEMETRY, source_table=table)
    batches = reader.read_table(
        source.url, spec, where, batch_size=200, partitions=2, chunk_rows=CHUNK
    )
    ids = sorted(i for batch in batches for i in batch.column("id").to_pylist())
    return ids, tuples_read(source, tables) - before


def about_one_pass(read: int, rows: int) -> bool:
    return read <= 1.2 * rows + 50


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_a_whole_read_costs_one_pass_whatever_the_shape(shape: Shape, source: Source) -> None:
    table = shape(source)
    want = sorted(r[0] for r in source.execute(f"SELECT id FROM {table}"))
    assert len(want) > 10 * CHUNK // 2, "enough rows to be read in ranges"

    got, read = measured_read(source, table, "")

    assert got == want, "every row exactly once"
    assert about_one_pass(read, len(want)), f"read {read} tuples for {len(want)} rows"


WINDOWS: dict[str, tuple[Shape, str]] = {
    "partitioned: the months of the window only": (
        partitioned,
        "event_timestamp >= '2025-11-01' AND event_timestamp < '2026-01-01'",
    ),
    "partitioned, a window starting mid-month": (
        partitioned,
        "event_timestamp >= '2026-02-15 12:00:00'",
    ),
    "inheritance: the children the window can hold": (
        inheritance,
        "event_timestamp >= '2026-01-01'",
    ),
    "an index on the time column": (
        plain_with_time_index,
        "event_timestamp >= '2025-12-01' AND event_timestamp < '2026-01-15'",
    ),
    "an index on saved_ts": (plain_with_saved_ts_index, "saved_ts >= '2026-02-01'"),
}


@pytest.mark.parametrize(("shape", "where"), WINDOWS.values(), ids=WINDOWS.keys())
def test_a_window_read_costs_about_what_it_selects(
    shape: Shape, where: str, source: Source
) -> None:
    table = shape(source)
    want = sorted(r[0] for r in source.execute(f"SELECT id FROM {table} WHERE {where}"))
    kept = source.execute(
        f"SELECT count(*) FROM {table} WHERE tableoid IN "
        f"(SELECT DISTINCT tableoid FROM {table} WHERE {where})"
    )[0][0]
    whole = source.execute(f"SELECT count(*) FROM {table}")[0][0]
    assert len(want) > 2 * CHUNK, "enough rows to be read in ranges"

    got, read = measured_read(source, table, where)

    assert got == want, "every row of the window exactly once"
    if table in ("timed", "saved"):  # through the index: the window's rows only
        assert about_one_pass(read, len(want)), f"read {read} tuples for {len(want)} rows"
    else:  # the partitions or children holding the window's rows, once each
        assert kept < whole, "the window leaves some partitions out"
        assert about_one_pass(read, kept), f"read {read} tuples; its partitions hold {kept}"


def test_a_window_on_a_table_without_index_reads_it_once(source: Source) -> None:
    # Nothing to seek on: the window's condition filters one pass over the table; key
    # ranges without an index would each scan all of it.
    table = plain_without_index(source)
    where = "event_timestamp >= '2026-01-01'"
    want = sorted(r[0] for r in source.execute(f"SELECT id FROM {table} WHERE {where}"))
    whole = source.execute(f"SELECT count(*) FROM {table}")[0][0]

    got, read = measured_read(source, table, where)

    assert got == want
    assert about_one_pass(read, whole), f"read {read} tuples for a table of {whole}"
