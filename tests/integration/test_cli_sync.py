"""`olapsync sync` and `olapsync verify` as a scheduler runs them: separate processes, what
they print, their JSON, and their exit statuses (0, 2, 3, 75)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.lock import RunLock
from tests.chhttp import ChdbHttpServer
from tests.integration.test_sync import add_rows
from tests.support import Source, cli, state, urls

RESULT_FIELDS = {
    "run_id", "status", "kind", "window", "users_loaded", "users_before", "events_loaded",
    "events_rejected", "events_skipped_orphans", "orphans_removed", "duplicates_rejected",
    "edge_rows_kept", "insert_retries", "partitions_replaced", "partitions_dropped",
    "partitions_appended", "partitions_cleaned", "months", "watermark", "rows_per_partition",
    "rows_appended", "rows_removed", "seconds",
}  # fmt: skip
PLAN_FIELDS = {
    "status", "full", "since", "access", "candidates", "months", "orphans_removed",
    "users_source", "users_current",
}  # fmt: skip
REPORT_FIELDS = {"ok", "database", "checks", "drifted", "seconds", "repaired", "notes"}
CHECK_FIELDS = {
    "table", "partition", "status", "source_rows", "target_rows", "loaded", "rejected",
    "skipped", "detail",
}  # fmt: skip


def run(*args: str, env: dict[str, str], code: int = 0) -> subprocess.CompletedProcess[str]:
    done = cli(*args, env=env)
    assert done.returncode == code, done.stdout + done.stderr
    return done


def test_sync_names_each_month_it_changes_and_why(source: Source, tmp_path: Path) -> None:
    env = urls(source, tmp_path)
    first = json.loads(run("sync", "--json", env=env).stdout)
    assert first.keys() == RESULT_FIELDS
    assert first["kind"] == "sync"
    assert first["partitions_replaced"]  # the first sync is a full import
    datetime.fromisoformat(first["watermark"])

    add_rows(source, "202603", 25)
    add_rows(source, "202510", 7, first=200000)
    out = run("sync", env=env).stdout
    assert "olapsync sync" in out
    for line in ("│ 202510 │ appended │ late rows │", "│ 202603 │ appended │ new rows  │"):
        assert line in out
    assert "watermark" in out

    add_rows(source, "202603", 3, first=300000)
    result = json.loads(run("sync", "--json", env=env).stdout)
    # "late rows" now: the last sync's watermark is today, long after March 2026.
    assert result["months"] == {"202603": ["late rows"]}
    assert result["partitions_appended"] == ["202603"]
    assert result["events_loaded"] == 3  # the appended rows, none read again
    assert result["watermark"] >= first["watermark"]

    out = run("sync", "--lag", "0", env=env).stdout
    assert "Nothing changed since the last run" in out


def test_a_dry_run_shows_each_month_and_how_postgres_finds_the_rows(
    source: Source, tmp_path: Path
) -> None:
    env = urls(source, tmp_path)
    out = run("sync", "--dry-run", env=env).stdout
    assert "the first sync will be a full import" in out
    assert not tmp_path.joinpath("store").exists()  # nothing created, not even the database

    run("sync", env=env)
    add_rows(source, "202603", 5)
    # A re-save of an old row that also moves it to another user: its month is rebuilt.
    source.execute("UPDATE telemetry_events SET saved_ts = now(), user_id = 2 WHERE id = 12")
    (month_12,) = source.execute(
        "SELECT to_char(event_timestamp, 'YYYYMM') FROM telemetry_events WHERE id = 12"
    )[0]
    before = state(tmp_path)

    out = run("sync", "--dry-run", env=env).stdout
    assert "Dry run" in out
    assert "│ 202603 │ append  │ new rows │" in out
    assert f"│ {month_12} │ rebuild │ changed  │" in out
    assert "PostgreSQL would scan the whole telemetry_events table" in out
    assert "CREATE INDEX ON telemetry_events (saved_ts);" in out

    plan = json.loads(run("sync", "--dry-run", "--json", env=env).stdout)
    assert plan.keys() == PLAN_FIELDS
    assert (plan["full"], plan["access"]) == (False, "scan")
    assert plan["candidates"] >= 6
    datetime.fromisoformat(plan["since"])
    assert plan["months"]["202603"] == {
        "action": "append", "reasons": ["new rows"], "rows": 5, "removed": 0,
    }  # fmt: skip
    assert plan["months"][month_12]["action"] == "rebuild"

    assert state(tmp_path) == before  # no month, user or ledger row changed

    source.execute("CREATE INDEX ON telemetry_events (saved_ts)")
    out = run("sync", "--dry-run", env=env).stdout
    assert "through an index on saved_ts" in out
    assert "CREATE INDEX" not in out


def test_a_dry_run_prints_the_events_of_users_gone_the_sync_then_removes(
    source: Source, tmp_path: Path
) -> None:
    env = urls(source, tmp_path)
    run("sync", env=env)
    source.execute("DELETE FROM users WHERE user_id = 9")
    (gone,) = source.execute(
        "SELECT count(*) FROM telemetry_events WHERE user_id = 9 AND event_timestamp >= "
        "'2025-10-01' AND event_timestamp < '2025-11-01'"
    )[0]
    out = run("sync", "--dry-run", env=env).stdout
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert f"│ 202510 │ clean │ orphans │ {gone:,} removed │" in lines
    assert "orphans removed elsewhere: " in out
    plan = json.loads(run("sync", "--dry-run", "--json", env=env).stdout)

    result = json.loads(run("sync", "--json", env=env).stdout)
    assert result["months"] == {m: v["reasons"] for m, v in plan["months"].items()}
    assert result["partitions_cleaned"] == sorted(plan["months"])
    assert result["partitions_replaced"] == []  # kept, not read again
    assert result["rows_removed"]["202510"] == gone
    assert result["orphans_removed"] == plan["orphans_removed"]


def _alter_clickhouse(folder: Path) -> None:
    """Add three copies of rows to one month, behind olapsync's back, from a process of its
    own (this one holds another chDB folder)."""
    code = (
        "from olapsync.clickhouse import Target; from olapsync.config import Config\n"
        f"with Target(Config(clickhouse_url='chdb://{folder}', database='olap')) as t:\n"
        '    t.command("INSERT INTO olap.telemetry_events SELECT * FROM olap.telemetry_events '
        "WHERE _partition_id = '202512' LIMIT 3\")\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize(
    ("change", "month", "status"),
    [
        (
            "UPDATE telemetry_events SET signal_amplitude = signal_amplitude + 1 "
            "WHERE id % 97 = 0 AND event_timestamp >= '2025-11-01' "
            "AND event_timestamp < '2025-12-01'",
            "202511",
            "changed in source",
        ),
        (
            "DELETE FROM telemetry_events WHERE id % 89 = 0 "
            "AND event_timestamp >= '2026-01-01' AND event_timestamp < '2026-02-01'",
            "202601",
            "changed in source",
        ),
        ("clickhouse", "202512", "changed in ClickHouse"),
    ],
    ids=["updated-in-postgres", "deleted-in-postgres", "altered-in-clickhouse"],
)
def test_verify_exits_3_on_drift_and_0_once_repaired(
    source: Source, tmp_path: Path, change: str, month: str, status: str
) -> None:
    env = urls(source, tmp_path)
    run("sync", env=env)
    assert "OK: all " in run("verify", env=env).stdout

    if change == "clickhouse":
        _alter_clickhouse(tmp_path)
    else:
        source.execute(change)  # saved_ts untouched: only the fingerprints can tell

    report = json.loads(run("verify", "--json", env=env, code=3).stdout)
    assert report.keys() == REPORT_FIELDS
    assert (report["ok"], report["drifted"], report["repaired"]) == (False, 1, None)
    assert all(check.keys() == CHECK_FIELDS for check in report["checks"])
    drifted = [c for c in report["checks"] if c["status"] != "ok"]
    assert [(c["partition"], c["status"]) for c in drifted] == [(month, status)]

    out = run("verify", "--repair", env=env).stdout
    assert f"DRIFT: 1 of {len(report['checks'])} checks differ: {month} ({status})" in out
    assert "Repaired by sync " in out
    assert f"│ {month} │ rebuilt │ changed │" in out

    out = run("verify", env=env).stdout
    assert "OK: all " in out
    assert "DRIFT" not in out


def test_verify_before_any_run_says_what_to_do(tmp_path: Path) -> None:
    done = cli("verify", "--clickhouse-url", f"chdb://{tmp_path}")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: Database 'olap' has no olapsync_partitions, olapsync_runs, telemetry_events, "
        "users to verify against: run `olapsync sync` first (or check --database)."
    )


@pytest.mark.parametrize(
    ("command", "value"),
    [("sync", "nonsense"), ("sync", "15"), ("sync", "-5m"), ("verify", "5 minutes")],
)
def test_a_lag_that_is_not_a_duration_is_a_usage_error(command: str, value: str) -> None:
    done = cli(command, "--lag", value)
    assert done.returncode == 2
    assert f"--lag {value!r} is not a duration: use a number with a unit" in done.stderr
    assert "Traceback" not in done.stderr


PASSWORD = "lock-pw-3"


@pytest.fixture(scope="module")
def endpoint(chdb_dir: Path) -> Iterator[ChdbHttpServer]:
    """A ClickHouse reached over HTTP: a server many processes share, where another run's
    lock is a lock (an embedded folder is held by one process, a different error)."""
    with ChdbHttpServer(str(chdb_dir), password=PASSWORD) as server:
        yield server


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("import", "error: Another olapsync run (the-other-run, pid "),
        ("sync", "error: Another olapsync run (the-other-run, pid "),
        ("verify", "error: A run is writing to database "),
    ],
)
def test_a_held_lock_exits_75(
    endpoint: ChdbHttpServer, source: Source, command: str, message: str
) -> None:
    config = Config(clickhouse_url=endpoint.url(), database="lock_" + uuid.uuid4().hex[:8])
    env = {
        "OLAPSYNC_CRM_URL": source.url,
        "OLAPSYNC_TELEMETRY_URL": source.url,
        "OLAPSYNC_CLICKHOUSE_URL": endpoint.url(),
        "OLAPSYNC_CLICKHOUSE_DATABASE": config.database,
    }
    try:
        with Target(config) as target, RunLock(target, "the-other-run"):
            done = cli(command, env=env)
    finally:
        with Target(config) as target:
            target.command(f"DROP DATABASE IF EXISTS `{config.database}` SYNC")
    assert done.returncode == 75, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(message)
    assert PASSWORD not in done.stdout + done.stderr
