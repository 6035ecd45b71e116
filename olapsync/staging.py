"""Filling the staging tables around the window's source rows: the users, and the target's
rows a run keeps without rereading them (edge rows outside the window, months cleaned of
orphans, months hard-linked as they are). `olapsync.importer` runs these steps in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from olapsync import statements
from olapsync.clickhouse import Target
from olapsync.errors import DataError, TargetError
from olapsync.failpoints import failpoint
from olapsync.source import SourceUrl, read_all
from olapsync.specs import USERS, TableSpec
from olapsync.validate import validate
from olapsync.window import Window, plan_partitions

# How a step reports: `progress(phase, message, rows=..., partition=...)`.
Progress = Callable[..., None]


@dataclass
class Tally:
    """What the run has done so far: its result, and the ledger's row even if it fails."""

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


def stage_users(
    target: Target, crm_url: SourceUrl, tally: Tally, *, allow_shrink: bool, progress: Progress
) -> pl.Series:
    """Load the CRM's users into `users_staging`; return their ids (the new parent set).

    Raises:
        DataError: a user row cannot be loaded, or the shrink guard refuses the new set.
        SourceError, TargetError: reading or loading failed.
    """
    t, r = target, tally
    progress("users", "reading users from CRM")
    batch = read_all(crm_url, USERS, what="read users")
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
    return ids


def copy_outside(
    target: Target,
    spec: TableSpec,
    window: Window,
    target_parts: dict[str, int],
    tally: Tally,
    *,
    progress: Progress,
) -> tuple[set[str], int]:
    """Copy into `spec`'s staging table the target's rows of edge partitions (touched by the
    window, not covered) that lie outside the window, and the partitions outside the window
    that hold orphans, without them; return those cleaned partitions and the rows copied."""
    t, r, w = target, tally, window
    assert spec.parent is not None
    assert spec.time_column is not None
    outside = statements.Outside(
        t.database, spec.name, spec.time_column, spec.parent[1], USERS.staging, w
    )
    # Orphans in partitions of the target outside the window (a full import replaces
    # every partition from the source, so it has none to clean).
    orphan_rows: dict[str, int] = {}
    if not w.is_full:
        orphan_rows = {str(p): int(n) for p, n in t.fetch(outside.orphans_per_partition())}
    edges = set(plan_partitions(w, set(target_parts), set()).edge)
    cleaned = {p for p in orphan_rows if not w.touches(p)}
    copied = 0
    for pid in sorted(edges | cleaned):
        edge = pid in edges
        n = int(t.fetch_scalar(outside.count_kept(pid, edge=edge)))
        if n:
            t.execute(outside.copy_kept(pid, edge=edge, into=spec.staging))
        copied += n
        if pid in cleaned:
            failpoint("during-orphan-cleanup")
        r.orphans_removed += orphan_rows.get(pid, 0)
        if edge:
            r.edge_rows_kept += n
        progress("stage", f"{n:,} rows kept outside the window", partition=pid)
    return cleaned, copied


def keep_partitions(
    target: Target,
    spec: TableSpec,
    window: Window,
    target_parts: dict[str, int],
    cleaned: set[str],
    *,
    progress: Progress,
) -> dict[str, int]:
    """Hard-link the target's partitions the run leaves alone into staging (no data is
    copied), so staging becomes the whole new table; return them with their row counts."""
    kept = {
        p: n for p, n in target_parts.items() if n and not window.touches(p) and p not in cleaned
    }
    for pid in sorted(kept):
        target.execute(statements.attach_partition(target.database, spec.staging, pid, spec.name))
    failpoint("after-partitions-kept")
    if kept:
        progress("stage", f"{len(kept)} partitions outside the window kept as they are")
    return kept
