"""The steps that build a run's staging tables besides the source stream (`olapsync.stream`):
the users, the rows of a window's edge months kept from the target, the months kept as they
are (hard-linked), rows appended to them, rows removed from them (orphans, repeated ids), and
the checks before anything is published.

Every step works on the staging tables only; the targets are read, never written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import polars as pl

from olapsync import statements, words
from olapsync.book import Book
from olapsync.clickhouse import Target
from olapsync.errors import DataError, TargetError
from olapsync.failpoints import failpoint
from olapsync.fingerprint import FP_COLUMN, WHOLE, Fingerprint, fingerprints_from_batch
from olapsync.pg import SourceUrl
from olapsync.source import read_all
from olapsync.specs import USERS, TableSpec
from olapsync.validate import validate
from olapsync.window import Window

log = logging.getLogger(__name__)
# How a step reports: `progress(phase, message, rows=..., partition=...)`.
Progress = Callable[..., None]
# ClickHouse refuses ATTACH PARTITION FROM a partition with unapplied patch parts.
SUPPORT_IS_DISABLED = 344


@dataclass
class Tally:
    """What the run has done so far: its result, and the ledger's row even if it fails."""

    users_loaded: int = 0
    users_before: int = 0
    events_loaded: int = 0
    events_rejected: int = 0
    events_skipped_orphans: int = 0
    orphans_removed: int = 0
    duplicates_rejected: int = 0
    edge_rows_kept: int = 0
    insert_retries: int = 0
    partitions_replaced: list[str] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)
    partitions_appended: list[str] = field(default_factory=list)
    partitions_cleaned: list[str] = field(default_factory=list)


def stage_users(
    target: Target, crm_url: SourceUrl, tally: Tally, *, allow_shrink: bool, progress: Progress
) -> tuple[pl.Series, Fingerprint]:
    """Load the CRM's users into `users_staging`; return their ids (the new parent set) and
    the source fingerprint of the users table.

    Raises:
        DataError: a user row cannot be loaded, or the shrink guard refuses the new set.
        SourceError, TargetError: reading or loading failed.
    """
    t, r = target, tally
    progress("users", "reading users from CRM")
    read = read_all(crm_url, USERS, what="read users", fingerprint=True)
    source = fingerprints_from_batch(read, None).get(WHOLE, Fingerprint.EMPTY)
    split = validate(read.drop_columns([FP_COLUMN]), USERS)
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
    if r.users_before and r.users_loaded < r.users_before / 2 and not allow_shrink:
        raise DataError(
            f"The CRM has {r.users_loaded} users, less than half of the {r.users_before} "
            "loaded now: check the source, or pass --allow-shrink if the drop is real."
        )
    t.execute(statements.truncate(t.database, USERS.staging))
    t.insert_arrow(USERS.staging, split.clean)
    staged = t.count(USERS.staging)
    if staged != r.users_loaded:
        raise TargetError(
            f"users_staging holds {staged} rows after loading {r.users_loaded}: "
            "nothing was published; rerun the import.",
            table=USERS.staging,
        )
    progress("users", f"{r.users_loaded} users staged", rows=r.users_loaded)
    # Through Polars: pyarrow's own to_numpy() imports pandas, which is slow to start.
    ids = pl.from_arrow(split.clean.column(USERS.key))
    assert isinstance(ids, pl.Series)
    return ids, source


def copy_edges(
    target: Target,
    spec: TableSpec,
    window: Window,
    edges: Iterable[str],
    tally: Tally,
    *,
    progress: Progress,
) -> dict[str, int]:
    """Copy into staging the target's rows of the window's edge months (touched, not
    covered) that lie outside the window and whose user is in the new users; return the rows
    copied per month. (Orphans of those months are counted by `remove_orphans`' query.)"""
    assert spec.parent is not None
    assert spec.time_column is not None
    outside = statements.Outside(
        target.database, spec.name, spec.time_column, spec.parent[1], USERS.staging, window
    )
    copied: dict[str, int] = {}
    edges = sorted(edges)
    if not edges:
        return copied
    gone = {str(p): int(n) for p, n in target.fetch(outside.orphans_per_partition())}
    for pid in edges:
        tally.orphans_removed += gone.get(pid, 0)
        n = int(target.fetch_scalar(outside.count_kept(pid, edge=True)))
        if n:
            target.execute(outside.copy_kept(pid, edge=True, into=spec.staging))
        copied[pid] = n
        tally.edge_rows_kept += n
        progress("stage", f"{words.count(n, 'row')} kept outside the window", partition=pid)
    return copied


def hard_link(
    target: Target,
    spec: TableSpec,
    months: Iterable[str],
    target_parts: dict[str, int],
    *,
    progress: Progress,
) -> dict[str, int]:
    """Put the target's `months` into staging as they are: hard-linked (`ATTACH PARTITION
    ... FROM`, no data copied), or, for a month with patch parts ClickHouse has not folded
    in yet (which it refuses to attach), copied with its deletes applied. Returns the rows
    each month must then hold in staging (`target_parts` counts the target's)."""
    expected, copied = {}, []
    for pid in sorted(months):
        try:
            target.execute(
                statements.attach_partition(target.database, spec.staging, pid, spec.name)
            )
            expected[pid] = target_parts[pid]
        except TargetError as exc:
            if exc.code != SUPPORT_IS_DISABLED:
                raise
            copied.append(pid)
    if copied:
        visible = target.fetch(statements.visible_rows(target.database, spec.name, copied))
        expected.update({str(p): int(n) for p, n in visible})
        for pid in copied:
            target.execute(statements.copy_partition(target.database, spec.staging, pid, spec.name))
        log.info("copied %s: deletes not yet merged into them", ", ".join(copied))
    failpoint("after-partitions-kept")
    if expected:
        progress("stage", f"{len(expected)} months kept as they are")
    return expected


@dataclass(frozen=True)
class Removed:
    """Rows taken out of staging, per month: how many, their fingerprint (ClickHouse's
    hash), and their users."""

    per_month: dict[str, tuple[Fingerprint, frozenset[int]]]

    @property
    def rows(self) -> int:
        return sum(fp.rows for fp, _ in self.per_month.values())


def remove_rows(
    target: Target,
    spec: TableSpec,
    condition: statements.Statement,
    *,
    patches: bool,
) -> Removed:
    """Delete from staging the rows `condition` selects (a `WHERE` clause with parameters),
    after counting them per month; a lightweight delete, written as patch parts where the
    server has them (`patches`). Returns what was removed."""
    assert spec.parent is not None
    found = target.fetch(
        statements.removed_per_partition(
            target.database, spec.staging, spec.parent[1], [c.name for c in spec.columns], condition
        )
    )
    removed = {
        str(pid): (Fingerprint(int(n), int(h)), frozenset(int(u) for u in users))
        for pid, n, h, users in found
    }
    if removed:
        target.execute(
            statements.delete_rows(target.database, spec.staging, condition, patches=patches)
        )
    return Removed(removed)


def account_removed(book: Book, removed: Removed, *, orphans: bool) -> None:
    """Move removed rows in the books: off `loaded`, onto `skipped` (orphans) or `rejected`
    (repeated ids). From a month the run kept (hard-linked), they are also taken off its
    target fingerprint; a month kept as it was becomes a cleaned one."""
    for pid, (fp, users) in removed.per_month.items():
        month = book.months.get(pid)
        if month is None:
            month = book.month(pid)
            month.action = "cleaned"
        if month.action in ("appended", "cleaned"):
            month.removed = month.removed + fp
        month.loaded -= fp.rows
        if orphans:
            month.skipped += fp.rows
            month.orphan_users.update(users)
        else:
            month.rejected += fp.rows


def check_counts(target: Target, spec: TableSpec, expected: dict[str, int]) -> dict[str, int]:
    """Staging must hold what the run put there, month by month, as `system.parts` counts
    rows (rows a delete masks still count there). Returns staging's rows per month.

    Raises:
        TargetError: a month differs; nothing was published.
    """
    staged = target.partitions(spec.staging)
    wrong = sorted(p for p in set(staged) | set(expected) if staged.get(p, 0) != expected.get(p, 0))
    if wrong:
        detail = ", ".join(f"{p}: {staged.get(p, 0)} not {expected.get(p, 0)}" for p in wrong[:5])
        raise TargetError(
            f"{spec.staging} does not hold what the run put there ({detail}): nothing was "
            "published; rerun the import.",
            table=spec.staging,
        )
    failpoint("after-staging-check")
    return staged
