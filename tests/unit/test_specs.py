from __future__ import annotations

import pytest

from olapsync.specs import TELEMETRY, USERS, Column, TableSpec, telemetry_spec


def test_users_ddl_is_a_join_table_with_utc_timestamps() -> None:
    ddl = USERS.ddl("olap")
    assert "CREATE TABLE IF NOT EXISTS `olap`.`users`" in ddl
    assert "ENGINE = Join(ANY, LEFT, user_id)" in ddl
    assert "`registration_ts` DateTime('UTC')" in ddl
    assert "`age` Nullable(Int32)" in ddl
    assert "ORDER BY" not in ddl


def test_telemetry_ddl_partitions_by_month_and_sorts_by_user_and_time() -> None:
    ddl = TELEMETRY.ddl("olap", TELEMETRY.staging)
    assert "`olap`.`telemetry_events_staging`" in ddl
    assert "PARTITION BY toYYYYMM(event_timestamp)" in ddl
    assert "ORDER BY (user_id, event_timestamp)" in ddl
    assert "`prosthesis_type` LowCardinality(String)" in ddl


def test_source_query_guards_infinite_timestamps_and_quotes_names() -> None:
    sql = TELEMETRY.source_query('"event_timestamp" >= x')
    assert (
        'CASE WHEN isfinite("event_timestamp") THEN "event_timestamp" END AS "event_timestamp"'
        in sql
    )
    # One flag column for all timestamps, NULL unless one of them is not finite.
    assert (
        'CASE WHEN NOT (isfinite("event_timestamp") AND isfinite("saved_ts")) THEN '
        "json_build_object('event_timestamp', CASE WHEN NOT isfinite(\"event_timestamp\") "
        'THEN "event_timestamp"::text END, ' in sql
    )
    assert sql.count(" AS ") == len(TELEMETRY.columns) + 1
    assert sql.endswith('FROM "telemetry_events" WHERE "event_timestamp" >= x')
    weird = TableSpec("t", "crm", 'sch.ta"ble', (Column("id", "int64"),), key="id")
    assert 'FROM "sch"."ta""ble"' in weird.source_query()


def test_rejected_table_keeps_the_run_reason_and_source_row() -> None:
    ddl = TELEMETRY.rejected_ddl("olap")
    for column in (
        "`run_id` String",
        "`reason` String",
        "`source_row` String",
        "`id` Nullable(Int64)",
    ):
        assert column in ddl


def test_prosthesis_types_are_configurable() -> None:
    spec = telemetry_spec(("arm", "hand", "leg", "foot"))
    assert spec.rules[0].name == "prosthesis_type allowed"
    assert spec != TELEMETRY or spec.rules  # rules do not take part in equality


def test_a_spec_checks_its_own_shape() -> None:
    with pytest.raises(ValueError, match="key"):
        TableSpec("t", "crm", "t", (Column("a", "int64"),), key="id")
    with pytest.raises(ValueError, match="window load"):
        TableSpec("t", "crm", "t", (Column("id", "int64"),), key="id", load="window")
