"""What the notebook API returns: frozen records, each with `to_dict()` for JSON.

import_olap_data(...)            -> ImportResult
import_olap_data(..., dry_run=True) or plan_import(...)  -> ImportPlan
status(...)                      -> Status, whose `runs` are RunRecords
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from olapsync.window import Window

RunStatus = Literal["running", "publishing", "success", "failed", "interrupted"]
RunKind = Literal["import", "sync"]


def _window_dict(window: Window) -> dict[str, str | None]:
    return {
        "start": None if window.start is None else window.start.isoformat(),
        "end": None if window.end is None else window.end.isoformat(),
    }


@dataclass(frozen=True, kw_only=True)
class ImportResult:
    """What a successful run did.

    run_id: the run's id, as in the ledger (`olapsync_runs`) and the quarantine.
    window: the event times the run replaced, `[start, end)` in UTC.
    users_loaded / users_before: users in the new and in the previous users table.
    kind: "import" or "sync".
    events_loaded / events_rejected: rows read and loaded, and quarantined with a reason
        (repeated ids included: `duplicates_rejected` counts every copy).
    events_skipped_orphans: rows read and not loaded because their user is not in the new
        users set. orphans_removed: rows the run kept that it removed for the same reason.
    edge_rows_kept: rows of partly covered months, outside the window, carried over.
    insert_retries: staging inserts retried (with the same deduplication token).
    partitions_replaced / partitions_dropped: partition ids (`YYYYMM`) read again from the
        source and swapped in, or removed; partitions_appended: those a sync added new rows
        to without reading them again; partitions_cleaned: those kept without reading them
        again, with rows removed (events of users gone, copies of repeated ids). Each month
        is in one of the four, by what was done to it.
    months: for a sync, each month it changed and why ("new rows", "late rows", "changed",
        "missing", "users returned", "orphans", "repeated ids", ...).
    watermark: where the next sync starts reading (`saved_ts`, UTC), None when the run did
        not move it (a window import).
    rows_per_partition: rows read and loaded per partition id.
    rows_appended / rows_removed: per partition id, rows appended to a month kept, and rows
        removed from one (events of users gone, copies of repeated ids).
    seconds: the run's wall time.
    """

    run_id: str
    status: Literal["success"] = "success"
    kind: RunKind = "import"
    window: Window
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
    months: dict[str, list[str]] = field(default_factory=dict)
    watermark: datetime | None = None
    rows_per_partition: dict[str, int] = field(default_factory=dict)
    rows_appended: dict[str, int] = field(default_factory=dict)
    rows_removed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values; the window and watermark as ISO-8601 strings, seconds to
        milliseconds."""
        out = asdict(self)
        out["window"] = _window_dict(self.window)
        out["watermark"] = None if self.watermark is None else self.watermark.isoformat()
        out["seconds"] = round(self.seconds, 3)
        return out


@dataclass(frozen=True, kw_only=True)
class ImportPlan:
    """What an import would do, worked out without changing anything.

    source_rows_per_partition: the window's source rows per partition id.
    source_rows_unusable_time: source rows without a usable event time, in no partition:
        NULL, ±infinity, or outside ClickHouse's DateTime range (the run rejects them).
    partitions_to_replace / partitions_to_drop: what the run would swap in or remove.
    edge_partitions: partly covered months, whose rows outside the window would be kept.
    months_reread: months read whole besides the window, with why ("repeated ids": they
        share a repeated id with a month the window rereads, `olapsync.repeats`).
    users_source / users_current: users in the CRM now, and in ClickHouse now.
    users_shrink_blocked: the shrink guard would stop the run (see `allow_shrink`).
    events_skipped_orphans: the window's source rows whose user is not in the CRM (and
        that are valid otherwise), which the run skips: its `events_skipped_orphans`.
    orphans_removed: events in ClickHouse outside the window whose user is no longer in the
        CRM, which the run removes: its `orphans_removed`.
    tables_to_create: tables the run would create first.
    """

    status: Literal["dry-run"] = "dry-run"
    window: Window
    source_rows_per_partition: dict[str, int]
    source_rows_unusable_time: int
    partitions_to_replace: list[str]
    partitions_to_drop: list[str]
    edge_partitions: list[str]
    users_source: int
    users_current: int
    users_shrink_blocked: bool
    events_skipped_orphans: int
    orphans_removed: int
    tables_to_create: list[str] = field(default_factory=list)
    months_reread: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values; the window as ISO-8601 strings."""
        out = asdict(self)
        out["window"] = _window_dict(self.window)
        return out


@dataclass(frozen=True, kw_only=True)
class SyncPlan:
    """What a sync would do, worked out in a snapshot of the source without publishing
    anything (`olapsync.sync(dry_run=True)`, `olapsync sync --dry-run`).

    full: there is no watermark yet, so the sync would be a full import.
    since: it would read the rows saved from this time on (the watermark minus the lag,
        UTC); access: whether PostgreSQL finds them through an index or scans the table.
    candidates: rows saved since then.
    months: each month it would change, as the run's `ImportResult.months` would name it:
        {"action": "rebuild", "append" or "clean" (rows of users gone removed, nothing read),
        "reasons": [...], "rows": new rows to append, "removed": events of users gone to
        remove from it}.
    orphans_removed: events of users gone from the CRM it would remove from the months it
        keeps (the run's `orphans_removed`).
    users_source / users_current: users in the CRM now, and in ClickHouse now.
    """

    status: Literal["dry-run"] = "dry-run"
    full: bool
    since: datetime | None = None
    access: Literal["index", "scan"] | None = None
    candidates: int = 0
    months: dict[str, dict[str, Any]] = field(default_factory=dict)
    orphans_removed: int = 0
    users_source: int = 0
    users_current: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values; times as ISO-8601 strings."""
        out = asdict(self)
        out["since"] = None if self.since is None else self.since.isoformat()
        return out


@dataclass(frozen=True)
class RunRecord:
    """One run as the ledger (`olapsync_runs`) records it.

    status: how it ended: success, failed, interrupted (stopped without finishing, found by
        the next run), or running (it is, or it stopped and no run has come since).
    started_at: when it started (UTC); seconds: how long it ran.
    error: why it failed (passwords redacted), "" for a success.
    kind: "import" or "sync".
    """

    run_id: str
    status: RunStatus
    started_at: datetime
    seconds: float
    users_loaded: int
    events_loaded: int
    events_rejected: int
    partitions_replaced: list[str]
    error: str
    kind: RunKind = "import"


@dataclass(frozen=True)
class Status:
    """What a target holds now.

    clickhouse_url: the target, password redacted; database: its database.
    tables: rows per table; partitions: rows per partition id of the events table.
    runs: the latest runs, newest first.
    """

    clickhouse_url: str
    database: str
    tables: dict[str, int]
    partitions: dict[str, int]
    runs: list[RunRecord]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (datetimes stay datetimes: `json.dumps(default=str)`)."""
        return asdict(self)
