"""Progress reports from long work. The library only calls a callback; the CLI draws."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

# users, extract, stage, publish and done are a run's; source is the demo's (starting the
# embedded PostgreSQL, generating data).
Phase = Literal["source", "users", "plan", "extract", "stage", "publish", "done"]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a run.

    phase: "users", "extract", "stage", "publish" or "done" (a run), "source" (the demo).
    message: one human line.
    rows: rows handled so far in this phase; total: expected rows, when known.
    partitions: rows so far per partition id (extract phase).
    partition: the partition this event is about (stage and publish phases).
    seconds: time since the run started.
    """

    phase: Phase
    message: str
    rows: int = 0
    total: int | None = None
    partitions: Mapping[str, int] = field(default_factory=dict)
    partition: str | None = None
    seconds: float = 0.0


ProgressCallback = Callable[[ProgressEvent], None]
