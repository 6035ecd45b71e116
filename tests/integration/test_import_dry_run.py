"""`import --dry-run` against a real PostgreSQL and the real ClickHouse engine: its plan is
what the import then does, in the import's own terms: the partitions it replaces (none for
a row validation refuses), the events it skips and removes as orphans."""

from __future__ import annotations

from datetime import datetime

import pytest

from olapsync import import_olap_data
from olapsync.config import Config
from olapsync.generate import ORPHAN_EVENTS
from tests.support import Source

JAN, FEB = datetime(2026, 1, 1), datetime(2026, 2, 1)
ROW = "(%s, 2, 'arm', 'biceps', 100, 10, 1.0, %s, '2026-03-17 10:00:00')"


@pytest.mark.parametrize(
    ("event_time", "month"),
    [
        ("1969-07-20 20:17:00", "196907"),  # before 1970: DateTime cannot hold it
        ("2200-01-01 00:00:00", "220001"),  # after 2106-02-07 06:28:15
        ("2106-02-07 06:28:15.5", "210602"),  # past the last second, by half a second
    ],
    ids=["before-1970", "after-2106", "half-a-second-too-late"],
)
def test_a_plan_promises_no_partition_for_a_time_validation_refuses(
    config: Config, source: Source, event_time: str, month: str
) -> None:
    source.execute(f"INSERT INTO telemetry_events VALUES {ROW}", (900001, event_time))
    plan = import_olap_data(config=config, dry_run=True)
    assert month not in plan.partitions_to_replace
    assert month not in plan.source_rows_per_partition
    result = import_olap_data(config=config)
    assert plan.partitions_to_replace == result.partitions_replaced
    # The generated data plants two such rows (infinity, 1969) besides this one.
    assert plan.source_rows_unusable_time == 3


def test_the_last_second_clickhouse_holds_is_planned_and_loaded(
    config: Config, source: Source
) -> None:
    source.execute(f"INSERT INTO telemetry_events VALUES {ROW}", (900001, "2106-02-07 06:28:15"))
    plan = import_olap_data(config=config, dry_run=True)
    assert plan.source_rows_per_partition["210602"] == 1
    assert import_olap_data(config=config).partitions_replaced == plan.partitions_to_replace


# Each: what happens before the planned import (after a first full import, or not), and its
# window.
@pytest.mark.parametrize(
    ("first", "change", "window"),
    [
        # The generated data's own orphans: users the CRM never had.
        (False, None, (None, None)),
        # A user deleted: the window's rows are skipped, the rest of theirs removed.
        (True, "DELETE FROM users WHERE user_id = 9", (JAN, FEB)),
        # A user deleted whose row is also invalid: rejected, not skipped.
        (
            True,
            "DELETE FROM users WHERE user_id = 9; UPDATE telemetry_events SET "
            "signal_amplitude = 'NaN' WHERE id = (SELECT min(id) FROM telemetry_events "
            "WHERE user_id = 9 AND event_timestamp >= '2026-01-01' "
            "AND event_timestamp < '2026-02-01')",
            (JAN, FEB),
        ),
    ],
    ids=["never-in-the-crm", "user-deleted", "user-deleted-and-a-bad-row"],
)
def test_a_plan_counts_the_orphans_as_the_import_does(
    config: Config,
    source: Source,
    first: bool,
    change: str | None,
    window: tuple[datetime | None, datetime | None],
) -> None:
    if first:
        import_olap_data(config=config)
    for statement in (change or "").split("; "):
        if statement:
            source.execute(statement)
    plan = import_olap_data(*window, config=config, dry_run=True)
    result = import_olap_data(*window, config=config)
    assert plan.events_skipped_orphans == result.events_skipped_orphans > 0
    assert plan.orphans_removed == result.orphans_removed
    assert plan.partitions_to_replace == result.partitions_replaced
    if not first:
        assert plan.events_skipped_orphans == ORPHAN_EVENTS
    else:
        assert plan.orphans_removed > 0  # the user's events outside January
