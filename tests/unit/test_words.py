"""Counts in words: the singular for exactly one, whatever the noun."""

from __future__ import annotations

import pytest

from olapsync.words import count


@pytest.mark.parametrize(
    ("n", "noun", "plural", "text"),
    [
        (1, "source row", None, "1 source row"),
        (0, "source row", None, "0 source rows"),
        (1042, "event", None, "1,042 events"),
        (1, "month", None, "1 month"),
        (2, "repeated id", None, "2 repeated ids"),
        (1, "is", "are", "1 is"),
        (3, "is", "are", "3 are"),
    ],
)
def test_a_count_agrees_with_its_noun(n: int, noun: str, plural: str | None, text: str) -> None:
    assert count(n, noun, plural) == text
