"""Every run that starts ends with a ledger row (issue 15, item 7): `success`, `failed` for any
exception (its text redacted), or `interrupted`, written by the next run for one that was
killed (tests/reliability/test_kills.py kills them). Faults are made in the test's own child
processes; olapsync has no switch for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import TALLY, Source, cli, urls

# The run has started (it holds the lock and wrote `running`) when it first counts a table.
FAULT = """
from olapsync.clickhouse import Target
from olapsync.cli import main

def fault(self, table):
    raise {error}

Target.count = fault
main()
"""
LEDGER = """
import json, sys
from olapsync.clickhouse import Target
from olapsync.config import Config
with Target(Config(clickhouse_url=sys.argv[1], database="olap")) as t:
    rows = t.rows("SELECT run_id, argMax(status, finished_at), argMax(error, finished_at) "
                  "FROM olap.olapsync_runs GROUP BY run_id ORDER BY min(started_at)")
print(json.dumps([list(r) for r in rows]))
"""


def ledger(folder: Path) -> list[list[str]]:
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", LEDGER, f"chdb://{folder}"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[list[str]] = json.loads(done.stdout)
    return rows


@pytest.mark.parametrize(
    ("error", "recorded"),
    [
        # An error olapsync did not foresee, carrying a URL with a password.
        ("RuntimeError(f'lost reading {self.config.crm_url}')", "RuntimeError: lost reading"),
        ("MemoryError('out of memory')", "MemoryError: out of memory"),
        ("KeyboardInterrupt()", "KeyboardInterrupt"),  # Ctrl-C, or a scheduler's SIGINT
    ],
)
def test_a_run_that_fails_for_any_reason_is_recorded_failed(
    source: Source, tmp_path: Path, error: str, recorded: str
) -> None:
    folder = tmp_path / "ch"
    assert cli("import", env=urls(source, folder)).returncode == 0
    secret_url = source.url.replace("postgres@", "postgres:Pw-ledger-7@")
    env = {**urls(source, folder), "OLAPSYNC_CRM_URL": secret_url}
    done = cli("import", env=env, code=FAULT.format(error=error))
    assert done.returncode != 0
    rows = ledger(folder)
    assert [status for _, status, _ in rows] == ["success", "failed"]
    assert recorded in rows[-1][2]
    assert "Pw-ledger-7" not in rows[-1][2]
    TALLY["bad_kinds"] += 1


def test_a_killed_run_is_found_and_marked_by_the_next(source: Source, tmp_path: Path) -> None:
    folder = tmp_path / "ch"
    assert cli("import", env=urls(source, folder)).returncode == 0
    env = {**urls(source, folder), "OLAPSYNC_FAILPOINT": "after-extract"}
    assert cli("import", env=env).returncode < 0  # SIGKILLed
    assert [status for _, status, _ in ledger(folder)] == ["success", "running"]
    assert cli("import", env=urls(source, folder)).returncode == 0
    statuses = [status for _, status, _ in ledger(folder)]
    assert statuses == ["success", "interrupted", "success"]
