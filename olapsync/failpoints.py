"""Named steps where the reliability tests kill a run, to prove that a run killed anywhere
leaves every table entirely old or entirely new (`tests/reliability/test_kills.py`).

A no-op unless the environment variable `OLAPSYNC_FAILPOINT` names the step: then the
process SIGKILLs itself there, as a crash or an OOM kill would. Nothing else in olapsync reads
the variable, and no failpoint changes what a run does; it only ends it.
"""

from __future__ import annotations

import os
import signal

FAILPOINT_ENV = "OLAPSYNC_FAILPOINT"

# In the order a run passes them.
KILL_POINTS = (
    "after-candidates",
    "after-extract",
    "during-staging-insert",
    "after-partitions-kept",
    "after-appends",
    "during-orphan-cleanup",
    "after-staging-check",
    "after-records",
    "after-users-swap",
    "after-telemetry-swap",
    "before-ledger",
)

# Steps only a sync passes (it reads new rows first, and appends them to months it keeps).
SYNC_ONLY = ("after-candidates", "after-appends")


def failpoint(name: str) -> None:
    """SIGKILL this process when `OLAPSYNC_FAILPOINT` is `name`; otherwise do nothing.

    Raises:
        ValueError: `name` is not one of `KILL_POINTS` (a typo would never fire).
    """
    if name not in KILL_POINTS:
        raise ValueError(f"unknown failpoint {name!r}: add it to KILL_POINTS")
    if os.environ.get(FAILPOINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
