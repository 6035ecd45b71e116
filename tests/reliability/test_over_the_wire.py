"""The import, sync, verify and report tests again, through clickhouse-connect's HTTP client, against a
test-only ClickHouse HTTP endpoint backed by chDB (tests/chhttp.py). Point
OLAPSYNC_TEST_CLICKHOUSE_URL at a real server to run the whole suite against it instead."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from olapsync import TargetError
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.lock import RunLock
from tests.chhttp import ChdbHttpServer
from tests.integration.test_import import (  # noqa: F401  (collected again, over HTTP)
    test_a_full_import_drops_partitions_the_source_no_longer_has,
    test_a_second_concurrent_run_fails_fast,
    test_dry_run_changes_nothing,
    test_each_bad_row_kind_is_quarantined_with_a_reason,
    test_full_import_equals_the_source,
    test_orphans_are_gone_from_every_partition,
    test_rerunning_a_window_changes_nothing,
    test_shrink_guard,
    test_timestamps_are_utc_and_whole_seconds,
    test_too_many_rejects_publish_nothing,
    test_window_replaces_exactly_start_to_end,
)

# The report fixtures, module-scoped in their own module, must be rebuilt here.
from tests.integration.test_reports import (  # noqa: F401  # noqa: F401, E402
    client,
    data,
    test_a_report_for_its_owner_only,
    test_examples_match_the_source,
    test_invalid_input_is_a_4xx_that_says_why,
    test_post_report_returns_the_seed_shape,
    test_unknown_user_is_404,
    test_user_report_matches_the_source,
)
from tests.integration.test_sync import (  # noqa: F401  (collected again, over HTTP)
    test_a_deleted_user_takes_their_events_along,
    test_a_partition_changed_behind_our_back_is_found_and_repaired,
    test_changes_that_leave_saved_ts_alone_take_verify,
    test_new_rows_are_appended_without_reading_their_month,
)
from tests.reliability.test_idempotency import test_a_retried_insert_is_not_doubled  # noqa: F401
from tests.support import Source, cli

PASSWORD = "wire-pw-7"


@pytest.fixture(scope="module")
def endpoint(chdb_dir: Path) -> Iterator[ChdbHttpServer]:
    with ChdbHttpServer(str(chdb_dir), password=PASSWORD) as server:
        yield server


@pytest.fixture(scope="module")
def clickhouse_url(endpoint: ChdbHttpServer) -> str:
    return endpoint.url()


def test_the_endpoint_is_really_used(endpoint: ChdbHttpServer, clickhouse_url: str) -> None:
    before = endpoint.requests
    with Target(Config(clickhouse_url=clickhouse_url, database="wire_check")) as target:
        assert target.client.__class__.__name__ == "HttpClient"
        assert target.scalar("SELECT {x:UInt8} + 1", {"x": 1}) == 2
        target.command("DROP DATABASE IF EXISTS wire_check")
    assert endpoint.requests > before


def test_a_wrong_password_is_refused_clearly(endpoint: ChdbHttpServer) -> None:
    with pytest.raises(TargetError, match="refused the login") as info:
        Target(Config(clickhouse_url=endpoint.url("wrong-pw-1")))
    assert "wrong-pw-1" not in str(info.value)


def test_a_run_that_finds_the_lock_held_exits_75(endpoint: ChdbHttpServer, source: Source) -> None:
    # A ClickHouse server is shared by processes; another run (here: this process) holds the
    # target's run lock. The command exits 75 (EX_TEMPFAIL), so cron can skip it quietly.
    config = Config(clickhouse_url=endpoint.url(), database="lock_" + uuid.uuid4().hex[:8])
    env = {
        "OLAPSYNC_CRM_URL": source.url,
        "OLAPSYNC_TELEMETRY_URL": source.url,
        "OLAPSYNC_CLICKHOUSE_URL": endpoint.url(),
        "OLAPSYNC_CLICKHOUSE_DATABASE": config.database,
    }
    try:
        with Target(config) as target, RunLock(target, "the-other-run"):
            done = cli("import", env=env)
    finally:
        with Target(config) as target:
            target.command(f"DROP DATABASE IF EXISTS `{config.database}` SYNC")
    assert done.returncode == 75, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: Another olapsync run (the-other-run, pid ")
    assert PASSWORD not in done.stdout + done.stderr
