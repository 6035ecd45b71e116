"""Reading PostgreSQL in key ranges: every row exactly once, memory bounded by the ranges."""

from __future__ import annotations

from typing import Any

import pytest

import olapsync.source as reader
from olapsync import ImportResult, import_olap_data
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.specs import TELEMETRY
from tests.conftest import Source
from tests.integration.test_import import assert_same, source_partitions, target_partitions


@pytest.fixture
def streams(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int] | None]:
    """The key range of every connectorx stream opened (the real reader, observed)."""
    opened: list[tuple[int, int] | None] = []
    real = reader.cx.read_sql

    def observed(*args: Any, **kw: Any) -> Any:
        if kw.get("return_type") == "arrow_stream":
            opened.append(kw.get("partition_range"))
        return real(*args, **kw)

    monkeypatch.setattr(reader.cx, "read_sql", observed)
    return opened


def test_key_ranges_return_every_row_once(
    source: Source, streams: list[tuple[int, int] | None]
) -> None:
    # Sparse keys with gaps, and a filter that keeps only part of each range.
    source.execute("UPDATE telemetry_events SET id = -id")  # two steps: keys stay unique
    source.execute("UPDATE telemetry_events SET id = -id * 10 + 3")
    source.execute("ANALYZE telemetry_events")
    where = "event_timestamp >= '2025-10-01'"
    want = sorted(r[0] for r in source.execute(f"SELECT id FROM telemetry_events WHERE {where}"))
    table_rows = reader.estimate_rows(source.url, "telemetry_events")

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
    assert len(streams) >= 4, f"expected several key ranges, got {streams}"
    lows = [r[0] for r in streams if r is not None]
    assert lows == sorted(lows), "ranges are walked in key order"


def test_an_empty_read_opens_no_stream(
    source: Source, streams: list[tuple[int, int] | None]
) -> None:
    batches = reader.read_batches(
        source.url,
        TELEMETRY.source_query("event_timestamp < '1900-01-01'"),
        batch_size=300,
        partition_on="id",
        chunk_rows=1000,
        table_rows=6000,
    )
    assert list(batches) == []
    assert streams == []


def test_an_import_read_in_key_ranges_equals_the_source(
    config: Config, source: Source, ch: Target, streams: list[tuple[int, int] | None]
) -> None:
    source.execute("ANALYZE telemetry_events")
    # 6,000 events at 1,000 rows a batch: above 4 batches, so read in ranges of 4,000 rows.
    result = import_olap_data(config=config.with_(batch_size=1000))
    assert isinstance(result, ImportResult)

    assert len(streams) >= 2
    assert_same(target_partitions(ch), source_partitions(source))
