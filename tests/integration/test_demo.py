"""`olapsync demo`: generated data in an embedded PostgreSQL, imported into the embedded
ClickHouse, with nothing to configure (the README's first command, at a small size)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from olapsync.generate import BAD_ROWS, ORPHAN_EVENTS
from tests.support import cli

pytestmark = pytest.mark.integration


def test_the_demo_imports_generated_data_and_a_second_run_reuses_it(tmp_path: Path) -> None:
    size = ("--users", "30", "--events", "3000", "--data-dir", str(tmp_path), "--json")
    first = cli("demo", *size)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["status"] == "success"
    assert result["users_loaded"] == 30
    assert result["events_loaded"] == 3000
    assert result["events_rejected"] == len(BAD_ROWS)
    assert result["events_skipped_orphans"] == ORPHAN_EVENTS
    assert "Generated 30 users and 3,000 events (+8 bad rows, +5 orphan events)" in first.stderr
    assert f"chdb://{tmp_path / 'clickhouse'}" in first.stderr  # how to look at it next
    # The server it started is stopped again.
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()

    month = ("--telemetry-start-ts", "2026-01-01", "--telemetry-end-ts", "2026-02-01")
    second = cli("demo", *size, *month)
    assert second.returncode == 0, second.stderr
    assert "Reusing 30 users and 3,000 events" in second.stderr
    again = json.loads(second.stdout)
    assert again["partitions_replaced"] == ["202601"]
    assert again["events_loaded"] == result["rows_per_partition"]["202601"]
