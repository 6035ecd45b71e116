"""Counts in the words olapsync prints: "1 row", "2 rows", "1,042 events". Pure."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`n` with thousands separators and `noun`, in the plural (`plural`, else `noun` + "s")
    unless `n` is 1.

    >>> count(1, "source row"), count(1042, "event"), count(2, "is", "are")
    ('1 source row', '1,042 events', '2 are')
    """
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
