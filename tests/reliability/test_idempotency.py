"""The same window three times gives identical partitions; a retried insert never doubles."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from olapsync import TELEMETRY, ImportResult, import_olap_data
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.generate import BAD_ROWS
from tests.support import SMALL_EVENTS, TALLY, Source, checksums, cli, urls


def run(config: Config, *window: datetime) -> ImportResult:
    return import_olap_data(*window, config=config)


def test_the_same_window_three_times_is_identical(config: Config, ch: Target) -> None:
    run(config)
    window = (datetime(2025, 11, 10), datetime(2026, 1, 20))
    sums = []
    for _ in range(3):
        run(config, *window)
        sums.append(checksums(ch))
    assert sums[0] == sums[1] == sums[2]
    assert sum(n for n, _ in sums[0].values()) == SMALL_EVENTS
    rejected = ch.scalar(f"SELECT count() FROM {ch.t('telemetry_events_rejected')}")
    assert rejected >= len(BAD_ROWS)


def test_a_retried_insert_is_not_doubled(
    config: Config, ch: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first staging insert lands, then its acknowledgement is "lost": the importer
    # retries the same batch with the same token and ClickHouse drops the duplicate.
    insert = Target.insert_arrow
    lost: list[str] = []

    def insert_and_lose_the_answer(
        self: Target, table: str, data: pa.Table, *, settings: dict[str, Any] | None = None
    ) -> None:
        insert(self, table, data, settings=settings)
        if table == TELEMETRY.staging and not lost:
            lost.append(table)
            # What the driver raises when the connection drops before the answer arrives.
            reset = OperationalError("Connection reset by peer")
            raise self.wrap(reset, f"insert into {table}", table=table)

    monkeypatch.setattr(Target, "insert_arrow", insert_and_lose_the_answer)
    result = run(config)
    assert lost
    assert result.insert_retries == 1
    assert result.events_loaded == SMALL_EVENTS
    assert ch.count("telemetry_events") == SMALL_EVENTS
    assert ch.scalar(f"SELECT count() - uniqExact(id) FROM {ch.t('telemetry_events')}") == 0
    TALLY["lost_rows"] += SMALL_EVENTS - ch.count("telemetry_events")


def test_the_token_decides_what_is_a_duplicate(config: Config, ch: Target) -> None:
    # The control for the test above: the token, not luck, drops the retry.
    run(config)
    batch = pa.table(
        {
            "run_id": ["r"],
            "rejected_at": pa.array([0], pa.uint32()),
            "id": pa.array([1], pa.int64()),
            "reason": ["x"],
            "source_row": ["{}"],
        }
    )
    table = "telemetry_events_rejected"
    before = ch.count(table)
    ch.insert_arrow(table, batch, settings={"insert_deduplication_token": "same"})
    ch.insert_arrow(table, batch, settings={"insert_deduplication_token": "same"})
    assert ch.count(table) == before + 1
    # The same rows under another token are another insert: the token is what decides.
    ch.insert_arrow(table, batch, settings={"insert_deduplication_token": "other"})
    assert ch.count(table) == before + 2


def test_repeated_runs_do_not_grow_the_folder(source: Source, tmp_path: Path) -> None:
    """Each run drops the table it replaced two runs ago, so the parts on disk stay bounded
    even though every run is a short-lived process that exits right after publishing."""
    folder = tmp_path / "ch"

    def part_dirs() -> int:
        return sum(1 for p in folder.glob("store/*/*/*") if p.is_dir() and p.name[0].isdigit())

    counts = []
    for _ in range(5):
        assert cli("import", env=urls(source, folder)).returncode == 0
        counts.append(part_dirs())
    print("part directories after each run:", counts)
    assert counts[-1] <= counts[1], counts
