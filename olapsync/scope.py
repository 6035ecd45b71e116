"""What one run rebuilds: a window of event times (an import) or a set of months (a sync).
Pure: no I/O.

An import replaces `[start, end)`: the rows read are those in the window, the months it
touches are rebuilt (an edge month keeps its rows outside the window), the others are kept.
A sync rebuilds a set of whole months from the source, appends new rows to others (the fast
path, `olapsync.delta`), and keeps the rest. Both are the same run: read some source rows,
hard-link the months kept, publish (`olapsync.importer`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime

from olapsync import repeats
from olapsync.delta import MonthChange, Reason
from olapsync.partitions import NO_TIME, MonthRecord
from olapsync.results import RunKind
from olapsync.window import Window, partition_bounds


@dataclass(frozen=True)
class Scope:
    """What a run does to the events table.

    kind: "import" or "sync" (the ledger says which).
    window: an import's window; `Window()` with no `months` reads everything (a full run).
    months: a sync's months rebuilt whole from the source (`NO_TIME`: rows without a
        usable event time), with why; empty with `full` False: nothing is read. For an
        import, the months it rereads whole besides its window (`olapsync.repeats`).
    appends: a sync's months on the append fast path.
    full: read everything and rebuild every month (a full import, or a first sync).
    """

    kind: RunKind = "import"
    window: Window = field(default_factory=Window)
    months: Mapping[str, tuple[Reason, ...]] = field(default_factory=dict)
    appends: Mapping[str, MonthChange] = field(default_factory=dict)
    full: bool = False

    @classmethod
    def of_window(
        cls,
        window: Window,
        records: Mapping[str, MonthRecord] | None = None,
        parents: Set[int] = frozenset(),
    ) -> Scope:
        """An import's scope: `window`, and the months it must reread whole besides it
        because they hold back repeated keys (`olapsync.repeats`; `records`: each month's
        latest record, `parents`: the users in the CRM now)."""
        if window.is_full or not records:
            return cls(kind="import", window=window, full=window.is_full)
        touched = {p for p in records if p != NO_TIME and window.touches(p)}
        # A month at the window's edge that holds back keys is read whole: its record cannot
        # be split between the part read and the part kept.
        whole = {p for p in touched if not window.covers(p) and records[p].repeated_keys}
        whole |= repeats.reread(records, touched, parents=parents)
        months: dict[str, tuple[Reason, ...]] = {p: ("repeated ids",) for p in sorted(whole)}
        return cls(kind="import", window=window, months=months)

    @property
    def reads(self) -> bool:
        """Whether the run reads any source rows."""
        return self.full or self.kind == "import" or bool(self.months)

    def rebuilds(self, pid: str) -> bool:
        """Whether month `pid` is rebuilt (wholly or, at a window's edge, partly)."""
        if self.full:
            return True
        if self.kind == "import":
            # A window reads rows by their time: those without one (`NO_TIME`) it keeps.
            return pid in self.months or (pid != NO_TIME and self.window.touches(pid))
        return pid in self.months

    def partial(self, pid: str) -> bool:
        """Whether the run reads only part of month `pid` (a window's edge)."""
        return (
            self.kind == "import"
            and not self.full
            and pid not in self.months
            and not self.window.covers(pid)
        )

    def keeps(self, pid: str) -> bool:
        """Whether the target's month `pid` goes into the new table as it is (hard-linked),
        before any rows are appended to or removed from it."""
        return not self.rebuilds(pid)


def months_condition(column: str, months: Iterable[str]) -> str:
    """A PostgreSQL condition selecting the rows of `months` (`YYYYMM`; `NO_TIME` for rows
    whose time is NULL or ±infinity) by `column` (quoted), adjacent months merged into one
    range so that an index on the column is walked once per range.

    Bounds are whole-second UTC literals built from month ids, never from user text.
    """
    ranges: list[tuple[datetime, datetime]] = []
    for pid in sorted(m for m in months if m != NO_TIME):
        lo, hi = partition_bounds(pid)
        if ranges and ranges[-1][1] == lo:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((lo, hi))
    parts = [f"({column} >= {_literal(lo)} AND {column} < {_literal(hi)})" for lo, hi in ranges]
    if NO_TIME in months:
        parts.append(f"({column} IS NULL OR NOT isfinite({column}))")
    return " OR ".join(parts) if parts else "false"


def _literal(value: datetime) -> str:
    # +00: a `timestamp` column reads it as UTC, a `timestamptz` one exactly.
    return f"'{value:%Y-%m-%d %H:%M:%S}+00'"
