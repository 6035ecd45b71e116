"""Repeated keys across months, for runs that reread only some of them (issue 15, item 5).

A source without a unique key can hold one id more than once, in one month or in several.
The id is the row key: a full import quarantines every copy (`olapsync.events`). A run that
rereads only some months (a sync, a window import) must leave ClickHouse as a full import
would, so the month ledger remembers which keys each month holds back and whose copies they
are (`olapsync.partitions.MonthRecord.repeated_keys`, `repeated_users`), and the run:

0. rereads, once, a month whose record an older version wrote (which kept no held keys) if
   the month holds rejected rows: some may be copies;
1. rereads every month sharing a held key with a month it rereads: a copy gone from one
   month may leave the other copy alone, to be loaded (`reread`);
2. rereads the months of a sync's new rows that carry a held key, and the months holding it;
3. rereads a month whose held copy belongs to a user gone from the CRM: that copy is now an
   orphan, not a copy, which may leave its partner alone;
4. quarantines a copy it stages of a key held in a month it keeps (`held_in`), with the
   others.

Pure: records in, months and keys out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set

from olapsync.partitions import NO_TIME, MonthRecord


def held_in(
    records: Mapping[str, MonthRecord], kept: Callable[[str], bool]
) -> dict[int, list[str]]:
    """The keys held back in the months `kept` selects (those a run does not reread), each
    with the months holding it (sorted)."""
    out: dict[int, list[str]] = {}
    for pid, record in sorted(records.items()):
        if kept(pid):
            for key in record.repeated_keys:
                out.setdefault(key, []).append(pid)
    return out


def reread(
    records: Mapping[str, MonthRecord],
    rebuilt: Iterable[str],
    *,
    parents: Set[int],
    candidates: Iterable[tuple[int, str]] = (),
) -> set[str]:
    """The months a run must reread besides `rebuilt` (rules 0-3 of the module docstring).

    Args:
        records: each month's latest record (`olapsync.partitions.latest_records`).
        rebuilt: the months the run rereads already.
        parents: the users in the CRM now.
        candidates: a sync's new rows as (key, month).

    Returns:
        The months to add, none of them in `rebuilt`.
    """
    unknown = {p for p, r in records.items() if not r.repeats_known and r.rejected and p != NO_TIME}
    holding: dict[int, set[str]] = {}
    for pid, record in records.items():
        for key in record.repeated_keys:
            holding.setdefault(key, set()).add(pid)
    if not holding:
        return unknown - set(rebuilt)
    todo = set(rebuilt) | unknown
    todo |= {pid for pid, record in records.items() if record.repeated_users - parents}
    for key, month in candidates:
        if key in holding:
            todo |= {month, *holding[key]}
    done: set[str] = set()
    while todo:
        pid = todo.pop()
        done.add(pid)
        held = records[pid].repeated_keys if pid in records else frozenset()
        for key in held:
            todo |= holding[key] - done
    return done - set(rebuilt)
