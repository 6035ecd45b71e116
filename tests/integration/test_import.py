"""The import against a real PostgreSQL and the real ClickHouse engine (chDB)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from olapsync import (
    DataError,
    ImportPlan,
    ImportResult,
    TargetBusyError,
    import_olap_data,
    init,
)
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.generate import BAD_ROWS, ORPHAN_EVENTS
from olapsync.lock import RunLock
from tests.support import (
    SMALL_EVENTS,
    SMALL_USERS,
    Source,
    assert_same,
    checksums,
    source_partitions,
    target_partitions,
    users_checksum,
)

JAN, FEB, MAR = datetime(2026, 1, 1), datetime(2026, 2, 1), datetime(2026, 3, 1)


def run(
    config: Config, start: datetime | None = None, end: datetime | None = None, **kw: Any
) -> ImportResult:
    return import_olap_data(start, end, config=config, **kw)


def test_full_import_equals_the_source(config: Config, source: Source, ch: Target) -> None:
    result = run(config)

    assert result.users_loaded == SMALL_USERS
    assert result.events_loaded == SMALL_EVENTS
    assert result.events_rejected == len(BAD_ROWS)
    assert result.events_skipped_orphans == ORPHAN_EVENTS
    assert_same(target_partitions(ch), source_partitions(source))
    assert result.partitions_replaced == sorted(source_partitions(source))
    assert ch.count("users") == SMALL_USERS
    # Users are a Join table: joinGet answers from the new set.
    name = ch.scalar(f"SELECT joinGet({ch.t('users')!r}, 'name', toInt32(7))".replace("`", ""))
    assert name == source.execute("SELECT name FROM users WHERE user_id = 7")[0][0]
    ledger = ch.rows(
        f"SELECT argMax(status, finished_at), argMax(events_loaded, finished_at) "
        f"FROM {ch.t('olapsync_runs')} GROUP BY run_id"
    )
    assert ledger == [("success", SMALL_EVENTS)]


def test_timestamps_are_utc_and_whole_seconds(config: Config, source: Source, ch: Target) -> None:
    run(config)
    want = source.execute(
        "SELECT extract(epoch FROM event_timestamp)::bigint, "
        "floor(extract(epoch FROM saved_ts))::bigint FROM telemetry_events WHERE id = 1234"
    )[0]
    got = ch.rows(
        "SELECT toUnixTimestamp(event_timestamp), toUnixTimestamp(saved_ts) "
        f"FROM {ch.t('telemetry_events')} WHERE id = 1234"
    )[0]
    assert tuple(got) == want


def test_window_replaces_exactly_start_to_end(config: Config, source: Source, ch: Target) -> None:
    run(config)
    before = target_partitions(ch)
    untouched = checksums(ch)
    # Change rows inside and outside the window; add events exactly at start and at end.
    source.execute("UPDATE telemetry_events SET signal_duration = signal_duration + 1")
    source.execute(
        "INSERT INTO telemetry_events VALUES "
        "(900001, 1, 'arm', 'biceps', 100, 10, 1.0, '2026-01-15 00:00:00', '2026-01-15 00:00:00'),"
        "(900002, 1, 'arm', 'biceps', 100, 10, 1.0, '2026-02-01 00:00:00', '2026-02-01 00:00:00'),"
        "(900003, 1, 'arm', 'biceps', 100, 10, 1.0, '2026-01-14 23:59:59', '2026-01-15 00:00:00')"
    )
    start = datetime(2026, 1, 15)
    result = run(config, start, FEB)

    assert result.partitions_replaced == ["202601"]
    after = checksums(ch)
    for pid in before.keys() - {"202601"}:
        # Exact checksums: float sums could differ in the last bit with the merge order.
        assert after[pid] == untouched[pid], f"{pid} outside the window changed"
    ids = {r[0] for r in ch.rows(f"SELECT id FROM {ch.t('telemetry_events')} WHERE id > 900000")}
    assert ids == {900001}, "start is inside, end is outside, before start is not reloaded"
    # Inside the window the new durations, before it (same month) the old ones.
    inside = source_partitions(
        source, "event_timestamp >= '2026-01-15' AND event_timestamp < '2026-02-01'"
    )
    old_part = ch.rows(
        f"SELECT count(), sum(signal_duration) FROM {ch.t('telemetry_events')} "
        "WHERE event_timestamp >= '2026-01-15 00:00:00' AND event_timestamp < '2026-02-01 00:00:00'"
    )[0]
    assert (int(old_part[0]), int(old_part[1])) == inside["202601"][:2]
    assert result.edge_rows_kept == before["202601"][0] - (inside["202601"][0] - 1)


def test_rerunning_a_window_changes_nothing(config: Config, ch: Target) -> None:
    run(config)
    first = checksums(ch)
    run(config, JAN, MAR)
    second = checksums(ch)
    run(config, JAN, MAR)
    assert checksums(ch) == second == first


def test_orphans_are_gone_from_every_partition(config: Config, source: Source, ch: Target) -> None:
    run(config)
    gone = [3, 5, 8]
    old_events = ch.scalar(
        f"SELECT count() FROM {ch.t('telemetry_events')} WHERE user_id IN (3, 5, 8)"
    )
    in_window = ch.scalar(
        f"SELECT count() FROM {ch.t('telemetry_events')} WHERE user_id IN (3, 5, 8) "
        "AND event_timestamp >= '2026-01-01 00:00:00' AND event_timestamp < '2026-02-01 00:00:00'"
    )
    assert old_events > in_window > 0
    source.execute("DELETE FROM users WHERE user_id = ANY(%s)", (gone,))

    result = run(config, JAN, FEB)

    left = ch.scalar(f"SELECT count() FROM {ch.t('telemetry_events')} WHERE user_id IN (3, 5, 8)")
    assert left == 0
    assert result.orphans_removed == old_events - in_window
    assert result.events_skipped_orphans == in_window
    assert_same(target_partitions(ch), source_partitions(source))


def test_each_bad_row_kind_is_quarantined_with_a_reason(
    config: Config, source: Source, ch: Target
) -> None:
    extra = {
        910001: (
            "NULL prosthesis_type",
            "1, NULL, 'biceps', 100, 10, 1.0, '2025-10-01', '2025-10-01'",
        ),
        910002: ("NULL muscle_group", "1, 'arm', NULL, 100, 10, 1.0, '2025-10-01', '2025-10-01'"),
        910003: (
            "NULL signal_frequency",
            "1, 'arm', 'b', NULL, 10, 1.0, '2025-10-01', '2025-10-01'",
        ),
        910004: (
            "NULL signal_duration",
            "1, 'arm', 'b', 100, NULL, 1.0, '2025-10-01', '2025-10-01'",
        ),
        910005: (
            "NULL signal_amplitude",
            "1, 'arm', 'b', 100, 10, NULL, '2025-10-01', '2025-10-01'",
        ),
        910006: ("NULL event_timestamp", "1, 'arm', 'b', 100, 10, 1.0, NULL, '2025-10-01'"),
        910007: ("NULL saved_ts", "1, 'arm', 'b', 100, 10, 1.0, '2025-10-01', NULL"),
        910008: (
            "+Infinity amplitude",
            "1, 'arm', 'b', 100, 10, 'Infinity', '2025-10-01', '2025-10-01'",
        ),
        910009: (
            "-Infinity amplitude",
            "1, 'arm', 'b', 100, 10, '-Infinity', '2025-10-01', '2025-10-01'",
        ),
        910010: ("after 2106", "1, 'arm', 'b', 100, 10, 1.0, '2200-01-01', '2025-10-01'"),
        910011: ("-infinity saved_ts", "1, 'arm', 'b', 100, 10, 1.0, '2025-10-01', '-infinity'"),
    }
    for key, (_, values) in extra.items():
        source.execute(f"INSERT INTO telemetry_events VALUES ({key}, {values})")

    result = run(config, max_rejected_ratio=0.05)

    assert result.events_rejected == len(BAD_ROWS) + len(extra)
    reasons = dict(
        ch.rows(f"SELECT id, reason FROM {ch.t('telemetry_events_rejected')} WHERE id > 900000")
    )
    expected = {
        910001: "prosthesis_type is NULL",
        910002: "muscle_group is NULL",
        910003: "signal_frequency is NULL",
        910004: "signal_duration is NULL",
        910005: "signal_amplitude is NULL",
        910006: "event_timestamp is NULL",
        910007: "saved_ts is NULL",
        910008: "signal_amplitude inf is not a finite number",
        910009: "signal_amplitude -inf is not a finite number",
        910010: "event_timestamp 2200-01-01 00:00:00 is outside",
        910011: "saved_ts is '-infinity'",
    }
    for key, text in expected.items():
        assert text in reasons[key], (key, reasons[key])
    planted = dict(
        ch.rows(
            f"SELECT id, reason FROM {ch.t('telemetry_events_rejected')} WHERE id > {SMALL_EVENTS}"
            " AND id < 900000"
        )
    )
    wanted = [
        "user_id is NULL",
        "prosthesis_type 'foot'",
        "signal_amplitude NaN",
        "signal_duration -5 is negative",
        "signal_frequency 0 is not > 0",
        "muscle_group is empty",
        "event_timestamp is 'infinity'",
        "event_timestamp 1969-07-20 20:17:00 is outside",
    ]
    for text in wanted:
        assert any(text in r for r in planted.values()), (text, planted)
    row = json.loads(
        ch.scalar(f"SELECT source_row FROM {ch.t('telemetry_events_rejected')} WHERE id = 910008")
    )
    assert row["signal_amplitude"] == "inf"
    assert row["run_id" if False else "id"] == 910008
    run_ids = {r[0] for r in ch.rows(f"SELECT run_id FROM {ch.t('telemetry_events_rejected')}")}
    assert run_ids == {result.run_id}


def test_too_many_rejects_publish_nothing(config: Config, source: Source, ch: Target) -> None:
    run(config)
    before = checksums(ch), users_checksum(ch)
    source.execute(
        "UPDATE telemetry_events SET prosthesis_type = 'foot' "
        "WHERE id % 10 = 0 AND event_timestamp >= '2026-01-01' AND event_timestamp < '2026-02-01'"
    )
    source.execute("UPDATE users SET name = name || ' (new)'")
    with pytest.raises(DataError, match="max-rejected-ratio"):
        run(config, JAN, FEB)
    assert (checksums(ch), users_checksum(ch)) == before
    assert (
        ch.scalar(
            f"SELECT argMax(status, finished_at) FROM {ch.t('olapsync_runs')} "
            "GROUP BY run_id ORDER BY min(started_at) DESC LIMIT 1"
        )
        == "failed"
    )


def test_dry_run_changes_nothing(config: Config, source: Source, ch: Target) -> None:
    fresh = import_olap_data(config=config.with_(database=config.database + "_x"), dry_run=True)
    assert "telemetry_events" in fresh.tables_to_create
    assert (
        ch.scalar(
            "SELECT count() FROM system.databases WHERE name = {d:String}",
            {"d": config.database + "_x"},
        )
        == 0
    )

    run(config)
    before = {t: ch.count(t) for t in ch.tables()}, checksums(ch)
    source.execute("DELETE FROM users WHERE user_id = 2")
    plan: ImportPlan = import_olap_data(JAN, FEB, config=config, dry_run=True)
    assert plan.partitions_to_replace == ["202601"]
    assert plan.source_rows_per_partition == {
        "202601": source.execute(
            "SELECT count(*) FROM telemetry_events "
            "WHERE event_timestamp >= '2026-01-01' AND event_timestamp < '2026-02-01'"
        )[0][0]
    }
    assert plan.users_source == SMALL_USERS - 1
    assert plan.users_current == SMALL_USERS
    outside = (
        "user_id = 2 AND NOT (event_timestamp >= '2026-01-01' AND event_timestamp < '2026-02-01')"
    )
    assert (
        plan.orphans_removed
        == ch.scalar(f"SELECT count() FROM {ch.t('telemetry_events')} WHERE {outside}")
        > 0
    )
    assert ({t: ch.count(t) for t in ch.tables()}, checksums(ch)) == before


def test_shrink_guard(config: Config, source: Source, ch: Target) -> None:
    run(config)
    source.execute("DELETE FROM users WHERE user_id > 10")
    with pytest.raises(DataError, match="less than half"):
        run(config)
    assert ch.count("users") == SMALL_USERS
    result = run(config, allow_shrink=True)
    assert result.users_loaded == 10
    assert ch.scalar(f"SELECT max(user_id) FROM {ch.t('telemetry_events')}") <= 10


def test_a_bad_user_fails_the_run(config: Config, source: Source, ch: Target) -> None:
    run(config)
    before = checksums(ch), users_checksum(ch)
    source.execute("UPDATE users SET registration_ts = '1900-01-01' WHERE user_id = 4")
    with pytest.raises(DataError, match=r"user_id 4: registration_ts 1900-01-01"):
        run(config)
    assert (checksums(ch), users_checksum(ch)) == before


def test_a_second_concurrent_run_fails_fast(config: Config, ch: Target) -> None:
    run(config)
    with RunLock(ch, "other-run"), pytest.raises(TargetBusyError, match="other-run"):
        run(config)
    # Released: the next run goes through.
    assert run(config).status == "success"


def test_a_full_import_drops_partitions_the_source_no_longer_has(
    config: Config, source: Source, ch: Target
) -> None:
    run(config)
    source.execute("DELETE FROM telemetry_events WHERE event_timestamp < '2025-10-01'")
    result = run(config)
    assert result.partitions_dropped == ["202509"]
    assert "202509" not in ch.partitions("telemetry_events")
    assert_same(target_partitions(ch), source_partitions(source))


def test_window_timestamps_with_zones_mean_the_same_instant(config: Config, ch: Target) -> None:
    run(config)
    before = checksums(ch)
    # 2026-01-01T03:00+03:00 is midnight UTC: the same window as JAN..FEB.
    from datetime import timedelta, timezone

    msk = timezone(timedelta(hours=3))
    result = run(config, datetime(2026, 1, 1, 3, tzinfo=msk), datetime(2026, 2, 1, tzinfo=UTC))
    assert result.partitions_replaced == ["202601"]
    assert result.edge_rows_kept == 0
    assert checksums(ch) == before


def test_a_run_swaps_the_whole_table_and_leaves_the_old_one_in_staging(
    config: Config, source: Source, ch: Target
) -> None:
    run(config)
    first = checksums(ch)
    source.execute("UPDATE telemetry_events SET signal_duration = signal_duration + 1")
    run(config, JAN, FEB)
    second = checksums(ch)
    # The run published one new table (kept months hard-linked into it, unchanged) ...
    assert second["202601"] != first["202601"]
    assert {p: v for p, v in second.items() if p != "202601"} == {
        p: v for p, v in first.items() if p != "202601"
    }
    # ... and the previous version, whole, sits in the staging slot until the next run.
    assert checksums(ch, "telemetry_events_staging") == first
    run(config, JAN, FEB)
    assert checksums(ch) == second
    assert checksums(ch, "telemetry_events_staging") == second


def _settings(ch: Target, table: str) -> str:
    return str(
        ch.scalar(
            "SELECT engine_full FROM system.tables WHERE database = {db:String} "
            "AND name = {t:String}",
            {"db": ch.database, "t": table},
        )
    )


def test_published_partitions_merge_into_one_part_once_a_minute_old(
    config: Config, ch: Target
) -> None:
    # ClickHouse's usual merges keep several parts per month after a run, and a report pays
    # for each; the published table asks for each month to become one part once every part
    # of it is a minute old. The previous version, left in staging for the next run to drop,
    # is not worth merging. Tables made by an older version get the setting at the next run.
    want = "min_age_to_force_merge_seconds = 60, min_age_to_force_merge_on_partition_only = 1"
    run(config)
    assert want in _settings(ch, "telemetry_events")
    assert "min_age_to_force_merge" not in _settings(ch, "telemetry_events_staging")
    ch.command(
        f"ALTER TABLE {ch.t('telemetry_events')} RESET SETTING "
        "min_age_to_force_merge_seconds, min_age_to_force_merge_on_partition_only"
    )
    assert "min_age_to_force_merge" not in _settings(ch, "telemetry_events")
    run(config, JAN, FEB)
    assert want in _settings(ch, "telemetry_events")
    assert "min_age_to_force_merge" not in _settings(ch, "telemetry_events_staging")
    init(config)  # what `olapsync init` does: the old version stays unmerged
    assert "min_age_to_force_merge" not in _settings(ch, "telemetry_events_staging")
