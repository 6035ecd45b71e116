"""Building the new events table in staging for a run's `Scope`, in the order a reader of
`olapsync.importer` meets it:

1. a new staging table shaped like the target;
2. the source rows the scope reads, through validation (`olapsync.stream`);
3. a window's edge months: the target's rows outside the window;
4. the months the run keeps, hard-linked, and the rows a sync appends to them;
5. rows removed from what was kept: events of users gone from the CRM, and every copy of
   an id that appears more than once (issue 15, item 5), each quarantined with its reason;
6. the checks (reject ratio, rows per month) and the target fingerprints of the months
   the run changed.

The books (`olapsync.book`) follow every step, for the month ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import polars as pl
import pyarrow as pa

from olapsync import statements
from olapsync.book import Book
from olapsync.clickhouse import Target
from olapsync.errors import DataError
from olapsync.failpoints import failpoint
from olapsync.fingerprint import Fingerprint, ch_fingerprint_sql
from olapsync.partitions import NO_TIME, MonthRecord
from olapsync.repeats import held_in
from olapsync.scope import Scope
from olapsync.specs import USERS, TableSpec
from olapsync.staging import (
    Tally,
    account_removed,
    check_counts,
    copy_edges,
    hard_link,
    remove_rows,
)
from olapsync.stream import Loaded, load
from olapsync.window import plan_partitions

Progress = Callable[..., None]
Reader = Callable[[], Iterator[pa.RecordBatch]]


class EventsStage:
    """One run's work on the events table (see the module docstring).

    Args:
        target: the open target; spec: the events table's spec.
        scope: what the run rebuilds; book: the run's books (a sync's planner has already
            entered the months it appends to).
        previous: each month's latest record (`olapsync.partitions.latest_records`).
        patches: the server writes deletes as patch parts (`olapsync.schema`).
        delta: the table holding a sync's new rows (None for an import).
    """

    def __init__(
        self,
        target: Target,
        spec: TableSpec,
        scope: Scope,
        book: Book,
        tally: Tally,
        *,
        run_id: str,
        previous: dict[str, MonthRecord],
        patches: bool,
        progress: Progress,
        delta: str | None = None,
    ):
        self.t, self.db, self.spec, self.scope = target, target.database, spec, scope
        self.book, self.tally, self.run_id = book, tally, run_id
        self.previous, self.patches, self.progress, self.delta = previous, patches, progress, delta
        self.expected: dict[str, int] = {}
        self.loaded = Loaded()

    # -- 1.-4. ---------------------------------------------------------------------------
    def build(self, parents: pl.Series, read: Reader, target_parts: dict[str, int]) -> None:
        t, spec, scope = self.t, self.spec, self.scope
        # A new staging table each run, shaped exactly like the target it will be swapped
        # with; dropping the old one (the previous version of the table) frees its parts.
        t.execute(statements.drop_table(self.db, spec.staging))
        t.execute(statements.create_table_like(self.db, spec.staging, spec.name))
        if scope.reads:
            what = scope.window.describe() if scope.kind == "import" else "(months changed)"
            self.progress("extract", f"reading {spec.source_table} {what}")
            self.loaded = load(
                t,
                read(),
                spec,
                into=spec.staging,
                parents=parents,
                run_id=self.run_id,
                book=self.book,
                progress=self.progress,
            )
            self._add(dict(self.loaded.per_partition))
            self.tally.insert_retries += self.loaded.retries
        failpoint("after-extract")
        for pid in target_parts:  # months rebuilt with no rows left are dropped
            if scope.rebuilds(pid):
                self.book.month(pid)
        if scope.full:
            for pid in self.previous:
                self.book.month(pid)
        edges = [p for p in target_parts if scope.rebuilds(p) and scope.partial(p)]
        for pid in edges:
            self.book.month(pid).source = None
        self._add(copy_edges(t, spec, scope.window, edges, self.tally, progress=self.progress))
        kept = [p for p, n in target_parts.items() if n and scope.keeps(p)]
        self._add(hard_link(t, spec, kept, target_parts, progress=self.progress))
        if scope.appends and self.delta is not None:
            self._append()

    def _add(self, rows: dict[str, int]) -> None:
        for pid, n in rows.items():
            if n:
                self.expected[pid] = self.expected.get(pid, 0) + n

    def _append(self) -> None:
        """A sync's new rows into their months (already kept): from the delta table, the
        clean candidates of the append months whose id is not in the target."""
        assert self.delta is not None
        months = [m for m in self.scope.appends if m != NO_TIME]
        if not months:
            return
        spec = self.spec
        assert spec.time_column is not None
        cols = [c.name for c in spec.columns]
        new = statements.new_rows(
            self.db, self.delta, spec.name, spec.key, spec.time_column, months
        )
        fps = statements.fingerprint_of(self.db, self.delta, cols, spec.time_column, new)
        added = {str(pid): Fingerprint.of(int(n), int(h)) for pid, n, h in self.t.fetch(fps)}
        self.t.execute(statements.insert_from(self.db, self.spec.staging, self.delta, new))
        for pid, fp in added.items():
            self.book.month(pid).added = fp
            self._add({pid: fp.rows})
            self.tally.events_loaded += fp.rows
        self.tally.partitions_appended = sorted(added)
        failpoint("after-appends")

    # -- 5. ------------------------------------------------------------------------------
    def clean(self, target_parts: dict[str, int]) -> None:
        """Remove the events of users gone from the CRM from the months kept (a rebuilt
        month's were never loaded), and every copy of a repeated id."""
        spec, scope = self.spec, self.scope
        assert spec.parent is not None
        kept = [p for p in target_parts if scope.keeps(p)]
        if kept:
            gone = statements.orphans(self.db, spec.parent[1], USERS.staging, kept)
            removed = remove_rows(self.t, spec, gone, patches=self.patches)
            account_removed(self.book, removed, orphans=True)
            self.tally.orphans_removed += removed.rows
            if removed.rows:
                self.progress("stage", f"{removed.rows:,} events of users gone removed")
        failpoint("during-orphan-cleanup")
        # Where a repeated id can be: any month that got rows from this run; and a key held
        # back in a month the run keeps repeats in any copy the run stages of it.
        fresh = (
            None
            if scope.full
            else sorted(
                p for p, m in self.book.months.items() if p != NO_TIME and m.action != "cleaned"
            )
        )
        if fresh is not None and not fresh:
            return
        held = (
            {} if scope.full else held_in(self.previous, lambda p: p != NO_TIME and scope.keeps(p))
        )
        repeated = statements.repeated_keys(self.db, spec.staging, spec.key, fresh, held)
        keys = [int(k) for k, _n, _pids, _held in self.t.fetch(repeated)]
        if not keys:
            return
        cols = [c.name for c in spec.columns]
        self.t.execute(
            statements.quarantine_repeated(
                self.db, spec.staging, spec.rejected, spec.key, cols, self.run_id, repeated
            )
        )
        copies = statements.users_of_keys(self.db, spec.staging, spec.key, spec.parent[1], keys)
        holding = list(self.t.fetch(copies))
        removed = remove_rows(
            self.t, spec, statements.keys_in(spec.key, keys), patches=self.patches
        )
        account_removed(self.book, removed, orphans=False)
        # Each month remembers the keys it holds back and their users (olapsync.repeats).
        for pid, month_keys, users in holding:
            month = self.book.month(str(pid))
            month.repeated_keys.update(int(k) for k in month_keys)
            month.repeated_users.update(int(u) for u in users)
        self.tally.duplicates_rejected += removed.rows
        self.progress("stage", f"{len(keys):,} repeated ids quarantined ({removed.rows:,} rows)")

    # -- 6. ------------------------------------------------------------------------------
    def check(self, rows_read: int, rejected: int, max_rejected_ratio: float) -> None:
        """The reject ratio (`rejected` of `rows_read`: the source rows of the table as the
        run leaves it, the months it did not read counted as their last load found them),
        then staging's rows per month.

        Raises:
            DataError: too many rows were rejected; nothing is published.
            TargetError: staging does not hold what the run put there.
        """
        if rows_read and rejected / rows_read > max_rejected_ratio:
            raise DataError(
                f"{rejected} of {rows_read} source rows ({rejected / rows_read:.2%}) of the table "
                f"would be rejected, above the --max-rejected-ratio of {max_rejected_ratio:g}: nothing "
                f"was published; see {self.db}.{self.spec.rejected} WHERE run_id = "
                f"'{self.run_id}'."
            )
        check_counts(self.t, self.spec, self.expected)

    def targets(self) -> dict[str, Fingerprint]:
        """ClickHouse's fingerprints of the months whose content this run made anew (those
        carried forward from their previous record are not counted again)."""
        counted = sorted(
            p for p in set(self.book.months) - self.book.carried(self.previous) if p != NO_TIME
        )
        if not counted:
            return {}
        sql, params = ch_fingerprint_sql(
            self.t.t(self.spec.staging), [c.name for c in self.spec.columns], counted
        )
        return {
            str(p): Fingerprint.of(int(n), int(h))
            for p, n, h in self.t.rows(sql, params, what="fingerprint the months staged")
        }

    def replaced_and_dropped(self, target_parts: dict[str, int]) -> tuple[list[str], list[str]]:
        """The months the run swaps in, and those it removes."""
        staged = set(self.expected)
        changed = {p for p in self.book.months if p != NO_TIME}
        plan = plan_partitions(self.scope.window, set(target_parts), staged & changed)
        dropped = sorted(p for p in changed if p in target_parts and p not in staged)
        replaced = sorted((staged & changed) | set(plan.replace) & changed)
        return replaced, dropped
