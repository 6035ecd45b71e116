"""The `olapsync` command as a user runs it: separate processes, exit codes, messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from olapsync.generate import BAD_ROWS
from tests.support import SMALL_EVENTS, Source, cli, state, urls


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
    assert done.returncode == 2  # refused up front, as a usage error
    assert "The window start 2026-02-01" in done.stderr
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


@pytest.mark.parametrize(
    ("holder_argv", "command", "status"),
    [
        (None, "import", 1),  # a notebook, say: it holds the folder until stopped
        (["olapsync", "serve"], "sync", 1),
        (["olapsync", "import"], "sync", 75),  # another run: a scheduler may skip this one
        (["olapsync", "sync"], "verify", 75),
        (["olapsync", "verify"], "import", 75),
    ],
)
def test_a_held_chdb_folder_is_a_clear_error(
    source: Source,
    tmp_path: Path,
    holder_argv: list[str] | None,
    command: str,
    status: int,
) -> None:
    assert cli("init", env=urls(source, tmp_path)).returncode == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys; sys.argv = {holder_argv!r} or sys.argv;"
            "from olapsync.clickhouse import Target; from olapsync.config import Config;"
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
        done = cli(command, env=urls(source, tmp_path))
    finally:
        holder.communicate("", timeout=60)
    assert done.returncode == status, done.stderr
    assert f"The embedded ClickHouse folder {tmp_path} is in use by pid {holder.pid}" in done.stderr
    assert ("try again when it finishes" in done.stderr) == (status == 75)


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


# As if the `service` extra were not installed: its packages cannot be imported.
WITHOUT_SERVICE = """
import sys

for name in ("starlette", "uvicorn", "httptools", "uvloop"):
    sys.modules[name] = None
from olapsync.cli import main

main()
"""


def test_serve_without_the_service_extra_says_which_extra_to_install(tmp_path: Path) -> None:
    env = {"OLAPSYNC_CLICKHOUSE_URL": f"chdb://{tmp_path}"}
    done = cli("serve", code=WITHOUT_SERVICE, env=env)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: The reports service needs the 'service' extra (uvicorn is missing): "
        "pip install 'olapsync[service]' (`uv run` in a clone installs it)."
    )
    # Everything else works without it.
    done = cli("status", "--json", code=WITHOUT_SERVICE, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tables"] == {}


def test_serve_and_python_m_reports_take_the_same_options() -> None:
    serve = cli("serve", "--help")
    reports = subprocess.run(
        [sys.executable, "-m", "reports", "--help"], capture_output=True, text=True, check=True
    )
    assert serve.returncode == 0, serve.stderr
    # One table of options (olapsync.service.OPTIONS) makes both.
    from olapsync.service import OPTIONS

    for option in OPTIONS:
        assert option.flag in serve.stdout
        assert option.flag in reports.stdout
    for default in ("127.0.0.1", "3003", "4"):  # --host, --port, --pool
        assert f"(default {default})" in serve.stdout.replace("\n", " ")
        assert f"(default {default})" in reports.stdout
