"""The reliability suite: kills, retries, bad input, hostile requests, secrets, timezones.

Each test adds what it proved to `TALLY`; the session ends with one summary line.
"""

from __future__ import annotations

import pytest

from tests.support import TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLY:
        return
    terminalreporter.write_line(
        f"reliability: {TALLY['kills']} kills survived, {TALLY['bad_kinds']} bad-row kinds, "
        f"{TALLY['api_cases']} API cases, {TALLY['lost_rows']} lost rows, "
        f"{TALLY['leaks']} leaks"
    )
