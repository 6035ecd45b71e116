"""`sync --dry-run` against a real PostgreSQL and the real ClickHouse engine: it lists what
the sync then does, as the sync reports it: each month once, with the same action, reasons
and rows, the events of users gone included."""

from __future__ import annotations

import pytest

from olapsync import sync
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.results import ImportResult, SyncPlan
from tests.integration.test_sync import add_rows
from tests.support import Source

# Users 1..40 own the generated events (and NEW_ROWS'); user 9 has rows in every month.
GONE = "DELETE FROM users WHERE user_id = 9"
# A re-save that moves a row of November 2025 to another user: its month is read again.
RESAVED = (
    "UPDATE telemetry_events SET saved_ts = now() AT TIME ZONE 'UTC', user_id = 2 WHERE id = ("
    "SELECT min(id) FROM telemetry_events WHERE event_timestamp >= '2025-11-01' "
    "AND event_timestamp < '2025-12-01' AND user_id = 3)"
)


def agrees(plan: SyncPlan, result: ImportResult) -> None:
    """The plan is what the run did: months, reasons, actions and rows."""
    assert {m: v["reasons"] for m, v in plan.months.items()} == result.months
    done = {
        "rebuild": result.partitions_replaced,
        "append": result.partitions_appended,
        "clean": result.partitions_cleaned,
    }
    for action, months in done.items():
        assert sorted(m for m, v in plan.months.items() if v["action"] == action) == months
    appended = {m: v["rows"] for m, v in plan.months.items() if v["action"] == "append"}
    assert appended == result.rows_appended
    assert {m: v["removed"] for m, v in plan.months.items() if v["removed"]} == result.rows_removed
    assert plan.orphans_removed == result.orphans_removed


@pytest.mark.parametrize(
    ("new_rows", "change", "expected"),
    [
        (False, None, {"202510": ("clean", ["orphans"])}),
        (True, None, {"202603": ("append", ["new rows", "orphans"])}),
        (False, RESAVED, {"202511": ("rebuild", ["changed"])}),
    ],
    ids=["user-gone", "user-gone-and-new-rows", "user-gone-and-a-month-rebuilt"],
)
def test_a_dry_run_lists_the_events_of_users_gone_as_the_sync_removes_them(
    config: Config,
    source: Source,
    ch: Target,
    new_rows: bool,
    change: str | None,
    expected: dict[str, tuple[str, list[str]]],
) -> None:
    sync(config=config)
    source.execute(GONE)
    if new_rows:  # one of them is user 9's: skipped, not appended
        add_rows(source, "202603", 40)
    if change:
        source.execute(change)
    plan = sync(config=config, dry_run=True)
    for month, (action, reasons) in expected.items():
        assert (plan.months[month]["action"], plan.months[month]["reasons"]) == (action, reasons)
    # Every month the run keeps loses user 9's events; a month read again just skips them.
    cleaned = {m for m, v in plan.months.items() if v["removed"]}
    assert cleaned == set(ch.partitions("telemetry_events")) - {
        m for m, v in plan.months.items() if v["action"] == "rebuild"
    }
    assert plan.orphans_removed == sum(v["removed"] for v in plan.months.values()) > 0

    result = sync(config=config)
    agrees(plan, result)
    assert not set(result.partitions_replaced) & set(result.partitions_appended)
    after = sync(config=config, dry_run=True)
    assert after.orphans_removed == 0
