"""Ranges cut every row into exactly one range: block ranges tile the table, time ranges tile
the time line (open at both ends), whatever the time zone does."""

from __future__ import annotations

import itertools
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from olapsync.source_plan import Relation, _block_ranges, _time_cuts, _time_ranges

REL = Relation(1, "public", "events", "r", rows=10_000, blocks=100, block_ranges=True)


def query(extra: str = "", relation: str | None = None) -> str:
    return f"SELECT * FROM {relation} WHERE {extra}"


def test_block_ranges_tile_the_table_and_the_last_is_open() -> None:
    ranges = _block_ranges(query, REL, chunk_rows=950, partitions=3)
    bounds = []
    for r in ranges:
        assert 1 <= len(r.queries) <= 3
        for q in r.queries:
            lo = int(re.search(r"ctid >= '\((\d+),0\)'", q).group(1))  # type: ignore[union-attr]
            hi = re.search(r"ctid < '\((\d+),0\)'", q)
            bounds.append((lo, int(hi.group(1)) if hi else None))
    assert bounds[0][0] == 0
    assert bounds[-1][1] is None, "rows PostgreSQL adds past the measured size are read too"
    for (_, end), (start, _) in itertools.pairwise(bounds):
        assert end == start
    assert len(ranges) == 12  # ranges of 9 blocks of 100 rows: at most 950 rows each


def rows_returning(lo: Any, hi: Any) -> Any:
    def rows(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        assert sql.startswith('SELECT min("event_timestamp"), max("event_timestamp")')
        return [(lo, hi)]

    return rows


def test_time_cuts_increase_in_utc_across_a_dst_fold() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # clocks went back at 03:00 on 2025-10-26
    lo = datetime(2025, 10, 26, 1, 0, tzinfo=berlin)
    hi = datetime(2025, 10, 26, 5, 0, tzinfo=berlin)
    cuts = _time_cuts(rows_returning(lo, hi), REL, "event_timestamp", "true", 10)
    assert len(cuts) == 9
    assert cuts == sorted(cuts)
    assert cuts[0] == "'2025-10-25 23:30:00.000000+00'"


def test_time_ranges_tile_the_time_line_once() -> None:
    cuts = ["'2026-01-01'", "'2026-02-01'", "'2026-03-01'"]
    ranges = _time_ranges(query, REL, "event_timestamp", cuts, partitions=2)
    conds = [q.split(" WHERE ", 1)[1] for r in ranges for q in r.queries]
    assert all(r.seek for r in ranges)
    assert [len(r.queries) for r in ranges] == [2, 2]
    assert conds == [
        "\"event_timestamp\" < '2026-01-01'",
        "\"event_timestamp\" >= '2026-01-01' AND \"event_timestamp\" < '2026-02-01'",
        "\"event_timestamp\" >= '2026-02-01' AND \"event_timestamp\" < '2026-03-01'",
        '("event_timestamp" >= \'2026-03-01\' OR "event_timestamp" IS NULL)',
    ]


def test_no_cuts_make_one_range_of_everything() -> None:
    assert _time_cuts(rows_returning(None, None), REL, "event_timestamp", "true", 5) == []
    ranges = _time_ranges(query, REL, "event_timestamp", [], partitions=2)
    assert [r.queries for r in ranges] == [('SELECT * FROM ONLY "public"."events" WHERE ',)]
