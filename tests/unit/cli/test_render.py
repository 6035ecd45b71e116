"""What `sync` and `verify` print for the records the library returns: the words an operator
reads to decide what to do (build an index, repair, nothing)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from olapsync.cli import render
from olapsync.results import ImportPlan, ImportResult, SyncPlan
from olapsync.verify import MonthCheck, MonthStatus, VerifyReport
from olapsync.window import Window

SINCE = datetime(2026, 3, 31, 23, 45, tzinfo=UTC)


def printed(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out


PLAN = SyncPlan(
    full=False,
    since=SINCE,
    candidates=1,
    months={
        "202603": {"action": "append", "reasons": ["new rows"], "rows": 1, "removed": 0},
        "202511": {"action": "rebuild", "reasons": ["changed"], "rows": 0, "removed": 0},
    },
)


def show_plan(p: SyncPlan) -> None:
    render.print_sync_plan(p, source_table="telemetry_events", watermark_column="saved_ts")


def test_a_dry_run_that_would_scan_says_so_and_names_the_index(
    capsys: pytest.CaptureFixture[str],
) -> None:
    show_plan(replace(PLAN, access="scan"))
    out = printed(capsys)
    assert "saved since 2026-03-31 23:45:00 UTC" in out
    assert "1 row now" in out
    assert "PostgreSQL would scan the whole telemetry_events table" in out
    assert "CREATE INDEX ON telemetry_events (saved_ts);" in out
    # Months in order, each with its action, why, and what it costs.
    assert out.index("202511") < out.index("202603")
    assert "│ 202511 │ rebuild │ changed  │ the whole month read │" in out
    assert "│ 202603 │ append  │ new rows │                1 new │" in out


def test_a_dry_run_through_an_index_suggests_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    show_plan(replace(PLAN, access="index", candidates=2))
    out = printed(capsys)
    assert "2 rows now" in out
    assert "through an index on saved_ts" in out
    assert "CREATE INDEX" not in out


def test_a_first_sync_is_announced_as_a_full_import(capsys: pytest.CaptureFixture[str]) -> None:
    show_plan(SyncPlan(full=True, users_source=40))
    out = printed(capsys)
    assert "the first sync will be a full import" in out
    assert "month" not in out.split("from the CRM", 1)[1]  # no month table


SYNC = ImportResult(run_id="r1", kind="sync", window=Window())


def test_a_sync_lists_each_month_with_what_it_did_and_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    render.print_result(
        replace(
            SYNC,
            months={"202510": ["late rows"], "202511": ["changed"], "202512": ["orphans"]},
            partitions_replaced=["202511"],
            partitions_appended=["202510"],
            partitions_cleaned=["202512"],
            rows_per_partition={"202511": 2830},
            rows_appended={"202510": 3},
            rows_removed={"202512": 41},
            watermark=SINCE,
        )
    )
    out = printed(capsys)
    assert "olapsync sync r1: success" in out
    assert "2026-03-31 23:45:00 UTC" in out
    assert "window" not in out  # a sync has none
    # Each month once, by what was done to it, with the rows it read, appended or removed.
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "│ 202510 │ appended │ late rows │ 3 new │" in lines
    assert "│ 202511 │ rebuilt │ changed │ 2,830 read │" in lines
    assert "│ 202512 │ cleaned │ orphans │ 41 removed │" in lines
    assert "│ partitions replaced │ 202511 │" in lines
    assert "│ partitions cleaned │ 202512 │" in lines


def test_a_dry_run_lists_the_months_it_would_clean_of_users_gone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    months = {
        **PLAN.months,
        "202603": {"action": "append", "reasons": ["new rows", "orphans"], "rows": 1, "removed": 7},
        "202510": {"action": "clean", "reasons": ["orphans"], "rows": 0, "removed": 1035},
    }
    show_plan(replace(PLAN, months=months, orphans_removed=1042))
    lines = [" ".join(line.split()) for line in printed(capsys).splitlines()]
    assert "│ 202510 │ clean │ orphans │ 1,035 removed │" in lines
    assert "│ 202603 │ append │ new rows, orphans │ 1 new, 7 removed │" in lines
    assert (
        "orphans removed elsewhere: 1,042 events of users no longer in the CRM, from 2 months kept"
        in lines
    )


def test_a_sync_that_changed_nothing_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    render.print_result(SYNC)
    assert "Nothing changed since the last run" in printed(capsys)


def check(
    partition: str, status: MonthStatus = "ok", table: str = "telemetry_events"
) -> MonthCheck:
    return MonthCheck(table, partition, status, source_rows=10, target_rows=10, loaded=10)


def test_verify_summarises_a_clean_target(capsys: pytest.CaptureFixture[str]) -> None:
    render.print_verify(VerifyReport([check("202511"), check(""), check("all", table="users")], 1))
    out = printed(capsys)
    assert "(no event time)" in out
    assert "users (all)" in out
    assert "OK: all 2 months and the users match" in out


def test_verify_names_what_drifted_and_how_to_repair_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    checks = [check("202511", "changed in source"), check("202512"), check("all", table="users")]
    render.print_verify(VerifyReport(checks, 1))
    out = printed(capsys)
    assert "DRIFT: 1 of 3 checks differ: 202511 (changed in source)" in out
    assert "olapsync verify --repair" in out

    repaired = replace(SYNC, months={"202511": ["changed"]}, partitions_replaced=["202511"])
    render.print_verify(VerifyReport(checks, 1, repaired))
    out = printed(capsys)
    assert "Repaired by sync r1: 202511." in out
    assert "olapsync sync r1: success" in out
    assert "--repair`" not in out


def test_verify_names_a_few_drifted_months_and_counts_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    months = [f"2025{m:02d}" for m in range(1, 13)]
    render.print_verify(VerifyReport([check(m, "missing") for m in months], 1))
    out = printed(capsys)
    assert "DRIFT: 12 of 12 checks differ: 202501 (missing), " in out
    assert "202506 (missing) and 6 more" in out
    assert "202512" in out  # still in the table


IMPORT_PLAN = ImportPlan(
    window=Window(),
    source_rows_per_partition={"202601": 10},
    source_rows_unusable_time=1,
    partitions_to_replace=["202601"],
    partitions_to_drop=[],
    edge_partitions=[],
    users_source=39,
    users_current=40,
    users_shrink_blocked=False,
    events_skipped_orphans=5,
    orphans_removed=0,
)


@pytest.mark.parametrize(
    ("unusable", "line"),
    [
        (1, "1 source row has no usable event time"),
        (2, "2 source rows have no usable event time"),
        (1042, "1,042 source rows have no usable event time"),
    ],
)
def test_an_import_plan_counts_in_words_that_agree(
    capsys: pytest.CaptureFixture[str], unusable: int, line: str
) -> None:
    render.print_plan(replace(IMPORT_PLAN, source_rows_unusable_time=unusable))
    out = printed(capsys)
    assert line in out
    # The orphans in the import result's own words.
    assert "events skipped (user gone): 5 " in out
    assert "orphans removed elsewhere: 0 " in out
