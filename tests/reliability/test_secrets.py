"""With a password in every URL, no failure path prints it: not stdout, stderr, logs, the
ledger, or exception text."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from olapsync import OlapsyncError, import_olap_data
from olapsync.clickhouse import Target
from olapsync.config import Config
from tests.support import TALLY, Source, cli

SECRET = "Pw-S3cr3t-9f"


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        if SECRET in text:
            TALLY["leaks"] += 1
        assert SECRET not in text


def env_with(crm: str, telemetry: str, clickhouse: str) -> dict[str, str]:
    return {
        "OLAPSYNC_CRM_URL": crm,
        "OLAPSYNC_TELEMETRY_URL": telemetry,
        "OLAPSYNC_CLICKHOUSE_URL": clickhouse,
    }


# An unexpected error (not an OlapsyncError) whose text carries the CRM URL, raised when a
# run first counts a table: the command must redact it like any other. The fault is made
# here, in the test's own child process; olapsync has no switch for it.
CRASH = """
from olapsync.clickhouse import Target
from olapsync.cli import main

def crash(self, table):
    raise RuntimeError(f"simulated crash while reading {self.config.crm_url}")

Target.count = crash
main()
"""


def failure_cases(
    source: Source, role: str, folder: Path
) -> list[tuple[str, list[str], dict[str, str], str | None]]:
    port = source.url.split("@", 1)[1].split("/", 1)[0]
    wrong = f"postgresql://{role}:{SECRET}@{port}/postgres"
    dead = f"postgresql://app:{SECRET}@127.0.0.1:1/crm"
    chdb = f"chdb://{folder}"
    http_dead = f"http://default:{SECRET}@127.0.0.1:1"
    with_password = source.url.replace("postgres@", f"postgres:{SECRET}@")
    return [
        ("unreachable host", ["import"], env_with(dead, dead, chdb), None),
        ("unreachable host -v", ["import", "-v"], env_with(dead, dead, chdb), None),
        ("wrong password", ["import"], env_with(wrong, wrong, chdb), None),
        ("wrong password -v", ["import", "-v"], env_with(wrong, wrong, chdb), None),
        ("wrong password dry-run", ["import", "--dry-run"], env_with(wrong, wrong, chdb), None),
        ("clickhouse down", ["import"], env_with(source.url, source.url, http_dead), None),
        ("clickhouse down -v", ["status", "-v"], env_with(source.url, source.url, http_dead), None),
        ("bad option", ["import", "--crm-url", dead, "--bogus"], {}, None),
        ("bad value", ["import", "--crm-url", f"mysql://u:{SECRET}@h/db"], {}, None),
        ("crash", ["import"], env_with(with_password, source.url, chdb), CRASH),
        ("crash -v", ["import", "-v"], env_with(with_password, source.url, chdb), CRASH),
        (
            "crash, URL as an option",
            ["import", "-v", "--crm-url", with_password],
            env_with(source.url, source.url, chdb),
            CRASH,
        ),
    ]


def test_cli_failure_paths_never_print_the_password(
    source: Source, password_role: str, tmp_path: Path
) -> None:
    for name, args, env, code in failure_cases(source, password_role, tmp_path / "ch"):
        done = cli(*args, env=env, code=code)
        assert done.returncode in (1, 2), (name, done.returncode, done.stderr)
        assert done.stderr.strip(), name
        if code is not None:  # the fault really happened, and was told without the password
            assert "unexpected RuntimeError: simulated crash" in done.stderr, name
        assert_no_secret(done.stdout, done.stderr)
    # The wrong password really was refused for the right reason.
    done = cli("import", env=failure_cases(source, password_role, tmp_path / "ch")[2][2])
    assert "password authentication failed" in done.stderr


def test_exceptions_and_the_ledger_hold_no_password(
    source: Source, password_role: str, chdb_dir: Path
) -> None:
    port = source.url.split("@", 1)[1].split("/", 1)[0]
    wrong = f"postgresql://{password_role}:{SECRET}@{port}/postgres"
    config = Config(
        crm_url=wrong,
        telemetry_url=wrong,
        clickhouse_url=f"chdb://{chdb_dir}",
        database="secrets_test",
    )
    with pytest.raises(OlapsyncError) as info:
        import_olap_data(config=config)
    assert_no_secret(str(info.value), repr(info.value), repr(config), str(config.describe()))
    with Target(config) as target:
        ledger = (
            target.rows("SELECT error FROM secrets_test.olapsync_runs")
            if "olapsync_runs" in target.tables()
            else []
        )
        target.command("DROP DATABASE IF EXISTS secrets_test SYNC")
    assert_no_secret(*(r[0] for r in ledger))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://default:{SECRET}@127.0.0.1:1", "https://default:***@127.0.0.1:1"),
        # Raw '/', '@', '#' in the password: refused, the whole user-info masked.
        (f"https://default:{SECRET[:4]}/{SECRET[4:]}@127.0.0.1:1", "https://***@127.0.0.1:1"),
        (f"https://default:{SECRET[:4]}@{SECRET[4:]}@127.0.0.1:1", "https://***@127.0.0.1:1"),
        (f"https://default:{SECRET[:4]}#{SECRET[4:]}@127.0.0.1:1", "https://***@127.0.0.1:1"),
    ],
)
def test_service_startup_failure_never_prints_the_password(url: str, shown: str) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OLAPSYNC_")},
        "OLAPSYNC_CLICKHOUSE_URL": url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "reports", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Unreachable: a start-up failure (1); a URL refused as written: a usage error (2).
    assert done.returncode == (1 if shown == "https://default:***@127.0.0.1:1" else 2)
    assert shown in done.stderr
    assert_no_secret(done.stdout, done.stderr)
    for part in (SECRET[:4], SECRET[4:]):
        assert part not in done.stdout + done.stderr
