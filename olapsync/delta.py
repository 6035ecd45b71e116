"""What a sync does with each month, decided from the rows saved since the last run.

Pure: Polars frames in, decisions out; the run (olapsync.run) does the I/O.

The watermark. A run records the greatest `saved_ts` its snapshot saw (`max_seen`) and, as its
watermark, that value capped by the snapshot's own clock (a row stamped by a clock running
ahead must not push the next run's start into the future). The next sync reads the
*candidates*: source rows with `saved_ts >= watermark - lag`. The lag covers transactions
that commit after rows with later `saved_ts` became visible (DESIGN.md, "Sync and verify").

Each candidate is one of:

- **loaded**: its id is in ClickHouse, in the same month, with the same values: nothing to do
  (the lag makes every run see the end of the previous one again);
- **new**: its id is nowhere in ClickHouse and the previous run cannot have seen it; it goes
  into its month by the append fast path (no re-read of the month), and its month's source
  fingerprint grows by exactly this row's hash;
- **changed**: anything else: its id is in ClickHouse with other values or in another month,
  it repeats within the candidates, or the previous run may have seen it and left it out
  (rejected, or skipped as an orphan whose user has since come back). Its month, and the month
  holding the other copy, are rebuilt from the source.

"Cannot have seen it" is decided by `saved_ts > max_seen` of the previous run; a valid row at
or below it that is not in ClickHouse was committed late (the lag's very case) unless its
user was an orphan of that month at the last load.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import polars as pl

from olapsync.errors import ConfigError
from olapsync.fingerprint import Fingerprint
from olapsync.partitions import NO_TIME
from olapsync.window import month_start

Reason = Literal[
    "new rows",
    "late rows",
    "changed",
    "missing",
    "orphans",
    "users returned",
    "unverified",
    "repeated ids",
]
Status = Literal["clean", "rejected", "orphan"]

_LAG = re.compile(r"(\d+)\s*([dhms])")
_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_lag(text: str) -> timedelta:
    """`15m`, `90s`, `2h`, `1h30m`, `1d` or `0` as a timedelta.

    Raises:
        ConfigError: anything else (the message quotes it).
    """
    raw = text.strip().lower()
    if raw.isdigit() and int(raw) == 0:
        return timedelta(0)
    parts = _LAG.findall(raw)
    if not raw or _LAG.sub("", raw).strip() or not parts:
        raise ConfigError(
            f"--lag {text!r} is not a duration: use a number with a unit, e.g. 15m, 90s, "
            "2h, 1h30m, or 0."
        )
    return timedelta(seconds=sum(int(n) * _UNIT[unit] for n, unit in parts))


@dataclass(frozen=True)
class Watermark:
    """Where a complete run left off, from its snapshot (UTC).

    value: min(greatest `saved_ts` seen, the snapshot's clock); the next sync reads rows
        with `saved_ts >= value - lag`.
    max_seen: the greatest `saved_ts` seen; rows saved after it were not visible to the run.
    """

    value: datetime
    max_seen: datetime

    def since(self, lag: timedelta) -> datetime:
        return self.value - lag


@dataclass(frozen=True)
class MonthChange:
    """What a sync does to one month (`None`: rows with no usable event time).

    action: "append" (hard-link the month, insert `rows_new`) or "rebuild" (read it again).
    reasons: why, for `--dry-run` and the result; "late rows" are new rows whose event
        time falls in a month before the one the previous run was filling.
    rows_new: candidate rows that are new (append) or seen in this month (rebuild).
    fingerprint_delta: for an append, the source fingerprint of the new rows.
    """

    month: str | None
    action: Literal["append", "rebuild"]
    reasons: tuple[Reason, ...]
    rows_new: int = 0
    fingerprint_delta: Fingerprint = field(default_factory=lambda: Fingerprint.EMPTY)


CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "month": pl.String(),
    "user_id": pl.Int64(),
    "saved_ts": pl.Datetime("us", "UTC"),
    "event_ts": pl.Datetime("us", "UTC"),
    "status": pl.String(),
    "fp": pl.UInt64(),
}
PRESENT_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.Int64(),
    "target_month": pl.String(),
    "same": pl.Boolean(),
}


@dataclass(frozen=True)
class Classification:
    """The candidates sorted out.

    months: the months that change, each once.
    insert_ids: ids of the candidates the append path inserts (status "clean", new).
    new: the candidates of the months on the append path that are new (every status): what
        those months' books and quarantine take in.
    """

    months: dict[str | None, MonthChange]
    insert_ids: pl.Series
    new: pl.DataFrame


def classify(
    candidates: pl.DataFrame,
    present: pl.DataFrame,
    previous: Watermark | None,
    *,
    lag: timedelta,
    orphan_users: Mapping[str | None, Set[int]] | None = None,
    held: pl.Series | None = None,
) -> Classification:
    """Decide, month by month, between the append fast path and a rebuild.

    Args:
        candidates: one row per candidate read, columns as `CANDIDATE_SCHEMA`: the source id,
            its month (`YYYYMM` of the event time, None when it has none), user id,
            `saved_ts`, event time, validation status ("clean", "rejected", "orphan") and the
            source row hash.
        present: the candidates' ids found in ClickHouse (`PRESENT_SCHEMA`): the month they
            are in and whether that row equals the candidate's clean row.
        previous: the watermark of the last complete run (None: no run yet, everything new).
        lag: how far before the watermark the candidates reach.
        orphan_users: per month, the users whose rows the month's last load skipped as
            orphans.
        held: per candidate, whether it is a copy of a repeated id that its month's last
            load held back and saw (`held_before`): such a candidate is left as it is.

    Returns:
        A `Classification`.
    """
    orphan_users = orphan_users or {}
    mask = pl.Series("held", [False] * candidates.height) if held is None else held
    frame = candidates.with_columns(mask.alias("held")).join(present, on="id", how="left")
    repeated = pl.col("id").is_duplicated()
    in_target = pl.col("target_month").is_not_null()
    loaded = in_target & pl.col("same") & (pl.col("target_month").eq_missing(pl.col("month")))
    surely_new = (
        pl.lit(True) if previous is None else pl.col("saved_ts") > pl.lit(previous.max_seen)
    )
    frame = frame.with_columns(
        _returned(frame, orphan_users).alias("returned"),
    ).with_columns(
        pl.when(pl.col("held"))
        .then(pl.lit("loaded"))
        .when(repeated | (in_target & ~loaded))
        .then(pl.lit("changed"))
        .when(loaded)
        .then(pl.lit("loaded"))
        .when(pl.col("returned") & ~surely_new)
        .then(pl.lit("users returned"))
        .when((pl.col("status") == "clean") | surely_new)
        .then(pl.lit("new"))
        .otherwise(pl.lit("changed"))
        .alias("verdict")
    )
    # Late: the event belongs to a month before the one the previous run was filling.
    late_before = None if previous is None else month_start(previous.since(lag))
    months: dict[str | None, MonthChange] = {}
    for (month,), rows in frame.group_by(["month"], maintain_order=True):
        verdicts = set(rows.get_column("verdict").to_list())
        month_key = None if month is None else str(month)
        if verdicts <= {"loaded"}:
            continue
        rebuild = verdicts & {"changed", "users returned"}
        if rebuild:
            reasons = tuple(sorted(rebuild))
            months[month_key] = MonthChange(month_key, "rebuild", reasons, rows.height)
            continue
        new = rows.filter(pl.col("verdict") == "new")
        late = late_before is not None and bool(
            new.select((pl.col("event_ts") < pl.lit(late_before)).any()).item()
        )
        fresh = late_before is None or bool(
            new.select((pl.col("event_ts") >= pl.lit(late_before)).fill_null(True).any()).item()
        )
        reasons_new: tuple[Reason, ...] = (
            *(("new rows",) if fresh else ()),
            *(("late rows",) if late else ()),
        )
        months[month_key] = MonthChange(
            month_key, "append", reasons_new, new.height, _sum(new.get_column("fp"))
        )
    # The other copy of a changed row lives in a month that must be rebuilt too.
    moved = frame.filter((pl.col("verdict") == "changed") & in_target)
    for month in moved.get_column("target_month").unique().to_list():
        if months.get(month) is None or months[month].action != "rebuild":
            months[month] = MonthChange(month, "rebuild", ("changed",))
    appended = [m for m, c in months.items() if c.action == "append"]
    new = frame.filter(
        (pl.col("verdict") == "new") & pl.col("month").is_in(appended, nulls_equal=True)
    )
    inserted = new.filter(pl.col("status") == "clean")
    return Classification(months=months, insert_ids=inserted.get_column("id"), new=new)


def held_before(
    candidates: pl.DataFrame, held_keys: Mapping[str, Set[int]], previous: Watermark | None
) -> pl.Series:
    """Per candidate (`CANDIDATE_SCHEMA`), whether it is a copy of a repeated id that its
    month's last load held back and could see (saved before that run's `max_seen`): the lag
    reads it again, and nothing about it changed that a sync can see."""
    pairs = [(m, k) for m, keys in held_keys.items() for k in keys]
    if not pairs or previous is None:
        return pl.Series("held", [False] * candidates.height, dtype=pl.Boolean)
    known = pl.DataFrame(
        {"month": [m for m, _ in pairs], "id": [k for _, k in pairs]},
        schema={"month": pl.String, "id": pl.Int64},
    )
    month = pl.col("month").fill_null(NO_TIME)
    flagged = candidates.select(
        month.alias("month"), pl.col("id"), pl.col("saved_ts") <= pl.lit(previous.max_seen)
    ).with_row_index("row")
    seen = flagged.join(known, on=["month", "id"], how="semi").filter(pl.col("saved_ts"))
    mask = pl.Series("held", [False] * candidates.height, dtype=pl.Boolean)
    if seen.height:
        mask = mask.scatter(seen.get_column("row").to_list(), True)
    return mask


def _returned(frame: pl.DataFrame, orphan_users: Mapping[str | None, Set[int]]) -> pl.Expr:
    """True for a clean row whose user was an orphan of its month at the last load."""
    pairs = [(m, u) for m, users in orphan_users.items() for u in users if m is not None]
    if not pairs:
        return pl.lit(False)
    known = pl.DataFrame(
        {"month": [m for m, _ in pairs], "user_id": [u for _, u in pairs]},
        schema={"month": pl.String, "user_id": pl.Int64},
    )
    flagged = frame.join(known, on=["month", "user_id"], how="semi").get_column("id")
    return (pl.col("status") == "clean") & pl.col("id").is_in(flagged.implode())


def _sum(hashes: pl.Series) -> Fingerprint:
    return Fingerprint(hashes.len(), int(hashes.cast(pl.UInt64).sum() or 0) % 2**64)
