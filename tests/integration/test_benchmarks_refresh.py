"""The refresh benchmark (`benchmarks.refresh`, issue 17) end to end at a tiny size, and its
parity check on its own: what `nox -s bench` and the README promise cannot break unnoticed.
Speed is judged by the benchmark's own output, never here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support import bench_docs, bench_run, bench_section

pytestmark = pytest.mark.integration


def _olapsync_has(command: str, option: str | None = None) -> bool:
    """Whether the `olapsync` command line has `command` (and its `option`)."""
    from olapsync.cli import main

    found = main.commands.get(command)  # type: ignore[attr-defined]
    return found is not None and (option is None or any(option in p.opts for p in found.params))


def test_refresh_runs_every_variant_and_checks_parity(tmp_path: Path) -> None:
    out = tmp_path / "refresh.json"
    docs, readme = bench_docs(tmp_path / "project", "refresh")
    stdout = bench_run(
        "benchmarks.refresh",
        *("--rows", "5000", "--users", "50", "--repeat", "1"),
        *("--data-dir", str(tmp_path / "data"), "--json", str(out)),
        *("--docs-root", str(tmp_path / "project")),
    )
    # It wrote its own tables into the docs (all of it) and the README (the summary).
    assert "| sync, idle |" in bench_section(docs, "refresh")
    assert "| sync --verify |" in bench_section(readme, "refresh")
    assert "| sync, idle |" not in bench_section(readme, "refresh")
    report: dict[str, Any] = json.loads(out.read_text())
    results, missing = report["results"], report["not_available"]
    # The day of changes touched what the issue lists.
    changes = report["changes"]
    assert (changes["new_rows"], changes["late_rows"]) == (50, 500), changes
    assert min(changes["updated_rows"], changes["deleted_rows"]) > 0, changes
    assert changes["deleted_user_events"] > 0, changes
    # The full reloads hold exactly the source rows of the users that remain.
    for name in ("pull", "import"):
        assert [p["exact"] for p in results[name]["parity"]] == [True], name
    sync_names = [n for n in (*results, *missing) if n.startswith("sync")]
    assert len(sync_names) == 7  # sync, sync --verify, idle, three days of new rows, rebuild
    lines = stdout.splitlines()
    if _olapsync_has("sync", "--verify"):
        for name in sync_names:
            assert results[name]["as_expected"], (name, results[name]["parity"])
        assert [p["exact"] for p in results["sync --verify"]["parity"]] == [True]
        assert any("sync --verify leaves ClickHouse exactly as PostgreSQL" in x for x in lines)
        for target in ("pull / sync =", "pull / sync --verify =", "(sync, +0.1% new - idle)"):
            assert sum(target in line for line in lines) == 1, (target, stdout)
    else:
        for name in sync_names:
            assert "No such" in missing[name], (name, missing)
        assert sum(line.startswith("  n/a   pull / sync  (target >= 5)") for line in lines) == 1
    if _olapsync_has("verify"):
        assert results["verify"]["exit_codes"] == [3]
        assert results["verify"]["as_expected"], results["verify"]["parity"]
        assert any("verify / pull =" in line for line in lines), stdout
    else:
        assert "No such command 'verify'" in missing["verify"], missing
        assert any(line.startswith("  n/a   verify / pull") for line in lines), stdout
    queries = report["source_queries"]
    assert "saved_ts" in queries["watermark, saved_ts index"]["plan"], queries
    assert queries["watermark, no saved_ts index"]["plan"] == "Seq Scan", queries
    assert (
        queries["watermark, saved_ts index"]["rows_matched"]
        == changes["new_rows"] + changes["late_rows"]
    )
    assert not list((tmp_path / "data").glob("ch-*")), "a ClickHouse folder was left"
    md = out.with_suffix(".md").read_text()
    for name in (*results, *missing):
        assert f"| {name} |" in md, name
    assert "per 1M rows" in md


# Rows whose values are easy to render differently: -0.0 and 0.0, a decimal fraction, the
# smallest subnormal and the largest double, microseconds (ClickHouse keeps whole seconds),
# non-ASCII text.
TRICKY_ROWS = [
    (9001, 3, "biceps", -0.0, "2025-10-05 10:00:00", "2025-10-05 10:00:00.999999"),
    (9002, 4, "бицепс", 0.1, "2025-10-06 11:00:00", "2025-10-06 11:00:00.5"),
    (9003, 5, "calf", 5e-324, "2025-11-07 12:00:00", "2025-11-07 12:00:01"),
    (9004, 6, "forearm", 1.7976931348623157e308, "2025-11-08 13:00:00", "2025-11-08 13:00:01"),
    (9005, 7, "deltoid", 0.0, "2025-12-09 14:00:00", "2025-12-09 14:00:02.25"),
]


@pytest.fixture
def imported_pair(pg: Any, clickhouse_url: str) -> Any:
    """A small source with the tricky rows, imported by olapsync into a fresh database."""
    import uuid

    from olapsync import Config, import_olap_data
    from olapsync.clickhouse import Target
    from olapsync.generate import generate

    name = "parity_" + uuid.uuid4().hex[:10]
    url = pg.create(name)
    generate(url, url, users=20, events=3000, bad_rows=False, orphans=False)
    with psycopg.connect(url, autocommit=True) as conn:
        for row in TRICKY_ROWS:
            conn.execute(
                "INSERT INTO telemetry_events VALUES (%s, %s, 'arm', %s, 100, 10, %s, %s, %s)", row
            )
    config = Config(crm_url=url, telemetry_url=url, clickhouse_url=clickhouse_url, database=name)
    import_olap_data(config=config)
    with Target(config) as target:
        yield url, target
        target.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")
    pg.drop(name)


def test_parity_checksum_agrees_on_identical_data_and_catches_each_kind_of_change(
    imported_pair: Any,
) -> None:
    from benchmarks.refresh_parity import compare
    from benchmarks.refresh_run import target_fingerprints
    from benchmarks.refresh_source import source_fingerprints

    url, target = imported_pair

    def parity() -> Any:
        return compare(source_fingerprints(url, url), target_fingerprints(target))

    def in_source(statement: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(statement)

    assert parity().exact, parity()
    # One value changed in PostgreSQL, of each kind: only its month differs, until undone.
    changes = {
        "float -0.0 -> 0.0": ("signal_amplitude = 0.0", "signal_amplitude = '-0'", 9001),
        "float by one ulp": (
            "signal_amplitude = 0.10000000000000002",
            "signal_amplitude = 0.1",
            9002,
        ),
        "subnormal": ("signal_amplitude = 1e-323", "signal_amplitude = 5e-324", 9003),
        "text": ("muscle_group = 'Calf'", "muscle_group = 'calf'", 9003),
        "integer": ("signal_duration = 11", "signal_duration = 10", 9004),
        "timestamp by a second": (
            "event_timestamp = event_timestamp + interval '1 second'",
            "event_timestamp = event_timestamp - interval '1 second'",
            9005,
        ),
    }
    months = {9001: 202510, 9002: 202510, 9003: 202511, 9004: 202511, 9005: 202512}
    for kind, (change, undo, row_id) in changes.items():
        in_source(f"UPDATE telemetry_events SET {change} WHERE id = {row_id}")
        found = parity()
        assert (found.differ, found.users_exact) == ((months[row_id],), True), kind
        in_source(f"UPDATE telemetry_events SET {undo} WHERE id = {row_id}")
        assert parity().exact, kind
    # Microseconds within the same second: ClickHouse's DateTime cannot hold them, so parity
    # is defined on whole seconds and must not flag them; one that reaches the next second
    # (row 9001 is at .999999) is a change ClickHouse would hold, and is flagged.
    in_source(
        "UPDATE telemetry_events SET saved_ts = saved_ts + interval '1 microsecond' "
        "WHERE id <> 9001"
    )
    assert parity().exact
    in_source("UPDATE telemetry_events SET saved_ts = saved_ts + interval '1 microsecond'")
    assert parity().differ == (202510,)
    in_source("UPDATE telemetry_events SET saved_ts = saved_ts - interval '1 microsecond'")
    # A deleted row, a user's changed e-mail, and a value changed in ClickHouse instead.
    in_source("DELETE FROM telemetry_events WHERE id = 9004")
    assert parity().differ == (202511,)
    in_source("UPDATE users SET email = 'x' || email WHERE user_id = 2")
    found = parity()
    assert (found.differ, found.users_exact) == ((202511,), False)
    target.command(
        f"ALTER TABLE {target.t('telemetry_events')} UPDATE signal_frequency = 101 "
        "WHERE id = 9005 SETTINGS mutations_sync = 2"
    )
    assert parity().differ == (202511, 202512)


def test_refresh_targets_judge_the_medians_and_show_the_rounds_ranges() -> None:
    # Until olapsync has sync and verify, the smoke test above only sees "n/a" lines: this
    # checks the verdicts on a report of known times (medians of three rounds).
    from benchmarks.refresh_report import target_lines

    def variant(*runs: float, group: str = "", **more: Any) -> dict[str, Any]:
        seconds = sorted(runs)[1]
        # CPU: 90% of the median seconds in the process, 10% in PostgreSQL.
        cpu = {"cpu_seconds": seconds * 0.9, "source_cpu_seconds": seconds * 0.1}
        return {"seconds": seconds, "runs": list(runs), "group": group, **cpu, **more}

    exact = {"exact": True, "months": 24, "differ": [], "users_exact": True}
    scaling = {"group": "scaling"}
    report = {
        "results": {
            "pull": variant(10.0, 12.0, 11.0),
            "sync": variant(2.0, 2.5, 2.2),
            "sync --verify": variant(5.0, 6.0, 5.5, parity=[exact] * 3),
            "verify": variant(5.0, 6.0, 7.0, exit_codes=[3, 3, 0]),
            "sync, idle": variant(1.0, 1.0, 1.0, **scaling),
            "sync, +0.1% new": variant(1.2, 1.1, 1.3, **scaling),
            "sync, +0.1% new, 1 updated": variant(2.0, 1.5, 2.1, **scaling),
        },
        "not_available": {},
        "scaling": {"sync, +0.1% new": {"new_rows": 10}, "sync, +0.1% new, 1 updated": {}},
    }
    assert target_lines(report) == [
        "  PASS  sync --verify leaves ClickHouse exactly as PostgreSQL",
        "  PASS  pull / sync = 5.00; rounds 4.80-5.00  (target >= 5)",
        "  info  pull / sync by CPU (own + PostgreSQL's) = 5.00",
        "  PASS  pull / sync --verify = 2.00; rounds 2.00-2.00  (target >= 2)",
        "  info  pull / sync --verify by CPU (own + PostgreSQL's) = 2.00",
        "  MISS  verify / pull = 0.55; rounds 0.50-0.64  (target <= 0.5)",
        "  info  verify / pull by CPU (own + PostgreSQL's) = 0.55",
        "  MISS  verify reports the day's drift: exit [3, 3, 0]",
        "  PASS  (sync, +0.1% new - idle) / (sync, +0.1% new, 1 updated - idle) = 0.20; "
        "rounds 0.20-0.27  (target <= 0.5: appending costs under half of rebuilding the month)",
        "  info  the same by CPU (own + PostgreSQL's) = 0.20",
    ]
    # A rebuild no dearer than an idle sync (a tiny table): the fast path cannot be judged.
    report["results"]["sync, +0.1% new, 1 updated"] = variant(1.0, 1.0, 1.01, **scaling)
    assert target_lines(report)[-1] == (
        "  MISS  (sync, +0.1% new - idle) / (sync, +0.1% new, 1 updated - idle): "
        "cannot tell, the rebuild costs no more than an idle sync"
    )
