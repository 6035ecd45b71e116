"""Failpoints do nothing unless OLAPSYNC_FAILPOINT names them (tests/reliability/test_kills.py
sets it, in a child process, and sees the run killed there)."""

from __future__ import annotations

import pytest

from olapsync.failpoints import FAILPOINT_ENV, KILL_POINTS, failpoint


def test_every_failpoint_is_a_no_op_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAILPOINT_ENV, raising=False)
    for name in KILL_POINTS:
        failpoint(name)  # still alive
    monkeypatch.setenv(FAILPOINT_ENV, KILL_POINTS[-1])
    for name in KILL_POINTS[:-1]:
        failpoint(name)


def test_a_misspelt_failpoint_is_an_error_not_a_silent_no_op() -> None:
    with pytest.raises(ValueError, match="unknown failpoint 'after-extrakt'"):
        failpoint("after-extrakt")
