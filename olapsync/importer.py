"""One import run: stage everything, check it, then publish with metadata-level swaps.

1. users: read, validate (any bad row fails the run), load `users_staging`, check the
   count and the shrink guard.
2. telemetry window `[start, end)`: stream the window's source rows through validation into
   `telemetry_events_staging` (reading the next batch while the previous one is inserted);
   copy the target's rows of partly covered edge partitions that lie outside the window;
   copy partitions outside the window that hold orphans, without them; check the counts
   and the reject ratio.
   Then hard-link the target's partitions the run leaves alone into staging, so that
   staging holds the whole new table, and check it partition by partition.
3. publish: `EXCHANGE TABLES users AND users_staging`, then
   `EXCHANGE TABLES telemetry_events AND telemetry_events_staging`; the previous version,
   now in staging, is told not to merge its parts (the next run drops it).
4. the ledger row, last.

Nothing is published until every check has passed, and each publish step is atomic on its
own: a run killed anywhere leaves the users table and the telemetry table each entirely
old or entirely new.

Why not `REPLACE PARTITION` per partition (DESIGN.md's first plan): on a plain MergeTree it
is not atomic on disk. It writes the new part before the empty part that covers the old
ones, so a process killed in between (an embedded chDB import, or a server crash) comes
back with both the old and the new rows of that partition. `EXCHANGE TABLES` is one rename
in an Atomic database, so the telemetry table is published the way users always were, and
a window run is now atomic across all its partitions, not only within each.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.errors import DataError, OlapsyncError, TargetError
from olapsync.progress import ProgressCallback, ProgressEvent, failpoint, fault
from olapsync.schema import (
    LedgerRow,
    RunLock,
    ensure_schema,
    stop_merging_after_import,
    write_ledger,
)
from olapsync.source import (
    check_connection,
    read_all,
    read_table,
    window_condition,
)
from olapsync.specs import USERS, TableSpec
from olapsync.validate import Split, validate
from olapsync.window import Window, epoch, plan_partitions

log = logging.getLogger(__name__)
_PARTITION_ID = re.compile(r"^\d{6}$")
_QUEUE_DEPTH = 2
# Rows per range the telemetry read walks, in batches.
_CHUNK_BATCHES = 4


@dataclass
class ImportResult:
    """What a run did. `to_dict()` gives JSON-ready values.

    partitions_replaced / partitions_dropped: partition ids (`YYYYMM`) swapped in or removed.
    events_skipped_orphans: window rows not loaded because their user is not in the new
        users set. orphans_removed: rows outside the window removed for the same reason.
    """

    run_id: str
    status: str
    window: Window
    users_loaded: int = 0
    users_before: int = 0
    events_loaded: int = 0
    events_rejected: int = 0
    events_skipped_orphans: int = 0
    orphans_removed: int = 0
    edge_rows_kept: int = 0
    insert_retries: int = 0
    partitions_replaced: list[str] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)
    rows_per_partition: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["window"] = {
            "start": None if self.window.start is None else self.window.start.isoformat(),
            "end": None if self.window.end is None else self.window.end.isoformat(),
        }
        out["seconds"] = round(self.seconds, 3)
        return out


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


class _Inserter:
    """Inserts Arrow tables on a background thread so reading overlaps loading.

    The queue is short, so memory stays bounded by a few batches whatever the table size.
    Each insert carries a token unique to the run and batch; a failed insert is retried with
    the same token, so an insert that did land but whose answer was lost is not doubled.
    """

    RETRIES = 3

    def __init__(self, target: Target, run_id: str):
        self.target = target
        self.run_id = run_id
        self.sent = 0
        self.retried = 0
        self.queue: queue.Queue[tuple[str, pa.Table, str] | None] = queue.Queue(_QUEUE_DEPTH)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="olapsync-insert", daemon=True)
        self.thread.start()

    def _insert(self, table: str, data: pa.Table, token: str) -> None:
        settings = {"insert_deduplication_token": token}
        for attempt in range(1, self.RETRIES + 1):
            try:
                self.target.insert_arrow(table, data, settings=settings)
                if fault("insert-ack-lost") and self.retried == 0:
                    raise TargetError("simulated: the insert landed but its answer was lost")
                return
            except TargetError as exc:
                if attempt == self.RETRIES:
                    raise
                self.retried += 1
                log.warning("insert into %s failed (%s); retrying with token %s", table, exc, token)
                time.sleep(0.5 * attempt)

    def _work(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue
            try:
                self._insert(*item)
            except BaseException as exc:
                self.error = exc

    def put(self, table: str, data: pa.Table) -> None:
        self._raise()
        self.sent += 1
        self.queue.put((table, data, f"{self.run_id}:{table}:{self.sent}"))

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self._raise()


class _Run:
    def __init__(
        self,
        target: Target,
        config: Config,
        telemetry: TableSpec,
        window: Window,
        *,
        run_id: str,
        allow_shrink: bool,
        max_rejected_ratio: float,
        on_progress: ProgressCallback | None,
    ):
        self.target = target
        self.config = config
        self.spec = telemetry
        self.window = window
        self.allow_shrink = allow_shrink
        self.max_rejected_ratio = max_rejected_ratio
        self.on_progress = on_progress
        self.t0 = time.monotonic()
        self.result = ImportResult(run_id=run_id, status="running", window=window)

    def progress(self, phase: str, message: str, **kw: Any) -> None:
        log.info("%s: %s", phase, message)
        if self.on_progress is not None:
            self.on_progress(
                ProgressEvent(phase, message, seconds=time.monotonic() - self.t0, **kw)
            )

    # -- 1. users -------------------------------------------------------------------------
    def stage_users(self) -> pl.Series:
        t, r = self.target, self.result
        self.progress("users", "reading users from CRM")
        batch = read_all(self.config.crm_url, USERS, what="read users")
        split = validate(batch, USERS)
        if split.rejected.height:
            reasons = "; ".join(
                f"{USERS.key} {k}: {why}"
                for k, why in split.rejected.select("key", "reason").head(3).iter_rows()
            )
            raise DataError(
                f"{split.rejected.height} users row(s) cannot be loaded ({reasons}): fix them "
                "in the CRM; a dropped user would delete that user's telemetry as an orphan."
            )
        r.users_loaded = split.clean.num_rows
        r.users_before = t.count(USERS.name)
        if r.users_before and r.users_loaded < r.users_before / 2 and not self.allow_shrink:
            raise DataError(
                f"The CRM has {r.users_loaded} users, less than half of the {r.users_before} "
                "loaded now: check the source, or pass --allow-shrink if the drop is real."
            )
        t.command(f"TRUNCATE TABLE {t.t(USERS.staging)}", table=USERS.staging)
        t.insert_arrow(USERS.staging, split.clean)
        staged = t.count(USERS.staging)
        if staged != r.users_loaded:
            raise TargetError(
                f"users_staging holds {staged} rows after loading {r.users_loaded}: "
                "nothing was published; rerun the import.",
                table=USERS.staging,
            )
        self.progress("users", f"{r.users_loaded} users staged", rows=r.users_loaded)
        # Through Polars: pyarrow's own to_numpy() imports pandas, a second of start-up.
        ids = pl.from_arrow(split.clean.column(USERS.key))
        assert isinstance(ids, pl.Series)
        return ids

    # -- 2. telemetry ---------------------------------------------------------------------
    def stage_window(self, user_ids: pl.Series) -> Counter[str]:
        t, r, spec = self.target, self.result, self.spec
        # A new staging table each run, shaped exactly like the target it will be swapped
        # with; dropping the old one (the previous version of the table) frees its parts.
        t.command(f"DROP TABLE IF EXISTS {t.t(spec.staging)} SYNC", table=spec.staging)
        t.command(
            f"CREATE TABLE {t.t(spec.staging)} AS {t.t(spec.name)}",
            what="create the staging table",
            table=spec.staging,
        )
        per_partition: Counter[str] = Counter()
        rows = 0
        inserter = _Inserter(t, r.run_id)
        try:
            self.progress("extract", f"reading {spec.source_table} {self.window.describe()}")
            for batch in read_telemetry(self.config, spec, self.window):
                split = validate(batch, spec, user_ids)
                rows += split.rows
                if split.clean.num_rows:
                    inserter.put(spec.staging, split.clean)
                    per_partition.update(_partition_counts(split, spec))
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
                f"see {t.database}.{spec.rejected} WHERE run_id = '{r.run_id}'."
            )
        return per_partition

    def _quarantine_rows(self, rejected: pl.DataFrame) -> pa.Table:
        now = int(time.time())
        return rejected.select(
            pl.lit(self.result.run_id).alias("run_id"),
            pl.lit(now, pl.UInt32).alias("rejected_at"),
            pl.col("key").alias(self.spec.key),
            "reason",
            "source_row",
        ).to_arrow()

    def stage_outside(self, target_parts: dict[str, int]) -> tuple[set[str], int]:
        """Copy edge rows and orphan-free partitions into staging; return the cleaned
        partitions and the expected number of copied rows."""
        t, r, spec, w = self.target, self.result, self.spec, self.window
        assert spec.parent is not None
        assert spec.time_column is not None
        ts, parent_col = spec.time_column, spec.parent[1]
        known = f"`{parent_col}` IN (SELECT `{spec.parent[1]}` FROM {t.t(USERS.staging)})"
        inside = []
        params: dict[str, Any] = {}
        if w.start is not None:
            inside.append(f"`{ts}` >= toDateTime({{start:UInt32}}, 'UTC')")
            params["start"] = epoch(w.start)
        if w.end is not None:
            inside.append(f"`{ts}` < toDateTime({{end:UInt32}}, 'UTC')")
            params["end"] = epoch(w.end)
        in_window = " AND ".join(inside) or "1"
        copied = 0
        # Orphans in partitions of the target outside the window (a full import replaces
        # every partition from the source, so it has none to clean).
        orphan_rows: dict[str, int] = {}
        if not w.is_full:
            orphan_rows = {
                str(p): int(n)
                for p, n in t.rows(
                    f"SELECT _partition_id, count() FROM {t.t(spec.name)} "
                    f"WHERE NOT {known} AND NOT ({in_window}) GROUP BY 1",
                    params,
                    what="count orphaned events",
                    table=spec.name,
                )
            }
        plan = plan_partitions(w, set(target_parts), set())
        cleaned = {p for p in orphan_rows if not w.touches(p)}
        for pid in sorted(set(plan.edge) | cleaned):
            _check_pid(pid)
            cond = f"_partition_id = {{pid:String}} AND {known}"
            if pid in plan.edge:
                cond += f" AND NOT ({in_window})"
            n = int(
                t.scalar(
                    f"SELECT count() FROM {t.t(spec.name)} WHERE {cond}",
                    {**params, "pid": pid},
                    table=spec.name,
                )
            )
            if n:
                t.command(
                    f"INSERT INTO {t.t(spec.staging)} SELECT * FROM {t.t(spec.name)} WHERE {cond}",
                    {**params, "pid": pid},
                    what=f"copy partition {pid} into staging",
                    table=spec.staging,
                )
            copied += n
            if pid in cleaned:
                failpoint("during-orphan-cleanup")
            r.orphans_removed += orphan_rows.get(pid, 0)
            if pid in plan.edge:
                r.edge_rows_kept += n
            self.progress("stage", f"{n:,} rows kept outside the window", partition=pid)
        return cleaned, copied

    def keep_partitions(self, target_parts: dict[str, int], cleaned: set[str]) -> dict[str, int]:
        """Hard-link the target's partitions this run leaves alone into staging (no data is
        copied), so staging becomes the whole new table; return them with their row counts.
        The staging check compares each of them with the target, so a kept partition that
        somehow also got rows from this run stops the run there.
        """
        t, spec = self.target, self.spec
        kept = {
            p: n
            for p, n in target_parts.items()
            if n and not self.window.touches(p) and p not in cleaned
        }
        for pid in sorted(kept):
            _check_pid(pid)
            t.command(
                f"ALTER TABLE {t.t(spec.staging)} ATTACH PARTITION ID '{pid}' "
                f"FROM {t.t(spec.name)}",
                what=f"keep partition {pid}",
                table=spec.staging,
            )
        failpoint("after-partitions-kept")
        if kept:
            self.progress("stage", f"{len(kept)} partitions outside the window kept as they are")
        return kept

    # -- run ------------------------------------------------------------------------------
    def execute(self) -> ImportResult:
        t, r, spec = self.target, self.result, self.spec
        for url in dict.fromkeys((self.config.crm_url, self.config.telemetry_url)):
            check_connection(url)
        if fault("crash"):
            # Test-only: an unexpected error whose text carries a URL, to prove redaction.
            raise RuntimeError(f"simulated crash while reading {self.config.crm_url}")
        user_ids = self.stage_users()
        target_parts = t.partitions(spec.name)
        per_partition = self.stage_window(user_ids)
        cleaned, copied = self.stage_outside(target_parts)

        plan = plan_partitions(
            self.window, set(target_parts), set(t.partitions(spec.staging)), cleaned=cleaned
        )
        kept = self.keep_partitions(target_parts, cleaned)
        staged = t.partitions(spec.staging)
        expected = r.events_loaded + copied + sum(kept.values())
        wrong = sorted(p for p, n in kept.items() if staged.get(p, 0) != n)
        if sum(staged.values()) != expected or wrong:
            raise TargetError(
                f"{spec.staging} holds {sum(staged.values())} rows, expected {expected}"
                + (f" (partitions {', '.join(wrong)} differ from the target)" if wrong else "")
                + ": nothing was published; rerun the import.",
                table=spec.staging,
            )
        failpoint("after-staging-check")

        self.progress("publish", "swapping users")
        t.command(
            f"EXCHANGE TABLES {t.t(USERS.name)} AND {t.t(USERS.staging)}",
            what="swap users",
            table=USERS.name,
        )
        failpoint("after-users-swap")
        t.command(
            f"EXCHANGE TABLES {t.t(spec.name)} AND {t.t(spec.staging)}",
            what=f"swap {spec.name}",
            table=spec.name,
        )
        failpoint("after-telemetry-swap")
        try:
            stop_merging_after_import(t, spec.staging)
        except TargetError as exc:  # published already: worth a warning, not a failed run
            log.warning("%s", exc)
        for pid in plan.replace:
            self.progress("publish", "replaced", rows=staged[pid], partition=pid)
        for pid in plan.drop:
            self.progress("publish", "dropped", partition=pid)
        r.partitions_replaced = list(plan.replace)
        r.partitions_dropped = list(plan.drop)
        r.rows_per_partition = dict(sorted(per_partition.items()))
        r.status = "success"
        r.seconds = time.monotonic() - self.t0
        return r


def _check_pid(pid: str) -> None:
    # Partition ids come from system.parts; they are formatted into ALTER statements, which
    # take no parameters, so make sure they are what toYYYYMM produces.
    if not _PARTITION_ID.match(pid):
        raise TargetError(f"Unexpected partition id {pid!r}: expected YYYYMM.")


# The day number (since 1970-01-01) each month ClickHouse DateTime can hold begins on,
# 1970-01 to 2106-02, to bucket rows by month.
_MONTHS = range((2106 - 1970) * 12 + 2)
_MONTH_START_DAYS = np.array(
    [(date(1970 + m // 12, m % 12 + 1, 1) - date(1970, 1, 1)).days for m in _MONTHS],
    dtype=np.int64,
)
_MONTH_IDS = [f"{1970 + m // 12:04d}{m % 12 + 1:02d}" for m in _MONTHS]


def _partition_counts(split: Split, spec: TableSpec) -> Counter[str]:
    """Rows per `YYYYMM` partition of a clean batch (for progress), without string work:
    count rows per day, then look up the month of the few distinct days."""
    assert spec.time_column is not None
    column = pl.from_arrow(split.clean.column(spec.time_column))
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


def read_telemetry(config: Config, spec: TableSpec, window: Window) -> Iterator[pa.RecordBatch]:
    """The window's source rows as Arrow batches, read exactly as an import reads them."""
    return read_table(
        config.telemetry_url,
        spec,
        window_condition(spec, window) if not window.is_full else "",
        batch_size=config.batch_size,
        partitions=config.read_partitions,
        # Ranges bound what connectorx buffers ahead of loading (see read_batches).
        chunk_rows=_CHUNK_BATCHES * config.batch_size,
        what=f"read {spec.source_table}",
    )


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
    """Run one import against an open target; see `olapsync.import_olap_data`."""
    run_id = run_id or new_run_id()
    started = datetime.now(UTC)
    ensure_schema(target, [USERS, telemetry])
    run = _Run(
        target,
        config,
        telemetry,
        window,
        run_id=run_id,
        allow_shrink=allow_shrink,
        max_rejected_ratio=max_rejected_ratio,
        on_progress=on_progress,
    )
    with RunLock(target, run_id):
        try:
            result = run.execute()
        except OlapsyncError as exc:
            _ledger(target, run.result, started, "failed", str(exc))
            raise
        failpoint("before-ledger")
        _ledger(target, result, started, "success", "")
    run.progress("done", f"import finished in {result.seconds:.1f}s")
    return result


def _ledger(target: Target, r: ImportResult, started: datetime, status: str, error: str) -> None:
    row = LedgerRow(
        run_id=r.run_id,
        status=status,
        started_at=started,
        window=r.window,
        users_loaded=r.users_loaded,
        events_loaded=r.events_loaded,
        events_rejected=r.events_rejected,
        events_skipped_orphans=r.events_skipped_orphans,
        orphans_removed=r.orphans_removed,
        partitions_replaced=r.partitions_replaced,
        partitions_dropped=r.partitions_dropped,
        seconds=(datetime.now(UTC) - started).total_seconds(),
        error=error,
    )
    try:
        write_ledger(target, row)
    except TargetError:
        if status == "success":
            raise
        log.warning("could not record the failed run %s in the ledger", r.run_id)
