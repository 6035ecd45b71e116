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
        (["report"], "Missing argument 'USER_ID'"),
        (["no-such-command"], "No such command 'no-such-command'"),
        (["sync", "--lag", "soon"], "--lag 'soon' is not a duration"),
        (["serve", "--port", "http"], "'http' is not a valid integer"),
    ],
)
def test_usage_errors_exit_2_with_the_one_error_prefix(args: list[str], fragment: str) -> None:
    done = cli(*args)
    assert done.returncode == 2
    # click's usage lines, then the error in the words and prefix of every other error
    # (click itself would print `Error: ...`).
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), done.stderr
    assert fragment in last
    assert "Error:" not in done.stderr
    assert done.stderr.startswith("Usage: "), done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--clickhouse-url", "chdb://relative/path"],  # ConfigError
        ["serve", "--host", "0.0.0.0"],  # the service's refusal
        ["report", "1", "--clickhouse-url", "chdb:///nonexistent/olapsync"],  # TargetError
    ],
    ids=["config", "serve-refusal", "target"],
)
def test_every_other_error_is_one_line_with_the_same_prefix(args: list[str]) -> None:
    done = cli(*args)
    assert done.returncode in (1, 2)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines


REVERSED = ["--telemetry-start-ts", "2026-03-01 00:00:00", "--telemetry-end-ts", "2026-01-01"]
CH = ["--clickhouse-url", "chdb://{folder}"]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["import", *REVERSED, *CH], "telemetry_start_ts is after telemetry_end_ts"),
        (["import", "--dry-run", *REVERSED, *CH], "telemetry_start_ts is after telemetry_end_ts"),
        (["demo", *REVERSED, "--data-dir", "{folder}"], "telemetry_start_ts is after"),
        (["report", "1", "--start-ts", "2026-03-01", "--end-ts", "2026-01-01", *CH], "start_ts"),
    ],
    ids=["import", "dry-run", "demo", "report"],
)
def test_a_reversed_window_is_a_usage_error_in_the_services_words(
    tmp_path: Path, command: list[str], message: str
) -> None:
    # POST /report answers 422 "start_ts is after end_ts (...): swap them." for the same
    # window, and the Python API raises a ConfigError with the same words.
    folder = tmp_path / "data"
    done = cli(*(a.replace("{folder}", str(folder)) for a in command))
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert line.startswith(f"error: {message}"), line
    assert line.endswith("end_ts (2026-03-01 00:00:00 UTC > 2026-01-01 00:00:00 UTC): swap them.")
    assert "\n" not in line
    assert not folder.exists()  # refused before anything was started or opened


def test_an_empty_import_window_is_a_usage_error_too(tmp_path: Path) -> None:
    same = ["--telemetry-start-ts", "2026-01-01", "--telemetry-end-ts", "2026-01-01 00:00:00"]
    done = cli("import", *same, "--clickhouse-url", f"chdb://{tmp_path / 'ch'}")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: The window start 2026-01-01 00:00:00.000000 is not")
    assert not (tmp_path / "ch").exists()


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
    missing = (
        "error: The reports service needs the 'service' extra (uvicorn is missing): "
        "pip install 'olapsync[service]' (`uv run` in a clone installs it)."
    )
    done = cli("serve", code=WITHOUT_SERVICE, env=env)
    assert (done.returncode, done.stderr.strip()) == (2, missing)
    # `python -m reports` says the same, with the same status.
    reports = WITHOUT_SERVICE.replace(
        "from olapsync.cli import main", "from reports.__main__ import main"
    )
    done = cli(code=reports, env=env)
    assert (done.returncode, done.stderr.strip()) == (2, missing)
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


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--host", "0.0.0.0"], {}, "Refusing to serve reports on 0.0.0.0 without sign-in"),
        (["--host", "::"], {}, "Refusing to serve reports on :: without sign-in"),
        (["--oidc-audience", "x"], {}, "OLAPSYNC_OIDC_AUDIENCE or OLAPSYNC_OIDC_JWKS_URL is set"),
        (
            [],
            {"OLAPSYNC_OIDC_ISSUER": "https://sso.example/realms/clinic"},
            "OLAPSYNC_OIDC_AUDIENCE is missing",
        ),
        ([], {"OLAPSYNC_CLICKHOUSE_URL": "ftp://alice:pw@127.0.0.1:1"}, "OLAPSYNC_CLICKHOUSE_URL"),
    ],
    ids=["public-host", "public-ipv6", "audience-only", "issuer-only", "bad-url"],
)
def test_a_refused_service_setting_exits_2_from_both_entry_points(
    args: list[str], env: dict[str, str], message: str
) -> None:
    # docs/service.md: the service refuses to start with exit 2 and one line on stderr.
    for command in (["serve"], None):
        if command is None:
            done = cli(*args, code="from reports.__main__ import main; main()", env=env)
        else:
            done = cli(*command, *args, env=env)
        assert done.returncode == 2, (command, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("error: "), lines
        assert message in lines[0], lines
        assert "pw" not in done.stderr


CLOSED_PORT = "http://alice:Cl0sed-Port-pw@127.0.0.1:1/olap"


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["import"],
        ["report", "1"],
        ["sync"],
        ["serve"],
        ["-c", "from reports.__main__ import main; main()"],
    ],
    ids=["status", "import", "report", "sync", "serve", "python-m-reports"],
)
def test_a_closed_port_is_one_line_without_the_libraries_logs(command: list[str]) -> None:
    # urllib3 ("Retrying (Retry(total=0...)) after connection broken by NewConnectionError")
    # and clickhouse-connect ("Unexpected Http Driver Exception") used to print first.
    env = {"OLAPSYNC_CLICKHOUSE_URL": CLOSED_PORT}
    done = cli(code=command[1], env=env) if command[0] == "-c" else cli(*command, env=env)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        "error: ClickHouse at http://alice:***@127.0.0.1:1/olap is unreachable"
    )
    assert "Cl0sed-Port-pw" not in done.stdout + done.stderr


def test_verbose_output_shows_the_libraries_logs_without_the_password() -> None:
    done = cli("status", "-v", "--clickhouse-url", CLOSED_PORT)
    assert done.returncode == 1, done.stderr
    assert "urllib3" in done.stderr  # asked for: every library's view of the failure
    assert "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: ClickHouse at http://alice:***@")
    assert "Cl0sed-Port-pw" not in done.stdout + done.stderr
