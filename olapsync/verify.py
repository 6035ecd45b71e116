"""`verify`: proof that ClickHouse holds what PostgreSQL holds, month by month (issue 17).

For each month, two comparisons, each side with itself (the engines never have to hash
alike, see `olapsync.fingerprint`):

- the source fingerprint now against the one recorded when the month was last loaded
  (`olapsync.partitions`): a difference is "changed in source" (updates and deletes that
  did not touch `saved_ts`, rows moved to another month, a new column type);
- the target fingerprint now against the one the load wrote: "changed in ClickHouse" (a
  partition altered behind olapsync's back).

A month's rows in ClickHouse also follow from the users loaded: a month whose last load left
out the rows of users who are loaded now (a window import reloads the users but rereads only
its window) is "changed in source" too.

A month on one side only, with no record to explain it, is "missing"; a month a window
import loaded only partly is "unverified". Users are checked as a whole (partition `all`).
`verify` only reads; `repair=True` runs a sync that rebuilds the drifted months.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Set
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from olapsync import ledger
from olapsync.clickhouse import open_target
from olapsync.config import Config
from olapsync.delta import MonthChange, Reason
from olapsync.errors import RunLockedError, TargetError
from olapsync.fingerprint import Fingerprint, source_fingerprints, target_fingerprints
from olapsync.lock import LOCK, RunLock
from olapsync.partitions import NO_TIME, PARTITIONS, MonthRecord, latest_records
from olapsync.pg import Snapshot
from olapsync.progress import ProgressCallback, ProgressEvent
from olapsync.results import ImportResult
from olapsync.specs import USERS, TableSpec, row_signature, telemetry_spec

if TYPE_CHECKING:
    from olapsync.clickhouse import Target
    from olapsync.importer import Run

MonthStatus = Literal["ok", "changed in source", "changed in ClickHouse", "missing", "unverified"]
_REASONS: dict[str, Reason] = {
    "changed in source": "changed",
    "changed in ClickHouse": "changed",
    "missing": "missing",
    "unverified": "unverified",
}


@dataclass(frozen=True)
class MonthCheck:
    """One month (or a whole table) compared.

    partition: `YYYYMM`, "" for rows without a usable event time, `all` for users.
    source_rows / target_rows: rows in PostgreSQL and in ClickHouse now.
    loaded / rejected / skipped: what the month's last load did (0 without a record).
    detail: what differs, in a few words.
    """

    table: str
    partition: str
    status: MonthStatus
    source_rows: int
    target_rows: int
    loaded: int = 0
    rejected: int = 0
    skipped: int = 0
    detail: str = ""


@dataclass(frozen=True)
class VerifyReport:
    """What `verify` found; `ok` when every month is ok. `repaired`: the sync that
    `repair=True` ran, if anything drifted."""

    checks: list[MonthCheck]
    seconds: float
    repaired: ImportResult | None = None
    database: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> list[MonthCheck]:
        return [c for c in self.checks if c.status != "ok"]

    @property
    def ok(self) -> bool:
        return not self.drifted

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return {
            "ok": self.ok,
            "database": self.database,
            "checks": [asdict(c) for c in self.checks],
            "drifted": len(self.drifted),
            "seconds": round(self.seconds, 3),
            "repaired": None if self.repaired is None else self.repaired.to_dict(),
            "notes": self.notes,
        }


def compare(
    table: str,
    source: Mapping[str | None, Fingerprint],
    target: Mapping[str, Fingerprint],
    records: Mapping[str, MonthRecord],
    signature: str,
    parents: Set[int] | None = None,
) -> list[MonthCheck]:
    """Each month's status (see the module docstring); months empty on both sides and
    without a record are left out. `parents`: the users loaded now, against which each
    record's orphans are judged (None: not judged)."""
    now = {(k or NO_TIME): v for k, v in source.items()}
    out = []
    for key in sorted(set(now) | set(target) | set(records)):
        s, t = now.get(key, Fingerprint.EMPTY), target.get(key, Fingerprint.EMPTY)
        rec = records.get(key)
        status: MonthStatus = "ok"
        detail = ""
        if rec is None:
            if not s.rows and not t.rows:
                continue
            status = "missing"
            detail = "never loaded" if s.rows else "not loaded by olapsync"
        elif rec.signature != signature:
            status, detail = "changed in source", "loaded with other columns"
        elif rec.source is None:
            status, detail = "unverified", "loaded only in part by a window import"
        elif s != rec.source:
            status = "changed in source"
            detail = (
                f"{rec.source.rows:,} rows when loaded, {s.rows:,} now"
                if s.rows != rec.source.rows
                else "values changed"
            )
        elif t != rec.target:
            status = "changed in ClickHouse"
            detail = (
                f"{rec.target.rows:,} rows loaded, {t.rows:,} now"
                if t.rows != rec.target.rows
                else "values changed"
            )
        elif parents is not None and rec.orphan_users & parents:
            status = "changed in source"
            detail = f"users back whose rows were left out: {_few(rec.orphan_users & parents)}"
        out.append(
            MonthCheck(
                table=table,
                partition=key,
                status=status,
                source_rows=s.rows,
                target_rows=t.rows,
                loaded=0 if rec is None else rec.loaded,
                rejected=0 if rec is None else rec.rejected,
                skipped=0 if rec is None else rec.skipped,
                detail=detail,
            )
        )
    return out


def _few(users: Set[int]) -> str:
    shown = ", ".join(str(u) for u in sorted(users)[:3])
    return shown + (f" and {len(users) - 3} more" if len(users) > 3 else "")


def check_events(
    rows: Any,
    target: Target,
    spec: TableSpec,
    records: Mapping[str, MonthRecord],
    parents: Set[int] | None = None,
) -> list[MonthCheck]:
    """The events table's months: `rows` runs queries on the source (a snapshot's);
    `parents` as for `compare`."""
    source = source_fingerprints(rows, spec)
    found = target_fingerprints(target.rows, spec, target.t(spec.name))
    return compare(spec.name, source, found, records, row_signature(spec), parents)


def drifted_months(run: Run, appends: Mapping[str, MonthChange]) -> dict[str, Reason]:
    """Inside a sync run (`sync --verify`): the months whose fingerprints drifted, in the
    run's snapshot, with the reason to rebuild each.

    A month on the append path (`appends`, by partition) is expected to hold, in the
    source, what it held at its last load plus the new rows the sync appends
    (`MonthChange.fingerprint_delta`): only a difference beyond them is drift, so new and
    late rows keep the append fast path under `--verify` too."""
    assert run.snapshot is not None
    records = dict(run.previous)
    for key, change in appends.items():
        rec = records.get(key)
        if rec is not None and rec.source is not None:
            records[key] = replace(rec, source=rec.source + change.fingerprint_delta)
    checks = check_events(run.snapshot.rows, run.target, run.spec, records)
    return {c.partition: _REASONS[c.status] for c in checks if c.status != "ok"}


def verify(
    config: Config | None = None,
    *,
    repair: bool = False,
    lag: str | timedelta = "15m",
    allow_shrink: bool = False,
    max_rejected_ratio: float = 0.01,
    on_progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Compare every month's fingerprints now with those recorded at its last load.

    Args:
        config: where the data is; defaults to `Config.from_env()`.
        repair: run a sync that rebuilds the drifted months (and whatever new rows arrived).
        lag: the repair's `--lag` (see `olapsync.sync`): "15m", "90s", "0" or a timedelta.
        allow_shrink, max_rejected_ratio: the repair's, as for `olapsync.sync`.
        on_progress: called with a `ProgressEvent` at each step.

    Returns:
        A `VerifyReport`; `report.ok` is False when any month drifted (the CLI exits 3).

    Raises:
        RunLockedError: a run is writing to the target (the CLI exits 75).
        TargetError: the target has no olapsync tables to verify (no run yet), or a query
            failed.
        ConfigError, SourceError: as for an import.

    Example:
        >>> report = verify()  # doctest: +SKIP
        >>> [(c.partition, c.status) for c in report.drifted]  # doctest: +SKIP
        [('202505', 'changed in source')]
    """
    cfg = config or Config.from_env()
    spec = telemetry_spec()
    t0 = time.monotonic()

    def step(message: str) -> None:
        if on_progress is not None:
            on_progress(ProgressEvent("source", message, seconds=time.monotonic() - t0))

    with open_target(cfg, create_database=False) as target:
        tables = target.tables()
        held = RunLock(target, "verify").inspect() if LOCK in tables else None
        if held is not None and (held.owner is None or not held.owner.is_gone()):
            # A run is publishing, or a lock from another host that only its owner may judge.
            raise RunLockedError(
                f"A run is writing to database {cfg.database!r}: verify after it finishes.",
                table=LOCK,
            )
        absent = sorted({ledger.RUNS, PARTITIONS, spec.name, USERS.name} - tables)
        if absent:
            raise TargetError(
                f"Database {cfg.database!r} has no {', '.join(absent)} to verify against: "
                "run `olapsync sync` first (or check --database).",
                table=absent[0],
            )
        events = latest_records(target, spec.name, ledger.published_runs(target, spec.name))
        users = latest_records(target, USERS.name, ledger.published_runs(target, USERS.name))
        # The users loaded now: when they differ from the CRM's, the users check says so.
        parents = {
            int(u)
            for (u,) in target.rows(
                f"SELECT `{USERS.key}` FROM {target.t(USERS.name)}", what="read the users loaded"
            )
        }
        step("fingerprinting the events in PostgreSQL and ClickHouse")
        with Snapshot(cfg.telemetry_url, what=f"fingerprint {spec.source_table}") as snap:
            checks = check_events(snap.rows, target, spec, events, parents)
        step("fingerprinting the users")
        with Snapshot(cfg.crm_url, what="fingerprint users") as crm:
            source = source_fingerprints(crm.rows, USERS)
        found = target_fingerprints(target.rows, USERS, target.t(USERS.name))
        checks += compare(USERS.name, source, found, users, row_signature(USERS))
        report = VerifyReport(checks, time.monotonic() - t0, database=cfg.database)
        if not repair or report.ok:
            return report
        from olapsync.delta import parse_lag
        from olapsync.importer import run
        from olapsync.sync import planner

        force = {c.partition: _REASONS[c.status] for c in report.drifted if c.table == spec.name}
        step(f"repairing {len(force)} month(s)")
        result = run(
            target,
            cfg,
            spec,
            planner(lag=lag if isinstance(lag, timedelta) else parse_lag(lag), force=force),
            allow_shrink=allow_shrink,
            max_rejected_ratio=max_rejected_ratio,
            kind="sync",
            on_progress=on_progress,
        )
        return VerifyReport(checks, time.monotonic() - t0, result, cfg.database)
