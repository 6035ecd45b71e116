"""`sync` and `verify` against a real PostgreSQL and the real ClickHouse engine: each kind of
change (new rows, late rows, updates and deletes that leave `saved_ts` alone, a user deleted,
a partition altered behind olapsync's back) is caught by the right command and repaired to
exactly what a fresh full import of the source gives."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from olapsync import RunLockedError, import_olap_data, sync, verify
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.lock import RunLock
from tests.support import Source, checksums, users_checksum

NEW_ROWS = """
INSERT INTO telemetry_events
SELECT 100000 + g, 1 + g %% 40, 'hand', 'biceps', 120, 300, 1.5,
       %(month)s::timestamp + g * interval '1 hour', now() AT TIME ZONE 'UTC'
FROM generate_series(1, %(n)s) AS g
"""


def state(ch: Target) -> tuple[dict[str, tuple[int, int]], tuple[int, int]]:
    return checksums(ch), users_checksum(ch)


def add_rows(source: Source, month: str, n: int, *, first: int = 100000) -> None:
    source.execute(
        NEW_ROWS.replace("100000", str(first)), {"month": f"{month[:4]}-{month[4:]}-02", "n": n}
    )


def test_the_first_sync_is_a_full_import(config: Config, ch: Target, reference: Any) -> None:
    result = sync(config=config)
    assert result.kind == "sync"
    assert result.watermark is not None
    assert state(ch) == reference()


def test_new_rows_are_appended_without_reading_their_month(
    config: Config, source: Source, ch: Target, reference: Any
) -> None:
    sync(config=config)
    add_rows(source, "202603", 25)
    result = sync(config=config)
    assert result.months == {"202603": ["new rows"]}
    assert result.partitions_appended == ["202603"]
    assert result.rows_per_partition == {}  # nothing read again but the new rows
    assert state(ch) == reference()
    assert verify(config).ok


def test_late_rows_land_in_their_old_month(
    config: Config, source: Source, ch: Target, reference: Any
) -> None:
    sync(config=config)
    add_rows(source, "202510", 7)
    result = sync(config=config)
    assert result.months == {"202510": ["late rows"]}
    assert state(ch) == reference()
    assert verify(config).ok


def test_a_sync_right_after_a_sync_rebuilds_nothing(config: Config, ch: Target) -> None:
    sync(config=config)
    before = state(ch)
    result = sync(config=config, lag="0")
    assert result.months == {}
    assert result.partitions_replaced == []
    assert state(ch) == before


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE telemetry_events SET signal_amplitude = signal_amplitude + 1 WHERE id % 97 = 0 "
        "AND event_timestamp >= '2025-11-01' AND event_timestamp < '2025-12-01'",
        "DELETE FROM telemetry_events WHERE id % 89 = 0 "
        "AND event_timestamp >= '2025-11-01' AND event_timestamp < '2025-12-01'",
    ],
    ids=["updated", "deleted"],
)
def test_changes_that_leave_saved_ts_alone_take_verify(
    config: Config, source: Source, ch: Target, reference: Any, change: str
) -> None:
    sync(config=config)
    source.execute(change)
    assert sync(config=config).months == {}  # invisible to the watermark
    report = verify(config)
    assert [(c.partition, c.status) for c in report.drifted] == [("202511", "changed in source")]
    result = sync(config=config, verify=True)
    assert result.months == {"202511": ["changed"]}
    assert state(ch) == reference()
    assert verify(config).ok


def test_verify_keeps_the_append_path_for_months_that_only_gained_rows(
    config: Config, source: Source, ch: Target, reference: Any
) -> None:
    # New and late rows change their months' source fingerprints by exactly the rows the
    # sync appends: `--verify` appends them, and rebuilds only the month changed silently.
    sync(config=config)
    add_rows(source, "202603", 25)
    add_rows(source, "202510", 7, first=200000)
    source.execute(
        "UPDATE telemetry_events SET signal_frequency = signal_frequency + 1 WHERE id % 53 = 0 "
        "AND event_timestamp >= '2025-11-01' AND event_timestamp < '2025-12-01'"
    )
    result = sync(config=config, verify=True)
    assert result.months == {
        "202510": ["late rows"],
        "202511": ["changed"],
        "202603": ["new rows"],
    }
    assert result.partitions_appended == ["202510", "202603"]
    assert sorted(result.rows_per_partition) == ["202511"]  # the only month read again
    assert state(ch) == reference()
    assert verify(config).ok


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE telemetry_events SET muscle_group = 'quadriceps' WHERE id % 61 = 0 "
        "AND event_timestamp >= '2026-03-01' AND event_timestamp < '2026-04-01'",
        "DELETE FROM telemetry_events WHERE id % 67 = 0 "
        "AND event_timestamp >= '2026-03-01' AND event_timestamp < '2026-04-01'",
    ],
    ids=["updated", "deleted"],
)
def test_verify_rebuilds_a_month_that_gained_rows_and_changed_silently(
    config: Config, source: Source, ch: Target, reference: Any, change: str
) -> None:
    # The same month gets new rows and a change that leaves saved_ts alone: the appended
    # rows do not explain its fingerprint, so `--verify` reads the month again.
    sync(config=config)
    add_rows(source, "202603", 25)
    source.execute(change)
    result = sync(config=config, verify=True)
    assert result.months == {"202603": ["changed"]}
    assert result.partitions_appended == []
    assert state(ch) == reference()
    assert verify(config).ok


@pytest.mark.parametrize("verify_too", [False, True], ids=["sync", "sync --verify"])
@pytest.mark.parametrize(
    "bad",
    [
        "(400001, 3, 'foot', 'calf', 77, 55, 2.5, '2026-03-20 10:00:00'",  # no such type
        "(400002, 3, 'arm', 'calf', -5, 55, 2.5, '2025-10-20 10:00:00'",  # late, bad frequency
        "(400003, 3, 'arm', 'calf', 77, 55, 2.5, NULL",  # no event time
    ],
    ids=["bad-type", "late-bad-value", "no-event-time"],
)
def test_one_bad_row_among_a_few_new_ones_is_judged_against_its_month(
    config: Config, source: Source, ch: Target, reference: Any, bad: str, verify_too: bool
) -> None:
    # The reject ratio is over the table as the run leaves it, as a full import judges it:
    # 1 bad row among 26 new ones is not 3.8% of anything that matters.
    sync(config=config)
    add_rows(source, "202603", 25)
    source.execute(f"INSERT INTO telemetry_events VALUES {bad}, now() AT TIME ZONE 'UTC')")
    result = sync(config=config, verify=verify_too)
    assert result.events_rejected == 1
    assert "202603" in result.partitions_appended
    assert state(ch) == reference()
    assert verify(config).ok


def test_a_deleted_user_takes_their_events_along(
    config: Config, source: Source, ch: Target, reference: Any
) -> None:
    sync(config=config)
    source.execute("DELETE FROM users WHERE user_id = 9")
    result = sync(config=config)
    assert result.orphans_removed > 0
    assert ch.scalar(f"SELECT count() FROM {ch.t('telemetry_events')} WHERE user_id = 9") == 0
    assert state(ch) == reference()
    assert verify(config).ok


def test_a_user_who_comes_back_is_drift_until_a_sync_loads_their_events(
    config: Config, source: Source, ch: Target, reference: Any
) -> None:
    sync(config=config)
    source.execute("CREATE TABLE gone AS SELECT * FROM users WHERE user_id = 9")
    source.execute("DELETE FROM users WHERE user_id = 9")
    sync(config=config)
    source.execute("INSERT INTO users SELECT * FROM gone")
    # A window import reloads the users, and the events of one month only.
    import_olap_data(datetime(2026, 1, 1), datetime(2026, 2, 1), config=config)
    drifted = {c.partition: (c.status, c.detail) for c in verify(config).drifted}
    assert len(drifted) > 2
    assert "202601" not in drifted
    assert set(drifted.values()) == {
        ("changed in source", "users back whose rows were left out: 9")
    }
    assert verify(config, repair=True).repaired is not None
    assert state(ch) == reference()
    assert verify(config).ok


@pytest.mark.parametrize(
    ("start", "end", "edges"),
    [
        (datetime(2025, 10, 15), datetime(2025, 10, 20), ["202510"]),  # inside one month
        (datetime(2025, 10, 15), datetime(2025, 12, 1), ["202510"]),  # its first month in part
        (datetime(2025, 12, 1), datetime(2026, 1, 10, 12), ["202601"]),  # its last in part
    ],
)
def test_a_month_a_window_loaded_in_part_is_unverified_until_a_sync_rebuilds_it(
    config: Config,
    source: Source,
    ch: Target,
    reference: Any,
    start: datetime,
    end: datetime,
    edges: list[str],
) -> None:
    sync(config=config)
    # A silent change outside the window, in an edge month: the window keeps the old row.
    source.execute(
        "UPDATE telemetry_events SET signal_duration = 4321 WHERE id = (SELECT min(id) FROM "
        "telemetry_events WHERE event_timestamp >= %(lo)s AND event_timestamp < %(start)s)",
        {"lo": start.replace(day=1), "start": start},
    )
    import_olap_data(start, end, config=config)
    drifted = {c.partition: c.status for c in verify(config).drifted}
    assert drifted == dict.fromkeys(edges, "unverified")
    synced = sync(config=config, verify=True)
    assert {m: r for m, r in synced.months.items() if m in edges} == {
        m: ["unverified"] for m in edges
    }
    assert state(ch) == reference()
    assert verify(config).ok


def test_a_partition_changed_behind_our_back_is_found_and_repaired(
    config: Config, ch: Target, reference: Any
) -> None:
    sync(config=config)
    ch.command(
        f"INSERT INTO {ch.t('telemetry_events')} SELECT * FROM {ch.t('telemetry_events')} "
        "WHERE _partition_id = '202512' LIMIT 3"
    )
    report = verify(config)
    assert [(c.partition, c.status) for c in report.drifted] == [
        ("202512", "changed in ClickHouse")
    ]
    repaired = verify(config, repair=True)
    assert repaired.repaired is not None
    assert state(ch) == reference()
    assert verify(config).ok


def test_a_held_lock_stops_sync_and_verify(config: Config, ch: Target) -> None:
    sync(config=config)
    with RunLock(ch, "someone-else"):
        with pytest.raises(RunLockedError):
            sync(config=config)
        with pytest.raises(RunLockedError):
            verify(config)


def test_a_dry_run_names_each_month_and_why_and_changes_nothing(
    config: Config, source: Source, ch: Target
) -> None:
    assert sync(config=config, dry_run=True).full  # no target yet: a full import
    sync(config=config)
    before = state(ch), ch.tables()
    add_rows(source, "202603", 5)
    add_rows(source, "202510", 3, first=200000)
    source.execute("UPDATE telemetry_events SET user_id = 2 WHERE id = 11")  # same saved_ts
    source.execute("UPDATE telemetry_events SET saved_ts = now() WHERE id = 12")  # a re-save
    plan = sync(config=config, dry_run=True)
    assert not plan.full
    assert plan.access == "scan"  # the generated table has no index on saved_ts
    months = {m: (v["action"], v["reasons"]) for m, v in plan.months.items()}
    month_12 = source.execute(
        "SELECT to_char(event_timestamp, 'YYYYMM') FROM telemetry_events WHERE id = 12"
    )[0][0]
    assert months.pop("202603") == ("append", ["new rows"])
    assert months.pop("202510") == ("append", ["late rows"])
    assert months == {month_12: ("rebuild", ["changed"])}
    assert (state(ch), ch.tables()) == before
    source.execute("CREATE INDEX ON telemetry_events (saved_ts)")
    assert sync(config=config, dry_run=True).access == "index"
