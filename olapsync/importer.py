"""One import run, top to bottom: stage everything, check it, then publish with two swaps.

1. users: read, validate (any bad row fails the run), load `users_staging`, check the count
   and the shrink guard.
2. telemetry: a new `telemetry_events_staging`, shaped like the target. Stream the window's
   source rows through validation into it (reading the next batch while the previous one is
   inserted); copy in the target's rows of partly covered (edge) months that lie outside the
   window, and the months outside the window that hold orphans, without them; hard-link the
   months the run leaves alone, so that staging holds the whole new table.
3. checks: the reject ratio, and staging's counts, in total and for every month kept.
4. publish: `EXCHANGE TABLES users AND users_staging`, then the same for the events. The
   previous version, now in the staging slot, is told not to merge (the next run drops it).
5. the ledger row, last (`olapsync.ledger`), under the run lock (`olapsync.lock`).

Nothing is published until every check has passed, and each swap is atomic on its own: a run
killed anywhere leaves each table entirely old or entirely new. docs/design.md says why
whole tables are swapped rather than partitions replaced.

What a run rebuilds is its `Window`, used only through `touches`/`covers` (per month), the
source condition and the ClickHouse predicate; a set of months needs only those.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pyarrow as pa

from olapsync import ledger, statements
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.errors import DataError, OlapsyncError, TargetError
from olapsync.failpoints import failpoint
from olapsync.inserter import Inserter
from olapsync.lock import RunLock
from olapsync.progress import Phase, ProgressCallback, ProgressEvent
from olapsync.results import ImportResult, RunStatus
from olapsync.schema import ensure_schema, stop_merging_after_import
from olapsync.source import check_connection, read_table, window_condition
from olapsync.specs import USERS, TableSpec
from olapsync.staging import Tally, copy_outside, keep_partitions, stage_users
from olapsync.validate import validate
from olapsync.window import Window, plan_partitions, rows_per_month

log = logging.getLogger(__name__)
# Rows per range the telemetry read walks, in batches: bounds what connectorx buffers ahead
# of loading (see `olapsync.source.read_batches`).
_CHUNK_BATCHES = 4


def run_import(
    target: Target,
    config: Config,
    telemetry: TableSpec,
    window: Window,
    *,
    allow_shrink: bool = False,
    max_rejected_ratio: float = 0.01,
    on_progress: ProgressCallback | None = None,
    run_id: str | None = None,
) -> ImportResult:
    """Run one import against an open target; see `olapsync.import_olap_data`.

    Raises:
        RunLockedError: another run holds the target.
        ConfigError, SourceError, TargetError, DataError: the run failed and published
            nothing (or, after a swap, as much as its atomic steps had done).
    """
    ensure_schema(target, [USERS, telemetry])
    run = _Run(
        target,
        config,
        telemetry,
        window,
        run_id=run_id or new_run_id(),
        allow_shrink=allow_shrink,
        max_rejected_ratio=max_rejected_ratio,
        on_progress=on_progress,
    )
    with RunLock(target, run.run_id):
        try:
            result = run.execute()
        except OlapsyncError as exc:
            ledger.record(target, run.ledger_row("failed", str(exc)))
            raise
        failpoint("before-ledger")
        ledger.record(target, run.ledger_row("success", ""))
    run.progress("done", f"import finished in {result.seconds:.1f}s")
    return result


def new_run_id() -> str:
    """A sortable, unique run id: UTC start time and a random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def read_telemetry(config: Config, spec: TableSpec, window: Window) -> Iterator[pa.RecordBatch]:
    """The window's source rows as Arrow batches, read exactly as an import reads them."""
    return read_table(
        config.telemetry_url,
        spec,
        window_condition(spec, window) if not window.is_full else "",
        batch_size=config.batch_size,
        partitions=config.read_partitions,
        chunk_rows=_CHUNK_BATCHES * config.batch_size,
        what=f"read {spec.source_table}",
    )


class _Run:
    def __init__(
        self,
        target: Target,
        config: Config,
        spec: TableSpec,
        window: Window,
        *,
        run_id: str,
        allow_shrink: bool,
        max_rejected_ratio: float,
        on_progress: ProgressCallback | None,
    ):
        self.target, self.db, self.config = target, target.database, config
        self.spec, self.window, self.run_id = spec, window, run_id
        self.allow_shrink = allow_shrink
        self.max_rejected_ratio = max_rejected_ratio
        self.on_progress = on_progress
        self.started = datetime.now(UTC)
        self.t0 = time.monotonic()
        self.tally = Tally()

    def progress(self, phase: Phase, message: str, **kw: Any) -> None:
        log.info("%s: %s", phase, message)
        if self.on_progress is not None:
            self.on_progress(
                ProgressEvent(phase, message, seconds=time.monotonic() - self.t0, **kw)
            )

    def execute(self) -> ImportResult:
        """The run, in the order of the module docstring."""
        t, spec, report = self.target, self.spec, self.progress
        for url in dict.fromkeys((self.config.crm_url, self.config.telemetry_url)):
            check_connection(url)
        # 1. users, 2. telemetry: the window's rows, then the rows outside it the run keeps
        user_ids = stage_users(
            t, self.config.crm_url, self.tally, allow_shrink=self.allow_shrink, progress=report
        )
        target_parts = t.partitions(spec.name)
        per_partition = self.stage_window(user_ids)
        cleaned, copied = copy_outside(
            t, spec, self.window, target_parts, self.tally, progress=report
        )
        plan = plan_partitions(
            self.window, set(target_parts), set(t.partitions(spec.staging)), cleaned=cleaned
        )
        kept = keep_partitions(t, spec, self.window, target_parts, cleaned, progress=report)
        staged = self.check_staging(kept, copied)
        self.publish()
        for pid in plan.replace:
            self.progress("publish", "replaced", rows=staged[pid], partition=pid)
        for pid in plan.drop:
            self.progress("publish", "dropped", partition=pid)
        self.tally.partitions_replaced = list(plan.replace)
        self.tally.partitions_dropped = list(plan.drop)
        return ImportResult(
            run_id=self.run_id,
            window=self.window,
            **asdict(self.tally),
            rows_per_partition=dict(sorted(per_partition.items())),
            seconds=time.monotonic() - self.t0,
        )

    # -- 2. telemetry ---------------------------------------------------------------------
    def stage_window(self, user_ids: pl.Series) -> Counter[str]:
        """Stream the window's source rows into a new staging table, quarantining rejects;
        return the rows loaded per partition."""
        t, r, spec = self.target, self.tally, self.spec
        # A new staging table each run, shaped exactly like the target it will be swapped
        # with; dropping the old one (the previous version of the table) frees its parts.
        t.execute(statements.drop_table(self.db, spec.staging))
        t.execute(statements.create_table_like(self.db, spec.staging, spec.name))
        per_partition: Counter[str] = Counter()
        rows = 0
        inserter = Inserter(t, self.run_id)
        try:
            self.progress("extract", f"reading {spec.source_table} {self.window.describe()}")
            for batch in read_telemetry(self.config, spec, self.window):
                split = validate(batch, spec, user_ids)
                rows += split.rows
                if split.clean.num_rows:
                    inserter.put(spec.staging, split.clean)
                    assert spec.time_column is not None
                    per_partition.update(rows_per_month(split.clean.column(spec.time_column)))
                if split.rejected.height:
                    inserter.put(spec.rejected, self._quarantine_rows(split.rejected))
                r.events_loaded += split.clean.num_rows
                r.events_rejected += split.rejected.height
                r.events_skipped_orphans += split.orphans
                self.progress(
                    "extract",
                    f"{rows:,} rows read",
                    rows=rows,
                    partitions=dict(sorted(per_partition.items())),
                )
            failpoint("during-staging-insert")
        finally:
            inserter.close()
            r.insert_retries = inserter.retried
        failpoint("after-extract")
        if rows and r.events_rejected / rows > self.max_rejected_ratio:
            raise DataError(
                f"{r.events_rejected} of {rows} rows ({r.events_rejected / rows:.2%}) in "
                f"window {self.window.describe()} were rejected, above the "
                f"--max-rejected-ratio of {self.max_rejected_ratio:g}: nothing was published; "
                f"see {self.db}.{spec.rejected} WHERE run_id = '{self.run_id}'."
            )
        return per_partition

    def _quarantine_rows(self, rejected: pl.DataFrame) -> pa.Table:
        return rejected.select(
            pl.lit(self.run_id).alias("run_id"),
            pl.lit(int(time.time()), pl.UInt32).alias("rejected_at"),
            pl.col("key").alias(self.spec.key),
            "reason",
            "source_row",
        ).to_arrow()

    # -- 3. checks ------------------------------------------------------------------------
    def check_staging(self, kept: dict[str, int], copied: int) -> dict[str, int]:
        """Staging must hold what the run put there, and every kept partition exactly as the
        target has it (a kept partition that somehow also got rows from this run stops the
        run here). Returns staging's rows per partition."""
        spec = self.spec
        staged = self.target.partitions(spec.staging)
        expected = self.tally.events_loaded + copied + sum(kept.values())
        wrong = sorted(p for p, n in kept.items() if staged.get(p, 0) != n)
        if sum(staged.values()) != expected or wrong:
            raise TargetError(
                f"{spec.staging} holds {sum(staged.values())} rows, expected {expected}"
                + (f" (partitions {', '.join(wrong)} differ from the target)" if wrong else "")
                + ": nothing was published; rerun the import.",
                table=spec.staging,
            )
        failpoint("after-staging-check")
        return staged

    # -- 4. publish -----------------------------------------------------------------------
    def publish(self) -> None:
        t, spec = self.target, self.spec
        self.progress("publish", "swapping users")
        t.execute(statements.exchange(self.db, USERS.name, USERS.staging))
        failpoint("after-users-swap")
        t.execute(statements.exchange(self.db, spec.name, spec.staging))
        failpoint("after-telemetry-swap")
        try:
            stop_merging_after_import(t, spec.staging)
        except TargetError as exc:  # published already: worth a warning, not a failed run
            log.warning("%s", exc)

    # -- 5. the ledger --------------------------------------------------------------------
    def ledger_row(self, status: RunStatus, error: str) -> ledger.LedgerRow:
        r = self.tally
        return ledger.LedgerRow(
            run_id=self.run_id,
            status=status,
            started_at=self.started,
            window=self.window,
            users_loaded=r.users_loaded,
            events_loaded=r.events_loaded,
            events_rejected=r.events_rejected,
            events_skipped_orphans=r.events_skipped_orphans,
            orphans_removed=r.orphans_removed,
            partitions_replaced=r.partitions_replaced,
            partitions_dropped=r.partitions_dropped,
            seconds=(datetime.now(UTC) - self.started).total_seconds(),
            # Every reader of the analytics database sees this column: no password in it.
            error=self.target.config.scrub(error),
        )
