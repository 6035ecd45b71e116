"""`olapsync demo`: generated data in an embedded PostgreSQL, imported into the embedded
ClickHouse, with nothing to configure (the README's first command, at a small size)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from olapsync.generate import BAD_ROWS, ORPHAN_EVENTS
from olapsync.pgembed import EmbeddedPostgres
from tests.support import cli

pytestmark = pytest.mark.integration


def test_the_demo_imports_generated_data_and_a_second_run_reuses_it_edits_included(
    tmp_path: Path,
) -> None:
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

    # An edit of the demo's PostgreSQL is kept: the next run (the "Next:" hint) imports it.
    with EmbeddedPostgres(tmp_path / "postgres") as server:
        server.psql("DELETE FROM users WHERE user_id = 7", database="crm")
    third = cli("demo", *size, *month)
    assert third.returncode == 0, third.stderr
    assert (
        f"Reusing the demo data in {tmp_path / 'postgres'} as edited since it was generated: "
        "29 users and 3,013 events now" in third.stderr
    )
    assert json.loads(third.stdout)["users_loaded"] == 29

    # Other sizes replace it, and say so first.
    fourth = cli("demo", *size[:1], "20", *size[2:])
    assert fourth.returncode == 0, fourth.stderr
    assert (
        f"The demo data in {tmp_path / 'postgres'} was generated with 30 users and 3,000 events "
        "(+8 bad rows, +5 orphan events), not 20 users and 3,000 events (+8 bad rows, "
        "+5 orphan events) as asked: generating it again." in fourth.stderr
    )
    assert "Generated 20 users and 3,000 events" in fourth.stderr
