"""Time windows and month partitions: pure functions, no I/O.

A window is `[start, end)`, either bound optional. Every timestamp olapsync handles is UTC:
naive values are taken as UTC, aware ones converted.

Every public function that takes a time bound (the CLI's options, `import_olap_data`,
`plan_import`, the reports) reads it with `as_utc` (a datetime, a date or text, one parser)
and refuses a reversed pair with `check_order`, in the service's words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TypeAlias

import numpy as np
import polars as pl
import pyarrow as pa

from olapsync.errors import ConfigError

# ClickHouse DateTime is UInt32 seconds since the epoch.
DATETIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
DATETIME_MAX = datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC)

_TS_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")

# What a time bound may be given as, from a notebook or the command line.
TimeBound: TypeAlias = "datetime | date | str"


def to_utc(value: datetime) -> datetime:
    """`value` as an aware UTC datetime; naive values are UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_ts(text: str, *, name: str = "timestamp") -> datetime:
    """Parse `YYYY-MM-DD[ HH:MM[:SS]]` or ISO-8601 (with `Z` or an offset) into UTC.

    An offset that pushes the instant past year 1 or 9999 is clamped to that end, as the
    service does (`reports.schemas.parse_timestamp`): ClickHouse `DateTime` ends long before
    either, so the same rows are selected.

    Raises:
        ConfigError: the text is not a timestamp (the message names `name` and quotes it).
    """
    raw = text.strip()
    for fmt in _TS_FORMATS:
        try:
            return to_utc(datetime.strptime(raw, fmt))
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(re.sub(r"[zZ]$", "+00:00", raw))
    except ValueError:
        raise ConfigError(
            f"{name} {text[:64]!r} is not a timestamp: use YYYY-MM-DD[ HH:MM:SS] or ISO-8601."
        ) from None
    try:
        return to_utc(parsed)
    except OverflowError:
        return (datetime.min if parsed.year == 1 else datetime.max).replace(tzinfo=UTC)


def as_utc(value: object, *, name: str) -> datetime | None:
    """One time bound as an aware UTC datetime, whatever form it was given in: a datetime
    (naive = UTC), a date (its midnight, UTC), or text `parse_ts` reads (the CLI's parser:
    "2026-01-01", the seed's "2026-01-01 00:00:00", ISO-8601 with `Z` or an offset). None
    stays None: no bound.

    Raises:
        ConfigError: any other type, or text that is not a timestamp; the message names
            `name` (the argument) and quotes the value.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        return parse_ts(value, name=name)
    raise ConfigError(
        f"{name} {repr(value)[:64]} (type {type(value).__name__}) is not a time: pass a datetime, "
        "a date, or text such as '2026-01-01 00:00:00'."
    )


def _shown(value: datetime) -> str:
    return f"{value.replace(tzinfo=None).isoformat(sep=' ')} UTC"


def check_order(
    start: datetime | None,
    end: datetime | None,
    *,
    names: tuple[str, str] = ("start_ts", "end_ts"),
) -> None:
    """Refuse a window whose start is after its end, everywhere in the same words: the
    service's 422, the CLI's usage error (exit 2) and the Python API's ConfigError.

    Equal bounds pass: a report's window (both ends inclusive) is then one instant; an
    import's (`[start, end)`) is empty, which `Window` refuses.

    Raises:
        ConfigError: "start_ts is after end_ts (... > ...): swap them."
    """
    if start is not None and end is not None and to_utc(start) > to_utc(end):
        raise ConfigError(
            f"{names[0]} is after {names[1]} ({_shown(to_utc(start))} > {_shown(to_utc(end))}): "
            "swap them."
        )


def report_bounds(start: object, end: object) -> tuple[datetime | None, datetime | None]:
    """A report's `start_ts`/`end_ts` (both inclusive, either optional) in any form `as_utc`
    takes, as aware UTC datetimes.

    Raises:
        ConfigError: a bound is not a time, or `start_ts` is after `end_ts`.
    """
    lo, hi = as_utc(start, name="start_ts"), as_utc(end, name="end_ts")
    check_order(lo, hi)
    return lo, hi


def import_window(start: object, end: object) -> Window:
    """An import's window `[telemetry_start_ts, telemetry_end_ts)` from bounds in any form
    `as_utc` takes.

    Raises:
        ConfigError: a bound is not a time, the start is after the end, or the window is
            empty in whole seconds (`Window`).
    """
    names = ("telemetry_start_ts", "telemetry_end_ts")
    lo, hi = as_utc(start, name=names[0]), as_utc(end, name=names[1])
    check_order(lo, hi, names=names)
    return Window(lo, hi)


def epoch(value: datetime) -> int:
    """Whole seconds since 1970-01-01 UTC (naive = UTC, never local time)."""
    return int(to_utc(value).timestamp())


def month_start(value: datetime) -> datetime:
    v = to_utc(value)
    return datetime(v.year, v.month, 1, tzinfo=UTC)


def next_month(value: datetime) -> datetime:
    v = month_start(value)
    return datetime(v.year + v.month // 12, v.month % 12 + 1, 1, tzinfo=UTC)


def partition_id(value: datetime) -> str:
    """The `toYYYYMM` partition id holding `value`, e.g. '202601'."""
    v = to_utc(value)
    return f"{v.year:04d}{v.month:02d}"


def partition_bounds(pid: str) -> tuple[datetime, datetime]:
    """`[first second, first second of the next month)` of partition `pid`."""
    start = datetime(int(pid[:4]), int(pid[4:6]), 1, tzinfo=UTC)
    return start, next_month(start)


@dataclass(frozen=True)
class Window:
    """The half-open interval `[start, end)` of event times a run replaces.

    `Window()` is everything: a full import.

    One rule for every bound, on both sides of a run (issue 15, item 1): bounds are truncated
    to the whole second, as ClickHouse's `DateTime` stores times. A row belongs to the window
    exactly when its stored second does, so PostgreSQL (which compares microseconds) and
    ClickHouse (seconds) select the same rows: `ts >= start` in PostgreSQL is `floor(ts) >=
    start` for a whole-second `start`, and likewise for `end`.

    A bound beyond ClickHouse's `DateTime` range (1970-01-01 .. 2106-02-07 06:28:15 UTC)
    leaves the window open on that side (issue 15, item 4), as the report treats it: no
    stored time lies beyond it, and the source rows there are read and rejected with a
    reason, as they would be without the bound.
    """

    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        # The forms every time bound takes (`as_utc`), so that a notebook's
        # Window("2026-01-01") works, and anything else is a ConfigError, not an AttributeError.
        given_start, given_end = as_utc(self.start, name="start"), as_utc(self.end, name="end")
        start = None if given_start is None else given_start.replace(microsecond=0)
        end = None if given_end is None else given_end.replace(microsecond=0)
        if start is not None and start <= DATETIME_MIN:
            start = None
        if end is not None and end > DATETIME_MAX:
            end = None
        if start is not None and end is not None and start >= end:
            raise ConfigError(
                f"The window start {given_start:%Y-%m-%d %H:%M:%S.%f} is not "
                f"before its end {given_end:%Y-%m-%d %H:%M:%S.%f} in whole "
                "seconds (ClickHouse DateTime's precision): swap them or widen the window."
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @property
    def is_full(self) -> bool:
        return self.start is None and self.end is None

    def contains(self, value: datetime) -> bool:
        v = to_utc(value)
        return (self.start is None or v >= self.start) and (self.end is None or v < self.end)

    def touches(self, pid: str) -> bool:
        """Whether any second of partition `pid` lies inside the window."""
        lo, hi = partition_bounds(pid)
        return (self.end is None or lo < self.end) and (self.start is None or hi > self.start)

    def covers(self, pid: str) -> bool:
        """Whether every second of partition `pid` lies inside the window."""
        lo, hi = partition_bounds(pid)
        return (self.start is None or self.start <= lo) and (self.end is None or hi <= self.end)

    def months(self) -> list[str]:
        """Partition ids of the months the window touches; needs both bounds."""
        if self.start is None or self.end is None:
            raise ValueError("an open window has no finite list of months")
        out = []
        cur = month_start(self.start)
        while cur < self.end:
            out.append(partition_id(cur))
            cur = next_month(cur)
        return out

    def describe(self) -> str:
        lo = "-∞" if self.start is None else f"{self.start:%Y-%m-%d %H:%M:%S}"
        hi = "+∞" if self.end is None else f"{self.end:%Y-%m-%d %H:%M:%S}"
        return f"[{lo}, {hi})"


@dataclass(frozen=True)
class PartitionPlan:
    """What a run does with each partition the window touches.

    replace: partitions whose staged rows replace the target's.
    drop: partitions that exist in the target but have no rows left after the run.
    edge: touched partitions the window covers only partly: their rows outside the
        window are copied from the target into staging first.
    """

    replace: tuple[str, ...]
    drop: tuple[str, ...]
    edge: tuple[str, ...]


def plan_partitions(
    window: Window,
    target: AbstractSet[str],
    staged: AbstractSet[str],
    *,
    cleaned: AbstractSet[str] = frozenset(),
) -> PartitionPlan:
    """Decide which partitions to replace, drop, and copy edges of.

    Args:
        window: the run's window.
        target: partition ids that exist in the target table now.
        staged: partition ids that hold rows in staging (window rows, edge rows, cleaned
            partitions).
        cleaned: partitions outside the window rebuilt in staging without their orphans.

    A touched (or cleaned) partition with staged rows is replaced; one with none left is
    dropped: its rows were all inside the window, or all orphans, and the source has none.
    Edges are the target's touched partitions the window covers only partly.
    """
    touched = {p for p in target if window.touches(p)}
    edge = tuple(sorted(p for p in touched if not window.covers(p)))
    replace = tuple(sorted(staged))
    drop = tuple(sorted((touched | (cleaned & target)) - staged))
    return PartitionPlan(replace=replace, drop=drop, edge=edge)


# The day number (since 1970-01-01) each month ClickHouse DateTime can hold begins on,
# 1970-01 to 2106-02, to bucket rows by month.
_MONTHS = range((2106 - 1970) * 12 + 2)
_MONTH_START_DAYS = np.array(
    [(date(1970 + m // 12, m % 12 + 1, 1) - date(1970, 1, 1)).days for m in _MONTHS],
    dtype=np.int64,
)
_MONTH_IDS = [f"{1970 + m // 12:04d}{m % 12 + 1:02d}" for m in _MONTHS]


def rows_per_month(seconds: pa.Array | pa.ChunkedArray) -> Counter[str]:
    """Rows per `YYYYMM` partition of a column of UInt32 epoch seconds (a clean batch's time
    column), bucketed exactly as `toYYYYMM` does, without string work: rows are counted per
    day, then the few distinct days are looked up."""
    column = pl.from_arrow(seconds)
    assert isinstance(column, pl.Series)
    if column.is_empty():
        return Counter()
    days = column.to_numpy() // 86_400  # UInt32 epoch seconds, no NULLs: no copy to read
    first = int(days.min())
    per_day = np.bincount(days - first)
    seen = np.flatnonzero(per_day)
    months = np.searchsorted(_MONTH_START_DAYS, seen + first, side="right") - 1
    counts: Counter[str] = Counter()
    for month, rows in zip(months.tolist(), per_day[seen].tolist(), strict=True):
        counts[_MONTH_IDS[month]] += rows
    return counts
