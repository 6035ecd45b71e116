"""Reading PostgreSQL in ranges (of blocks, or of keys): every row exactly once, memory
bounded by the ranges, one snapshot for all of them."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, NamedTuple

import pytest

import olapsync.source as reader
from olapsync import import_olap_data
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.source_plan import relations
from olapsync.specs import TELEMETRY
from tests.support import Source, assert_same, source_partitions, target_partitions


class Opened(NamedTuple):
    queries: list[str]
    key_range: tuple[int, int] | None


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Opened]:
    """Every connectorx stream opened: its queries and key range (the real reader, observed)."""
    seen: list[Opened] = []
    real = reader.cx.read_sql

    def observed(conn: str, query: str | list[str], **kw: Any) -> Any:
        if kw.get("return_type") == "arrow_stream":
            seen.append(
                Opened([query] if isinstance(query, str) else query, kw.get("partition_range"))
            )
        return real(conn, query, **kw)

    monkeypatch.setattr(reader.cx, "read_sql", observed)
    return seen


def test_key_ranges_return_every_row_once(source: Source, opened: list[Opened]) -> None:
    # Sparse keys with gaps, and a filter that keeps only part of each range.
    source.execute("UPDATE telemetry_events SET id = -id")  # two steps: keys stay unique
    source.execute("UPDATE telemetry_events SET id = -id * 10 + 3")
    source.execute("ANALYZE telemetry_events")
    where = "event_timestamp >= '2025-10-01'"
    want = sorted(r[0] for r in source.execute(f"SELECT id FROM telemetry_events WHERE {where}"))
    with reader.Snapshot(source.url, what="size") as snapshot:
        table_rows = relations(snapshot.rows, "telemetry_events")[0].rows

    batches = reader.read_batches(
        source.url,
        TELEMETRY.source_query(where),
        batch_size=300,
        partition_on="id",
        partitions=2,
        chunk_rows=1000,
        table_rows=table_rows,
    )
    got = sorted(key for batch in batches for key in batch.column("id").to_pylist())

    assert got == want, "a row lost or read twice at a range boundary"
    lows = [o.key_range[0] for o in opened if o.key_range is not None]
    assert len(lows) >= 4, f"expected several key ranges, got {opened}"
    assert lows == sorted(lows), "ranges are walked in key order"


def test_an_empty_read_opens_no_stream(source: Source, opened: list[Opened]) -> None:
    batches = reader.read_batches(
        source.url,
        TELEMETRY.source_query("event_timestamp < '1900-01-01'"),
        batch_size=300,
        partition_on="id",
        chunk_rows=1000,
        table_rows=6000,
    )
    assert list(batches) == []
    assert opened == []


def test_an_import_read_in_ranges_equals_the_source(
    config: Config, source: Source, ch: Target, opened: list[Opened]
) -> None:
    source.execute("ANALYZE telemetry_events")
    # 6,000 events at 1,000 rows a batch: above 4 batches, so read in ranges of 4,000 rows:
    # a full import walks blocks, each range over two connections.
    import_olap_data(config=config.with_(batch_size=1000))

    assert len(opened) >= 2
    assert all(len(o.queries) == 2 and "ctid >=" in o.queries[0] for o in opened)
    assert_same(target_partitions(ch), source_partitions(source))


@pytest.mark.parametrize(
    ("where", "index", "walk"),
    [
        ("", "", "blocks"),
        ("event_timestamp >= '2025-09-01'", "", "blocks"),
        ("event_timestamp >= '2026-01-01'", "event_timestamp", "time"),
    ],
    ids=["whole table in block ranges", "window in block ranges", "window in time ranges"],
)
def test_a_read_in_ranges_sees_one_snapshot_while_the_source_changes(
    source: Source, opened: list[Opened], where: str, index: str, walk: str
) -> None:
    """Rows updated (moved to other blocks), inserted and deleted after the first range was
    read must not show up, twice or changed: every range reads the snapshot the read began
    with. Without it, a block walk reads moved rows twice and a time walk reads new values."""
    if index:
        source.execute(f"CREATE INDEX ON telemetry_events ({index})")
    source.execute("ANALYZE telemetry_events")
    cond = f" WHERE {where}" if where else ""
    before = sorted(source.execute(f"SELECT id, signal_amplitude FROM telemetry_events{cond}"))
    batches = reader.read_table(
        source.url, TELEMETRY, where, batch_size=300, partitions=2, chunk_rows=500
    )
    first = next(batches).select(["id", "signal_amplitude"]).to_pydict()
    got = list(zip(first["id"], first["signal_amplitude"], strict=True))

    source.execute("UPDATE telemetry_events SET signal_amplitude = signal_amplitude + 1000")
    source.execute(
        "INSERT INTO telemetry_events SELECT id + 1000000, user_id, prosthesis_type, "
        "muscle_group, signal_frequency, signal_duration, signal_amplitude, event_timestamp, "
        "saved_ts FROM telemetry_events WHERE id % 3 = 0"
    )
    source.execute("DELETE FROM telemetry_events WHERE id % 7 = 0 AND id < 1000000")

    for batch in batches:
        cols = batch.select(["id", "signal_amplitude"]).to_pydict()
        got += zip(cols["id"], cols["signal_amplitude"], strict=True)

    def same(rows: list[tuple[int, float]]) -> list[tuple[int, str]]:
        return sorted((i, repr(a)) for i, a in rows)  # NaN equals NaN

    assert same(got) == same(before)
    assert len(opened) >= 4, "read in several ranges"
    in_blocks = all("ctid >=" in q for o in opened for q in o.queries)
    assert in_blocks == (walk == "blocks")
    cut = re.compile(r"\"event_timestamp\" (<|>=) '20")  # a time range, not the year guard
    assert all(cut.search(q) for o in opened for q in o.queries) == (walk == "time")


def test_a_view_is_read_through_one_cursor_fetched_batch_by_batch(
    source: Source, opened: list[Opened]
) -> None:
    # A view has no blocks and no index of its own: key ranges would each run the whole
    # view, and one connectorx stream would buffer all of it. A server-side cursor sends
    # each batch only when it is fetched.
    source.execute("CREATE VIEW telemetry_view AS SELECT * FROM telemetry_events")
    spec = dataclasses.replace(TELEMETRY, source_table="telemetry_view")
    want = sorted(r[0] for r in source.execute("SELECT id FROM telemetry_events"))

    batches = reader.read_table(source.url, spec, batch_size=300, partitions=2, chunk_rows=1000)
    first = next(batches)
    fetching = source.execute(
        "SELECT query FROM pg_stat_activity WHERE state = 'idle in transaction' "
        "AND datname = current_database()"
    )
    got = sorted(key for batch in [first, *batches] for key in batch.column("id").to_pylist())

    assert got == want
    assert first.num_rows == 300
    assert [q for (q,) in fetching if q.startswith("FETCH FORWARD 300")], fetching
    assert opened == [], "no connectorx stream"
