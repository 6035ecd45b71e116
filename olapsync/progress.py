"""Progress reports from long work. The library only calls a callback; the CLI draws."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a run.

    phase: "users", "extract", "stage", "publish" or "done".
    message: one human line.
    rows: rows handled so far in this phase; total: expected rows, when known.
    partitions: rows so far per partition id (extract phase).
    partition: the partition this event is about (stage and publish phases).
    seconds: time since the run started.
    """

    phase: str
    message: str
    rows: int = 0
    total: int | None = None
    partitions: Mapping[str, int] = field(default_factory=dict)
    partition: str | None = None
    seconds: float = 0.0


ProgressCallback = Callable[[ProgressEvent], None]

FAILPOINT_ENV = "OLAPSYNC_FAILPOINT"


def failpoint(name: str) -> None:
    """Test-only: SIGKILL this process when `OLAPSYNC_FAILPOINT` names this step.

    The reliability tests use it to kill a run at an exact step boundary; with the
    variable unset (always, outside tests) it does nothing.
    """
    if os.environ.get(FAILPOINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def fault(name: str) -> bool:
    """Test-only: whether `OLAPSYNC_FAILPOINT` asks to simulate the fault `name` here."""
    return os.environ.get(FAILPOINT_ENV) == name
