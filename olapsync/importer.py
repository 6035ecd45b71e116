"""One run, top to bottom: stage everything, check it, then publish with two swaps.

An import and a sync are the same run; they differ only in their `Scope` (what they read and
rebuild), which an import is given and a sync works out inside the run (`olapsync.sync`).

0. the run lock first (one writer per target), then the tables it needs, then the ledger:
   runs that stopped without finishing are marked `interrupted`, and this run `running`.
1. users: read, validate (any bad row fails the run), load `users_staging`, check the count
   and the shrink guard.
2. events (`olapsync.events`): a new `telemetry_events_staging` shaped like the target; the
   source rows the scope reads, through validation, in one snapshot of the source; a window's
   edge months; the months kept, hard-linked, and a sync's new rows appended to them; events
   of users gone, and repeated ids, removed (quarantined with their reason).
3. checks: the reject ratio, and staging's rows, month by month.
4. publish: a `publishing` ledger row (the staging tables' ids, the watermark) and the month
   ledger (`olapsync.partitions`), then `EXCHANGE TABLES users AND users_staging` and the
   same for the events (skipped when a sync changed no month). The previous version, now in
   the staging slot, is told not to merge (the next run drops it).
5. the ledger's last row: `success`, or `failed` with the error (redacted).

Nothing is published until every check has passed, and each swap is atomic on its own: a run
killed anywhere leaves each table entirely old or entirely new. docs/design.md says why
whole tables are swapped rather than partitions replaced.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pyarrow as pa

from olapsync import ledger, statements
from olapsync.book import Book
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.delta import Watermark
from olapsync.errors import OlapsyncError, TargetError
from olapsync.events import EventsStage
from olapsync.failpoints import failpoint
from olapsync.fingerprint import WHOLE, Fingerprint, target_fingerprints
from olapsync.lock import RunLock
from olapsync.partitions import NO_TIME, MonthRecord, latest_records, write_records
from olapsync.pg import Snapshot, check_connection
from olapsync.progress import Phase, ProgressCallback, ProgressEvent
from olapsync.results import ImportResult, RunKind, RunStatus
from olapsync.schema import ensure_schema, stop_merging_after_import, supports_patches
from olapsync.scope import Scope, months_condition
from olapsync.source import read_table, window_condition
from olapsync.specs import USERS, TableSpec, row_signature
from olapsync.staging import Tally, stage_users
from olapsync.window import Window

log = logging.getLogger(__name__)
# Rows per range the telemetry read walks, in batches: bounds what connectorx buffers ahead
# of loading (see `olapsync.source.read_batches`).
_CHUNK_BATCHES = 4
Planner = Callable[["Run"], Scope]
_KEPT = ("appended", "cleaned")  # book actions of months kept, not read again


def run_import(
    target: Target,
    config: Config,
    telemetry: TableSpec,
    window: Window,
    **options: Any,
) -> ImportResult:
    """Run one import against an open target; see `olapsync.import_olap_data`."""

    def plan(r: Run) -> Scope:
        return Scope.of_window(window, r.previous, frozenset(r.parents.to_list()))

    return run(target, config, telemetry, plan, kind="import", **options)


def run(
    target: Target,
    config: Config,
    spec: TableSpec,
    planner: Planner,
    *,
    kind: RunKind,
    allow_shrink: bool = False,
    max_rejected_ratio: float = 0.01,
    on_progress: ProgressCallback | None = None,
    run_id: str | None = None,
) -> ImportResult:
    """Run one import or sync (its `planner` gives the scope, see `olapsync.sync`).

    Raises:
        RunLockedError: another run holds the target; nothing was changed.
        ConfigError, SourceError, TargetError, DataError: the run failed and published
            nothing (or, after a swap, as much as its atomic steps had done); the ledger
            records it as failed.
    """
    r = Run(target, config, spec, kind=kind, run_id=run_id or new_run_id())
    r.allow_shrink, r.max_rejected_ratio, r.on_progress = (
        allow_shrink,
        max_rejected_ratio,
        on_progress,
    )
    with RunLock(target, r.run_id):  # before anything is created or changed
        ensure_schema(target, [USERS, spec])
        ledger.recover(target)
        ledger.record(target, r.ledger_row("running"))
        try:
            result = r.execute(planner)
        except BaseException as exc:
            why = str(exc) if isinstance(exc, OlapsyncError) else f"{type(exc).__name__}: {exc}"
            ledger.record(target, r.ledger_row("failed", why or type(exc).__name__))
            raise
        failpoint("before-ledger")
        ledger.record(target, r.ledger_row("success"))
    r.progress("done", f"{kind} finished in {result.seconds:.1f}s")
    return result


def new_run_id() -> str:
    """A sortable, unique run id: UTC start time and a random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def read_telemetry(config: Config, spec: TableSpec, window: Window) -> Iterator[pa.RecordBatch]:
    """The window's source rows as Arrow batches, read as an import reads them."""
    return read_table(
        config.telemetry_url,
        spec,
        window_condition(spec, window) if not window.is_full else "",
        batch_size=config.batch_size,
        partitions=config.read_partitions,
        chunk_rows=_CHUNK_BATCHES * config.batch_size,
        what=f"read {spec.source_table}",
    )


class Run:
    """One run's state; `olapsync.sync`'s planner reads and fills it."""

    def __init__(
        self, target: Target, config: Config, spec: TableSpec, *, kind: RunKind, run_id: str
    ):
        self.target, self.db, self.config, self.spec = target, target.database, config, spec
        self.kind, self.run_id = kind, run_id
        self.allow_shrink = False
        self.max_rejected_ratio = 0.01
        self.on_progress: ProgressCallback | None = None
        self.started = datetime.now(UTC)
        self.t0 = time.monotonic()
        self.tally = Tally()
        self.book = Book()
        self.scope = Scope(kind=kind)
        self.previous: dict[str, MonthRecord] = {}
        self.watermark: Watermark | None = None
        self.delta: str | None = None  # a sync's table of new rows
        self.rows_read = 0  # by a sync's planner (its candidates)
        self.rejected = 0
        self.snapshot: Snapshot | None = None
        self.parents: pl.Series = pl.Series("parents", [], pl.Int32)
        self.since: datetime | None = None  # a sync: rows saved from then on were read
        self.since_sql = ""
        self.candidates = 0

    def progress(self, phase: Phase, message: str, **kw: Any) -> None:
        log.info("%s: %s", phase, message)
        if self.on_progress is not None:
            self.on_progress(
                ProgressEvent(phase, message, seconds=time.monotonic() - self.t0, **kw)
            )

    def read(self, where: str) -> Iterator[pa.RecordBatch]:
        """The events source's rows matching `where`, in the run's snapshot, each with its
        source hash."""
        return read_table(
            self.config.telemetry_url,
            self.spec,
            where,
            batch_size=self.config.batch_size,
            partitions=self.config.read_partitions,
            chunk_rows=_CHUNK_BATCHES * self.config.batch_size,
            what=f"read {self.spec.source_table}",
            snapshot=self.snapshot,
            fingerprint=True,
        )

    def execute(self, planner: Planner) -> ImportResult:
        """The run, in the order of the module docstring."""
        t, spec = self.target, self.spec
        for url in dict.fromkeys((self.config.crm_url, self.config.telemetry_url)):
            check_connection(url)
        with Snapshot(self.config.telemetry_url, what=f"read {spec.source_table}") as snap:
            self.snapshot = snap
            parents, users_source = stage_users(
                t, self.config.crm_url, self.tally, allow_shrink=self.allow_shrink,
                progress=self.progress,
            )  # fmt: skip
            self.parents = parents
            self.previous = latest_records(t, spec.name, ledger.published_runs(t, spec.name))
            scope = self.scope = planner(self)
            target_parts = t.partitions(spec.name)
            stage = EventsStage(
                t, spec, scope, self.book, self.tally, run_id=self.run_id,
                previous=self.previous, patches=supports_patches(t), progress=self.progress,
                delta=self.delta,
            )  # fmt: skip
            changed = scope.reads or bool(scope.appends) or self._orphans(target_parts)
            records: list[MonthRecord] = []
            removed_why: dict[str, list[str]] = {}
            if changed:
                stage.build(parents, lambda: self.read(self._where(scope)), target_parts)
                before = {p: (m.skipped, m.rejected) for p, m in self.book.months.items()}
                stage.clean(target_parts)
                removed_why = _removal_reasons(self.book, before)
                loaded = stage.loaded
                rows = self.rows_read + loaded.rows
                rejected = self.rejected + loaded.rejected + self.tally.duplicates_rejected
                # The ratio is over the table as the run leaves it, as a full import of the
                # same source would judge it: the months the run does not read bring their
                # last load's rows, so that one bad row among a few new ones, or in a month
                # of few rows, does not stop every sync.
                kept = [r for k, r in self.previous.items() if not scope.rebuilds(k)]
                rows += sum(r.loaded + r.rejected + r.skipped for r in kept)
                rejected += sum(r.rejected for r in kept)
                stage.check(rows, rejected, self.max_rejected_ratio)
                self._tally(stage, target_parts)
                if scope.full or scope.kind == "sync":
                    self._watermark(snap, loaded.max_seen)
                records = self.book.records(
                    spec.name, stage.targets(), self.previous, row_signature(spec)
                )
            elif scope.kind == "sync":
                self._watermark(snap, None)
            records.append(self._users_record(users_source))
            try:
                self.publish(records, events=changed)
            finally:
                self._drop_scratch()
        months_done = {m: [str(x) for x in r] for m, r in scope.months.items()}
        months_done |= {m: [str(x) for x in c.reasons] for m, c in scope.appends.items()}
        for pid, why in removed_why.items():
            months_done[pid] = [*months_done.get(pid, []), *why]
        kept_months = {
            p: m for p, m in sorted(self.book.months.items()) if m.action in _KEPT and p != NO_TIME
        }
        return ImportResult(
            run_id=self.run_id,
            kind=self.kind,
            window=scope.window,
            **asdict(self.tally),
            months=dict(sorted(months_done.items())),
            watermark=None if self.watermark is None else self.watermark.value,
            rows_per_partition=dict(sorted(stage.loaded.per_partition.items())),
            rows_appended={
                p: m.added.rows for p, m in kept_months.items() if m.action == "appended"
            },
            rows_removed={p: m.removed.rows for p, m in kept_months.items() if m.removed.rows},
            seconds=time.monotonic() - self.t0,
        )

    def _drop_scratch(self) -> None:
        """A sync's scratch tables (its new rows) are not left behind."""
        if self.delta is None:
            return
        for table in (self.delta, self.delta + "_ids"):
            try:
                self.target.execute(statements.drop_table(self.db, table))
            except TargetError as exc:  # left for the next sync, which drops it first
                log.warning("%s", exc)

    def _where(self, scope: Scope) -> str:
        if scope.full:
            return ""
        assert self.spec.time_column is not None
        column = self.spec.column(self.spec.time_column)
        months = months_condition(column.source_ident, scope.months)
        if scope.kind == "import":
            window = window_condition(self.spec, scope.window)
            return f"({window}) OR ({months})" if scope.months else window
        return months

    def _orphans(self, target_parts: dict[str, int]) -> bool:
        """Whether the target holds events of users gone from the CRM."""
        if not target_parts or self.spec.parent is None:
            return False
        found = self.target.fetch_scalar(
            statements.orphans_exist(self.db, self.spec.name, self.spec.parent[1], USERS.staging)
        )
        return bool(found)

    def _tally(self, stage: EventsStage, target_parts: dict[str, int]) -> None:
        r, loaded = self.tally, stage.loaded
        r.events_loaded += loaded.loaded - r.duplicates_rejected
        r.events_rejected += loaded.rejected + r.duplicates_rejected
        r.events_skipped_orphans += loaded.orphans
        replaced, r.partitions_dropped = stage.replaced_and_dropped(target_parts)
        # A month kept (hard-linked) and appended to or cleaned was not replaced: each month
        # is reported once, by what was done to it.
        kept = {p: m.action for p, m in self.book.months.items() if m.action in _KEPT}
        r.partitions_replaced = [p for p in replaced if p not in kept]
        r.partitions_cleaned = sorted(
            p for p, action in kept.items() if action == "cleaned" and p in replaced
        )

    def _watermark(self, snap: Snapshot, seen: datetime | None) -> None:
        """The watermark this run leaves: the greatest `saved_ts` seen (this run's rows, or
        the previous run's), capped by the snapshot's clock."""
        before = self.watermark.max_seen if self.watermark is not None else None
        candidates = [v for v in (before, seen) if v is not None]
        if not candidates:
            return
        max_seen = max(candidates)
        self.watermark = Watermark(min(max_seen, snap.now()), max_seen)

    def _users_record(self, source: Fingerprint) -> MonthRecord:
        found = target_fingerprints(self.target.rows, USERS, self.target.t(USERS.staging))
        return MonthRecord(
            table=USERS.name, partition=WHOLE, action="rebuilt", source=source,
            loaded=self.tally.users_loaded, rejected=0, skipped=0,
            target=found.get(WHOLE, Fingerprint.EMPTY), signature=row_signature(USERS),
        )  # fmt: skip

    def publish(self, records: list[MonthRecord], *, events: bool) -> None:
        """Record what is about to be published, then swap the tables in."""
        t, spec = self.target, self.spec
        swaps = [(USERS.name, USERS.staging)] + ([(spec.name, spec.staging)] if events else [])
        uuids = {name: ledger.table_uuid(t, staging) for name, staging in swaps}
        ledger.write_ledger(t, self.ledger_row("publishing", uuids=uuids))
        write_records(t, self.run_id, records)
        failpoint("after-records")
        self.progress("publish", "swapping users")
        t.execute(statements.exchange(self.db, USERS.name, USERS.staging))
        failpoint("after-users-swap")
        if not events:
            return
        t.execute(statements.exchange(self.db, spec.name, spec.staging))
        failpoint("after-telemetry-swap")
        try:
            stop_merging_after_import(t, spec.staging)
        except TargetError as exc:  # published already: worth a warning, not a failed run
            log.warning("%s", exc)
        for pid in self.tally.partitions_replaced:
            self.progress("publish", "replaced", partition=pid)
        for pid in self.tally.partitions_dropped:
            self.progress("publish", "dropped", partition=pid)

    def ledger_row(
        self, status: RunStatus, error: str = "", *, uuids: dict[str, str] | None = None
    ) -> ledger.LedgerRow:
        r = self.tally
        return ledger.LedgerRow(
            run_id=self.run_id, status=status, started_at=self.started,
            window=self.scope.window, kind=self.kind, users_loaded=r.users_loaded,
            events_loaded=r.events_loaded, events_rejected=r.events_rejected,
            events_skipped_orphans=r.events_skipped_orphans, orphans_removed=r.orphans_removed,
            partitions_replaced=r.partitions_replaced, partitions_dropped=r.partitions_dropped,
            seconds=(datetime.now(UTC) - self.started).total_seconds(),
            # Every reader of the analytics database sees this column: no password in it.
            error=self.target.config.scrub(error), watermark=self.watermark,
            staging_uuids=uuids or {},
        )  # fmt: skip


def _removal_reasons(book: Book, before: Mapping[str, tuple[int, int]]) -> dict[str, list[str]]:
    """Why rows were removed from each month the run kept (appended to or not), from its
    books `before` the removal ((skipped, rejected) per month): "orphans" (events of users
    gone), "repeated ids" (every copy of an id found more than once)."""
    out = {}
    for pid, m in book.months.items():
        if m.action not in _KEPT:
            continue
        skipped, rejected = before.get(pid, (0, 0))
        why = ["orphans"] * (m.skipped > skipped) + ["repeated ids"] * (m.rejected > rejected)
        if why:
            out[pid] = why
    return out
