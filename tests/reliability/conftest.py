"""The reliability suite: kills, retries, bad input, hostile requests, secrets, timezones.

Each test adds what it proved to `TALLY`; the session ends with one summary line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import TALLY, PgServer

ROLE = "secret_user"


@pytest.fixture(scope="module")
def password_role(pg: PgServer) -> Iterator[str]:
    """A role that must log in with a password (scram), whatever the server's default."""
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
        conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD 'the-right-one'")
        hba = Path(conn.execute("SHOW hba_file").fetchone()[0])  # type: ignore[index]
        original = hba.read_text()
        hba.write_text(
            f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n"
            f"host all {ROLE} ::1/128 scram-sha-256\n" + original
        )
        conn.execute("SELECT pg_reload_conf()")
    yield ROLE
    hba.write_text(original)
    with psycopg.connect(pg.admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY:
        return
    terminalreporter.write_line(
        f"reliability: {TALLY['kills']} kills survived, {TALLY['bad_kinds']} bad-row kinds, "
        f"{TALLY['api_cases']} API cases, {TALLY['lost_rows']} lost rows, "
        f"{TALLY['leaks']} leaks"
    )
