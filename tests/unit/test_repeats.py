"""Which months a run rereads because they share repeated keys (`olapsync.repeats`)."""

from __future__ import annotations

from dataclasses import replace

from olapsync.fingerprint import Fingerprint
from olapsync.partitions import MonthRecord
from olapsync.repeats import held_in, reread


def month(
    pid: str,
    keys: frozenset[int] | set[int] = frozenset(),
    users: frozenset[int] | set[int] = frozenset(),
) -> MonthRecord:
    return MonthRecord(
        table="telemetry_events",
        partition=pid,
        action="rebuilt",
        source=Fingerprint.EMPTY,
        loaded=0,
        rejected=len(keys),
        skipped=0,
        target=Fingerprint.EMPTY,
        signature="s",
        repeated_keys=frozenset(keys),
        repeated_users=frozenset(users),
    )


RECORDS = {
    r.partition: r
    for r in (
        month("202510", {1}, {7}),
        month("202511", {1, 2}, {7, 8}),
        month("202512", {2}, {8}),
        month("202601", {3}, {9}),  # both copies of 3 in this month
        month("202602"),
    )
}
USERS = {7, 8, 9}


def test_a_month_sharing_a_key_with_a_reread_one_is_reread_and_so_on() -> None:
    # 202510 shares key 1 with 202511, which shares key 2 with 202512.
    assert reread(RECORDS, ["202510"], parents=USERS) == {"202511", "202512"}
    assert reread(RECORDS, ["202512", "202511"], parents=USERS) == {"202510"}


def test_months_without_shared_keys_add_nothing() -> None:
    assert reread(RECORDS, ["202601", "202602"], parents=USERS) == set()
    assert reread(RECORDS, ["209912"], parents=USERS) == set()
    assert reread({}, ["202510"], parents=set(), candidates=[(1, "202603")]) == set()


def test_a_new_row_carrying_a_held_key_brings_its_month_and_the_holders() -> None:
    got = reread(RECORDS, [], parents=USERS, candidates=[(3, "202603"), (99, "202602")])
    assert got == {"202603", "202601"}
    got = reread(RECORDS, [], parents=USERS, candidates=[(2, "")])  # no event time
    assert got == {"", "202510", "202511", "202512"}


def test_a_held_copy_whose_user_left_brings_its_month_and_partners() -> None:
    assert reread(RECORDS, [], parents={7, 9}) == {"202510", "202511", "202512"}
    assert reread(RECORDS, [], parents={7, 8}) == {"202601"}


def test_held_in_lists_the_kept_months_of_each_key() -> None:
    assert held_in(RECORDS, lambda p: p != "202511") == {
        1: ["202510"],
        2: ["202512"],
        3: ["202601"],
    }
    assert held_in(RECORDS, lambda p: False) == {}


def test_a_month_an_older_version_recorded_is_reread_once_if_it_rejected_rows() -> None:
    older = {
        "202510": replace(month("202510"), rejected=2, repeats_known=False),
        "202511": replace(month("202511"), repeats_known=False),  # nothing rejected
        "": replace(month(""), rejected=1, repeats_known=False),  # no event time: no copies
        "202512": month("202512", {5}),
        "202601": month("202601", {5}),
    }
    assert reread(older, [], parents=USERS) == {"202510"}
    assert reread(older, ["202512"], parents=USERS) == {"202510", "202601"}
    assert reread(older, ["202510"], parents=USERS) == set()
