"""The `olapsync` command as a user runs it: separate processes, exit codes, messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from olapsync.generate import BAD_ROWS
from tests.conftest import SMALL_EVENTS, Source

CHECK = """
import json, sys
from olapsync.clickhouse import Target
from olapsync.config import Config
from tests.helpers import checksums, users_checksum
cfg = Config(clickhouse_url=sys.argv[1], database="olap")
with Target(cfg) as t:
    tables = t.tables()
    ledger = t.rows("SELECT run_id, status FROM olap.olapsync_runs") if "olapsync_runs" in tables else []
    print(json.dumps({"parts": checksums(t), "users": users_checksum(t),
                      "ledger": [list(r) for r in ledger],
                      "dupes": t.scalar("SELECT count() - uniqExact(id) FROM olap.telemetry_events")}))
"""


def cli(
    *args: str, env: dict[str, str] | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OLAPSYNC_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "olapsync", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def state(folder: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [sys.executable, "-c", CHECK, f"chdb://{folder}"],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    out["users"] = tuple(out["users"])
    out["parts"] = {k: tuple(v) for k, v in out["parts"].items()}
    return out


def urls(source: Source, folder: Path) -> dict[str, str]:
    return {
        "OLAPSYNC_CRM_URL": source.url,
        "OLAPSYNC_TELEMETRY_URL": source.url,
        "OLAPSYNC_CLICKHOUSE_URL": f"chdb://{folder}",
    }


def test_import_json_and_seed_spelling(source: Source, tmp_path: Path) -> None:
    done = cli(
        "import",
        "--telemetry_start_ts=2025-09-01 00:00:00",
        "--telemetry_end_ts=2026-04-01T00:00:00Z",
        "--json",
        env=urls(source, tmp_path),
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "success"
    assert result["events_loaded"] == SMALL_EVENTS
    # The planted 1969 and 'infinity' rows lie outside the window: not read, not rejected.
    assert result["events_rejected"] == len(BAD_ROWS) - 2
    assert result["window"] == {
        "start": "2025-09-01T00:00:00+00:00",
        "end": "2026-04-01T00:00:00+00:00",
    }
    status = cli("status", "--json", env=urls(source, tmp_path))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["tables"]["telemetry_events"] == SMALL_EVENTS


def test_dry_run_prints_the_plan_and_creates_nothing(source: Source, tmp_path: Path) -> None:
    done = cli(
        "import",
        "--dry-run",
        "--telemetry-start-ts",
        "2026-01-01",
        "--telemetry-end-ts",
        "2026-02-01",
        env=urls(source, tmp_path),
    )
    assert done.returncode == 0, done.stderr
    assert "Dry run" in done.stdout
    assert "202601" in done.stdout
    assert not tmp_path.joinpath("store").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["import", "--telemetry-start-ts", "yesterday"], "is not a timestamp"),
        (["import", "--max-rejected-ratio", "2"], "--max-rejected-ratio"),
        (["import", "--no-such-option"], "No such option"),
    ],
)
def test_usage_errors_exit_2(args: list[str], fragment: str) -> None:
    done = cli(*args)
    assert done.returncode == 2
    assert fragment in done.stderr


def test_reversed_window_is_one_clear_line(tmp_path: Path) -> None:
    done = cli(
        "import",
        "--telemetry-start-ts",
        "2026-02-01",
        "--telemetry-end-ts",
        "2026-01-01",
        "--clickhouse-url",
        f"chdb://{tmp_path}",
    )
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: The window start 2026-02-01")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("verbose", [False, True])
def test_unreachable_database_exits_1_without_the_password(tmp_path: Path, verbose: bool) -> None:
    secret = "Sup3r-S3cret-pw"
    env = {
        "OLAPSYNC_CRM_URL": f"postgresql://app:{secret}@127.0.0.1:1/crm",
        "OLAPSYNC_TELEMETRY_URL": f"postgresql://app:{secret}@127.0.0.1:1/telemetry",
        "OLAPSYNC_CLICKHOUSE_URL": f"chdb://{tmp_path}",
    }
    done = cli("import", *(["-v"] if verbose else []), env=env)
    assert done.returncode == 1
    assert secret not in done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: PostgreSQL at postgresql://app:***@127.0.0.1:1/crm")
    if not verbose:
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_unreachable_clickhouse_server_is_redacted(source: Source) -> None:
    secret = "Ch-S3cret-pw"
    env = {
        **urls(source, Path("/nonexistent")),
        "OLAPSYNC_CLICKHOUSE_URL": f"http://default:{secret}@127.0.0.1:1",
    }
    done = cli("import", env=env)
    assert done.returncode == 1
    assert secret not in done.stdout + done.stderr
    assert "http://default:***@127.0.0.1:1" in done.stderr


def test_a_held_chdb_folder_is_a_clear_error(source: Source, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from olapsync.clickhouse import Target; from olapsync.config import Config;"
            f"t = Target(Config(clickhouse_url='chdb://{tmp_path}')); print('ready', flush=True);"
            "sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        done = cli("import", env=urls(source, tmp_path))
    finally:
        holder.communicate("", timeout=60)
    assert done.returncode == 1
    assert f"The embedded ClickHouse folder {tmp_path} is in use by pid {holder.pid}" in done.stderr


def test_results_are_the_same_under_another_timezone(source: Source, tmp_path: Path) -> None:
    utc, ny = tmp_path / "utc", tmp_path / "ny"
    assert cli("import", env={**urls(source, utc), "TZ": "UTC"}).returncode == 0
    done = cli("import", env={**urls(source, ny), "TZ": "America/New_York"})
    assert done.returncode == 0, done.stderr
    a, b = state(utc, {"TZ": "UTC"}), state(ny, {"TZ": "America/New_York"})
    assert a["parts"] == b["parts"]
    assert a["users"] == b["users"]
    # A window given without a zone is UTC in both.
    for folder, tz in ((utc, "UTC"), (ny, "America/New_York")):
        done = cli(
            "import",
            "--telemetry-start-ts",
            "2026-01-15 00:00:00",
            "--telemetry-end-ts",
            "2026-02-01",
            "--json",
            env={**urls(source, folder), "TZ": tz},
        )
        assert json.loads(done.stdout)["edge_rows_kept"] > 0
    assert state(utc)["parts"] == state(ny)["parts"]


def test_sigkill_leaves_every_table_old_or_new(source: Source, tmp_path: Path) -> None:
    folder, reference = tmp_path / "target", tmp_path / "reference"
    assert cli("import", env=urls(source, folder)).returncode == 0
    old = state(folder)
    # The next run changes every partition and the users.
    source.execute("UPDATE telemetry_events SET signal_duration = signal_duration + 1")
    source.execute("UPDATE users SET name = name || ' Jr.'")
    source.execute("DELETE FROM users WHERE user_id = 6")
    assert cli("import", env=urls(source, reference)).returncode == 0
    new = state(reference)
    assert set(old["parts"]) == set(new["parts"])
    assert all(old["parts"][p] != new["parts"][p] for p in old["parts"])

    points = [
        "after-extract",
        "during-staging-insert",
        "after-staging-check",
        "after-users-swap",
        "between-partition-swaps",
        "before-ledger",
    ]
    for point in points:
        done = cli("import", env={**urls(source, folder), "OLAPSYNC_FAILPOINT": point})
        assert done.returncode == -9, (point, done.stderr)
        now = state(folder)
        for pid, value in now["parts"].items():
            assert value in (old["parts"][pid], new["parts"][pid]), (point, pid)
        assert set(now["parts"]) == set(old["parts"]), point
        assert now["users"] in (old["users"], new["users"]), point
        assert now["dupes"] == 0, point
        assert [r for r in now["ledger"] if r[1] == "success"] == old["ledger"], point
    mixed = state(folder)
    assert mixed["users"] == new["users"], "the users swap happened before the last kills"

    done = cli("import", "--json", env=urls(source, folder))
    assert done.returncode == 0, done.stderr
    final = state(folder)
    assert final["parts"] == new["parts"]
    assert final["users"] == new["users"]
    assert json.loads(done.stdout)["events_rejected"] == len(BAD_ROWS)
