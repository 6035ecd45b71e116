"""The ClickHouse statements of a run, without a database: values travel as parameters,
names are quoted, partition ids are checked before they are formatted in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from olapsync import statements
from olapsync.errors import TargetError
from olapsync.statements import Outside, window_predicate
from olapsync.window import Window

JAN, FEB = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
JAN_S, FEB_S = 1767225600, 1769904000  # their epoch seconds


def outside(window: Window) -> Outside:
    return Outside(
        "olap", "telemetry_events", "event_timestamp", "user_id", "users_staging", window
    )


def test_names_are_qualified_and_quoted() -> None:
    assert statements.qualified("olap", "users") == "`olap`.`users`"
    swap = statements.exchange("olap", "users", "users_staging")
    assert swap.sql == "EXCHANGE TABLES `olap`.`users` AND `olap`.`users_staging`"
    assert (swap.what, swap.table) == ("swap users", "users")


@pytest.mark.parametrize(
    ("window", "sql", "params"),
    [
        (Window(), "1", {}),
        (Window(JAN), "toUnixTimestamp(`event_timestamp`) >= {start:Int64}", {"start": JAN_S}),
        (Window(end=FEB), "toUnixTimestamp(`event_timestamp`) < {end:Int64}", {"end": FEB_S}),
        (
            Window(JAN, FEB),
            "toUnixTimestamp(`event_timestamp`) >= {start:Int64} "
            "AND toUnixTimestamp(`event_timestamp`) < {end:Int64}",
            {"start": JAN_S, "end": FEB_S},
        ),
    ],
)
def test_window_predicate_binds_each_bound(
    window: Window, sql: str, params: dict[str, int]
) -> None:
    assert window_predicate("event_timestamp", window) == (sql, params)


def test_window_bounds_are_instants_whatever_their_zone() -> None:
    msk = timezone(timedelta(hours=3))
    naive, aware = Window(datetime(2026, 1, 1)), Window(datetime(2026, 1, 1, 3, tzinfo=msk))
    assert window_predicate("t", naive)[1] == window_predicate("t", aware)[1] == {"start": JAN_S}


def test_orphans_outside_the_window_are_counted_per_partition() -> None:
    stmt = outside(Window(JAN, FEB)).orphans_per_partition()
    assert stmt.sql == (
        "SELECT _partition_id, count() FROM `olap`.`telemetry_events` "
        "WHERE NOT `user_id` IN (SELECT `user_id` FROM `olap`.`users_staging`) "
        "AND NOT (toUnixTimestamp(`event_timestamp`) >= {start:Int64} "
        "AND toUnixTimestamp(`event_timestamp`) < {end:Int64}) GROUP BY 1"
    )
    assert stmt.parameters == {"start": JAN_S, "end": FEB_S}


def test_an_edge_partition_keeps_only_rows_outside_the_window() -> None:
    window = Window(datetime(2026, 1, 15), FEB)
    edge = outside(window).count_kept("202601", edge=True)
    cleaned = outside(window).count_kept("202512", edge=False)
    assert "AND NOT (toUnixTimestamp(`event_timestamp`) >= {start:Int64}" in edge.sql
    assert "toDateTime" not in cleaned.sql  # a whole month outside the window: all its rows
    for stmt, pid in ((edge, "202601"), (cleaned, "202512")):
        assert "_partition_id = {pid:String}" in stmt.sql
        assert "`user_id` IN (SELECT `user_id` FROM `olap`.`users_staging`)" in stmt.sql
        assert stmt.parameters["pid"] == pid
        assert pid not in stmt.sql


def test_the_copy_selects_exactly_what_the_count_counts() -> None:
    o = outside(Window(datetime(2026, 1, 15), FEB))
    count = o.count_kept("202601", edge=True)
    copy = o.copy_kept("202601", edge=True, into="telemetry_events_staging")
    where = count.sql.split(" WHERE ", 1)[1]
    assert copy.sql == (
        "INSERT INTO `olap`.`telemetry_events_staging` "
        f"SELECT * FROM `olap`.`telemetry_events` WHERE {where}"
    )
    assert copy.parameters == count.parameters
    assert copy.table == "telemetry_events_staging"


def test_attach_formats_a_checked_partition_id() -> None:
    stmt = statements.attach_partition(
        "olap", "telemetry_events_staging", "202601", "telemetry_events"
    )
    assert stmt.sql == (
        "ALTER TABLE `olap`.`telemetry_events_staging` ATTACH PARTITION ID '202601' "
        "FROM `olap`.`telemetry_events`"
    )


@pytest.mark.parametrize("pid", ["2026-01", "20261", "202601' OR 1", "", "tuple()"])
def test_a_partition_id_that_is_not_yyyymm_is_refused(pid: str) -> None:
    with pytest.raises(TargetError, match="expected YYYYMM"):
        statements.attach_partition("olap", "a", pid, "b")
    with pytest.raises(TargetError, match="expected YYYYMM"):
        outside(Window(JAN, FEB)).copy_kept(pid, edge=True, into="s")


def test_lookups_bind_names_as_parameters() -> None:
    for stmt in (
        statements.database_exists("olap"),
        statements.list_tables("olap"),
        statements.partition_rows("olap", "telemetry_events"),
    ):
        assert "olap" not in stmt.sql
        assert stmt.parameters["db"] == "olap"
    runs = statements.latest_runs("olap", "olapsync_runs", ("run_id", "status"), 5)
    # One row per run, as its latest row says (a run appends a row at each step).
    assert "GROUP BY run_id" in runs.sql
    assert "argMax(status, finished_at)" in runs.sql
    assert runs.sql.endswith("ORDER BY started DESC LIMIT {n:UInt32}")
    assert runs.parameters == {"n": 5}


def test_the_staging_table_is_dropped_at_once_and_recreated_like_the_target() -> None:
    assert statements.drop_table("olap", "s").sql == "DROP TABLE IF EXISTS `olap`.`s` SYNC"
    like = statements.create_table_like("olap", "s", "t")
    assert like.sql == "CREATE TABLE `olap`.`s` AS `olap`.`t`"
