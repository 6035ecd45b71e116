"""`sync`: the scheduled refresh whose cost follows what changed (issue 17).

A sync is an import run (`olapsync.importer.run`) whose scope it works out inside the run,
in the run's snapshot of the source, under the run lock:

1. the watermark of the last run that published the events (`olapsync.ledger`); without one
   the sync is a full import;
2. the *candidates*, source rows with `saved_ts >= watermark - lag`, read through validation
   into a scratch table beside the target (`<table>_delta`);
3. which candidates ClickHouse holds already, and with what values (one query; the key's
   skip index keeps it to the granules that could hold them);
4. each month's verdict (`olapsync.delta.classify`): the append fast path, or a rebuild;
   months whose orphans' users came back, and, with `verify`, every month whose fingerprints
   drifted (`olapsync.verify`), are rebuilt too.

The run then builds and publishes exactly that (`olapsync.events`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

import polars as pl

from olapsync import ledger, repeats, statements
from olapsync.book import month_of, orphan_users
from olapsync.clickhouse import open_target
from olapsync.config import Config
from olapsync.delta import (
    CANDIDATE_SCHEMA,
    PRESENT_SCHEMA,
    MonthChange,
    Reason,
    Watermark,
    classify,
    held_before,
)
from olapsync.failpoints import failpoint
from olapsync.fingerprint import FP_COLUMN
from olapsync.partitions import NO_TIME, latest_records
from olapsync.pg import Snapshot
from olapsync.results import SyncPlan
from olapsync.scope import Scope
from olapsync.source import read_all
from olapsync.source_plan import access
from olapsync.specs import USERS, TableSpec
from olapsync.stream import max_of, quarantine_rows, split_batch
from olapsync.validate import CLEAN, ORPHAN, REJECTED

if TYPE_CHECKING:
    from olapsync.importer import Planner, Run

_STATUS = {CLEAN: "clean", REJECTED: "rejected", ORPHAN: "orphan"}


@dataclass
class Candidates:
    """The rows a sync read since the watermark: one row each in `frame`
    (`olapsync.delta.CANDIDATE_SCHEMA`), the clean ones in the delta table, the rejected ones
    (with their month) waiting for the quarantine."""

    frame: pl.DataFrame
    rejected: pl.DataFrame
    max_seen: Watermark | None = None
    rows: int = 0
    quarantine: list[pl.DataFrame] = field(default_factory=list)


def read_candidates(run: Run, since_sql: str, delta: str) -> Candidates:
    """Read the candidates (rows `since_sql` selects) into table `delta` and a frame."""
    t, spec = run.target, run.spec
    assert spec.time_column is not None
    assert spec.watermark is not None
    assert spec.parent is not None
    t.execute(statements.drop_table(run.db, delta))
    t.execute(statements.create_scratch(run.db, delta, spec.name))
    t.execute(statements.drop_table(run.db, delta + "_ids"))
    t.execute(statements.create_keys(run.db, delta + "_ids", spec.key))
    frames, rejected = [], []
    seen = None
    rows = 0
    for batch in run.read(since_sql):
        frame, split = split_batch(batch, spec, run.parents)
        rows += frame.height
        info = frame.select(
            pl.col(spec.key).cast(pl.Int64).alias("id"),
            month_of(frame, spec.time_column).alias("month"),
            pl.col(spec.parent[1]).cast(pl.Int64).alias("user_id"),
            _utc(frame, spec.watermark).alias("saved_ts"),
            _utc(frame, spec.time_column).alias("event_ts"),
            split.status.replace_strict(_STATUS, return_dtype=pl.String).alias("status"),
            pl.col(FP_COLUMN).cast(pl.Int64).reinterpret(signed=False).alias("fp"),
        )
        frames.append(info)
        if split.rejected.height:
            months = info.filter(pl.col("status") == "rejected").select("id", "month")
            rejected.append(split.rejected.with_columns(months.get_column("month")))
        if split.clean.num_rows:
            t.insert_arrow(delta, split.clean)
        t.insert_arrow(delta + "_ids", info.select(pl.col("id").alias(spec.key)).to_arrow())
        value = max_of(frame, spec.watermark)
        if value is not None and (seen is None or value > seen):
            seen = value
    failpoint("after-candidates")
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=CANDIDATE_SCHEMA)
    empty = pl.DataFrame(schema={"key": pl.Int64, "reason": pl.String, "source_row": pl.String})
    out = Candidates(frame, pl.concat(rejected) if rejected else empty, rows=rows)
    if seen is not None:
        out.max_seen = Watermark(seen, seen)
    return out


def _utc(frame: pl.DataFrame, column: str) -> pl.Expr:
    dtype = frame.schema[column]
    expr = pl.col(column)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            expr = expr.dt.replace_time_zone("UTC")
        return expr.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
    return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def present(run: Run, delta: str) -> pl.DataFrame:
    """The candidates' ids that the target holds: the month each copy is in, and whether
    that copy equals the candidate's clean row (`olapsync.delta.PRESENT_SCHEMA`)."""
    spec = run.spec
    cols = [c.name for c in spec.columns]
    rows = run.target.fetch(statements.present_keys(run.db, spec.name, delta, spec.key, cols))
    return pl.DataFrame(
        [(int(k), str(p), bool(s)) for k, p, s in rows],
        schema=PRESENT_SCHEMA,
        orient="row",
    )


def planner(
    *, lag: timedelta, verify: bool = False, force: Mapping[str, Reason] | None = None
) -> Planner:
    """A sync's planner for `olapsync.importer.run`: (run) -> Scope."""

    def plan(run: Run) -> Scope:
        return plan_sync(run, lag=lag, verify=verify, force=force or {})

    return plan


def plan_sync(
    run: Run,
    *,
    lag: timedelta,
    verify: bool,
    force: Mapping[str, Reason],
    delta: str | None = None,
    dry: bool = False,
) -> Scope:
    """Work out a sync's scope inside its run (see the module docstring); fills in the run's
    books, watermark, delta table and counts for the months it appends to. `dry`: only
    work the scope out (the quarantine is left alone); `delta`: the scratch table's name."""
    t, spec = run.target, run.spec
    previous = ledger.last_watermark(t, spec.name)
    if previous is None or not run.previous:
        run.progress("plan", "no watermark yet: the first sync is a full import")
        return Scope(kind="sync", full=True)
    assert spec.watermark is not None
    since = previous.since(lag)
    delta = delta or spec.name + "_delta"
    column = spec.column(spec.watermark).source_ident
    run.progress("plan", f"reading rows saved since {since:%Y-%m-%d %H:%M:%S.%f} UTC")
    run.since_sql = f"{column} >= '{since:%Y-%m-%d %H:%M:%S.%f}+00'"
    run.since = since
    cands = read_candidates(run, run.since_sql, delta)
    run.candidates = cands.rows
    found = present(run, delta)
    held_keys = {k: r.repeated_keys for k, r in run.previous.items() if r.repeated_keys}
    held = held_before(cands.frame, held_keys, previous)
    verdicts = classify(
        cands.frame,
        found,
        previous,
        lag=lag,
        orphan_users=orphan_users(run.previous.values()),
        held=held,
    )
    rebuild: dict[str, tuple[Reason, ...]] = {}
    appends = {}
    target_parts = t.partitions(spec.name)
    for month, change in verdicts.months.items():
        key = month or NO_TIME
        record = run.previous.get(key)
        if change.action == "rebuild":
            rebuild[key] = change.reasons
        elif record is not None and record.source is None:
            rebuild[key] = ("unverified",)
        elif record is None and key in target_parts:
            rebuild[key] = ("missing",)
        else:
            appends[key] = change
    parents = set(run.parents.to_list())
    for key, record in run.previous.items():
        if record.orphan_users & parents:
            rebuild.setdefault(key, ("users returned",))
    if verify:
        from olapsync.verify import drifted_months

        for key, reason in drifted_months(run, appends).items():
            rebuild.setdefault(key, (reason,))
    for key, reason in force.items():
        rebuild.setdefault(key, (reason,))
    # A held copy the lag reads again, unchanged, does not bring its months back.
    unsettled = cands.frame.filter(~held)
    new = unsettled.select("id", pl.col("month").fill_null(NO_TIME))
    for key in repeats.reread(run.previous, rebuild, parents=parents, candidates=new.iter_rows()):
        rebuild.setdefault(key, ("repeated ids",))
    appends = {k: c for k, c in appends.items() if k not in rebuild}
    if not dry:
        _account_appends(run, cands, verdicts.new, appends)
    mark = max(previous.max_seen, cands.max_seen.max_seen) if cands.max_seen else previous.max_seen
    run.watermark = Watermark(previous.value, mark)
    run.delta = delta
    return Scope(kind="sync", months=rebuild, appends=appends)


def _account_appends(
    run: Run, cands: Candidates, new: pl.DataFrame, appends: Mapping[str, MonthChange]
) -> None:
    """Enter the new rows of the months on the append path in the books, and queue their
    rejected rows for the quarantine."""
    rows = new.filter(pl.col("month").is_in(list(appends)))
    for month in appends:
        run.book.month(month).action = "appended"
    run.book.take(rows)
    run.rows_read += rows.height
    run.tally.events_skipped_orphans += rows.filter(pl.col("status") == "orphan").height
    bad = rows.filter(pl.col("status") == "rejected").get_column("id")
    if bad.len():
        quarantined = cands.rejected.filter(pl.col("key").is_in(bad.implode()))
        quarantined = quarantined.drop("month")
        run.rejected += quarantined.height
        run.tally.events_rejected += quarantined.height
        run.target.insert_arrow(
            run.spec.rejected, quarantine_rows(run.run_id, run.spec, quarantined)
        )


def dry_run(config: Config, spec: TableSpec, *, lag: timedelta, verify: bool) -> SyncPlan:
    """What `sync` would do now, worked out as it would (in a snapshot of the source, with
    scratch tables of its own, dropped after) without taking the lock or publishing: the
    months it would rebuild and append to, and those it would clean of the events of users
    gone from the CRM, each with the reasons the run's `ImportResult.months` would give.

    Raises:
        ConfigError, SourceError, TargetError: as for a sync.
    """
    from olapsync.importer import Run, new_run_id

    with open_target(config, create_database=False) as t:
        if spec.name not in t.tables():
            return SyncPlan(full=True)
        run = Run(t, config, spec, kind="sync", run_id=new_run_id())
        users = read_all(config.crm_url, USERS, what="read users")
        ids = pl.from_arrow(users.column(USERS.key))
        assert isinstance(ids, pl.Series)
        run.parents = ids
        run.previous = latest_records(t, spec.name, ledger.published_runs(t, spec.name))
        delta = f"{spec.name}_delta_{run.run_id.rsplit('-', 1)[1]}"
        removed: dict[str, int] = {}
        appended: dict[str, int] = {}
        with Snapshot(config.telemetry_url, what=f"read {spec.source_table}") as snap:
            run.snapshot = snap
            try:
                scope = plan_sync(run, lag=lag, verify=verify, force={}, delta=delta, dry=True)
                how = access(snap.rows, spec.source_table, run.since_sql) if run.since_sql else None
                if not scope.full:
                    appended = rows_to_append(run, delta, list(scope.appends))
                    kept = [p for p in t.partitions(spec.name) if p not in scope.months]
                    removed = orphans_to_remove(run, kept, delta + "_users")
            finally:
                for table in (delta, delta + "_ids", delta + "_users"):
                    t.execute(statements.drop_table(t.database, table))
        current = t.count(USERS.name) if USERS.name in t.tables() else 0
        return SyncPlan(
            full=scope.full,
            since=run.since,
            access=cast(Literal["index", "scan"] | None, how),
            candidates=run.candidates,
            months=planned_months(scope, appended, removed),
            orphans_removed=sum(removed.values()),
            users_source=ids.len(),
            users_current=current,
        )


def rows_to_append(run: Run, delta: str, months: list[str]) -> dict[str, int]:
    """Per month of `months`, the rows the append path would insert from table `delta`
    (the clean new rows, by the statements `olapsync.events` runs)."""
    spec = run.spec
    assert spec.time_column is not None
    months = [m for m in months if m != NO_TIME]
    if not months:
        return {}
    cols = [c.name for c in spec.columns]
    new = statements.new_rows(run.db, delta, spec.name, spec.key, spec.time_column, months)
    found = run.target.fetch(statements.fingerprint_of(run.db, delta, cols, spec.time_column, new))
    return {str(pid): int(n) for pid, n, _hash in found}


def orphans_to_remove(run: Run, kept: list[str], scratch: str) -> dict[str, int]:
    """Per month of `kept` (the months the run keeps, appended to or not), the events whose
    user is not among `run.parents`: those the run removes (`olapsync.events`), found by the
    same condition, against the parents in table `scratch` (created here; the caller drops
    it)."""
    t, spec = run.target, run.spec
    if not kept or spec.parent is None:
        return {}
    parent = spec.parent[1]
    t.execute(statements.drop_table(run.db, scratch))
    t.execute(statements.create_keys(run.db, scratch, parent))
    t.insert_arrow(scratch, pl.DataFrame({parent: run.parents.cast(pl.Int64)}).to_arrow())
    gone = statements.orphans(run.db, parent, scratch, kept)
    cols = [c.name for c in spec.columns]
    found = t.fetch(statements.removed_per_partition(run.db, spec.name, parent, cols, gone))
    return {str(pid): int(n) for pid, n, _hash, _users in found if int(n)}


def planned_months(
    scope: Scope, appended: Mapping[str, int], removed: Mapping[str, int]
) -> dict[str, dict[str, Any]]:
    """A dry run's months, each once: {"action": "rebuild", "append" or "clean", "reasons":
    the reasons the run would report, "rows": rows to append (`appended`), "removed":
    events of users gone to remove (`removed`)}. A month appended to and cleaned has both
    reasons, as the run reports it."""
    months: dict[str, dict[str, Any]] = {
        m: {"action": "rebuild", "reasons": list(r), "rows": 0, "removed": 0}
        for m, r in scope.months.items()
    }
    for m, c in scope.appends.items():
        reasons = [*c.reasons, *(["orphans"] if removed.get(m) else [])]
        rows = appended.get(m, 0)
        months[m] = {"action": "append", "reasons": reasons, "rows": rows, "removed": 0}
    for m, n in removed.items():
        entry = months.setdefault(
            m, {"action": "clean", "reasons": ["orphans"], "rows": 0, "removed": 0}
        )
        entry["removed"] = n
    return dict(sorted(months.items()))
