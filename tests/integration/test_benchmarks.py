"""The benchmarks run end to end at a tiny size, so what the README and `nox -s bench` promise
cannot break unnoticed. Speed is judged by the benchmarks' own output, never here: these only
check that every variant ran and moved every row, that every request was answered without an
error, and that every target line is printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, bench_call, bench_docs, bench_run, bench_section

pytestmark = pytest.mark.integration

ROWS, BASELINE = 20_000, 10_000


def test_this_clone_shows_each_benchmarks_latest_run() -> None:
    # docs/benchmarks.md shows every benchmark; the README, a front page, the refresh's summary.
    shown = {
        ROOT / "docs" / "benchmarks.md": ("import_throughput", "report_latency", "refresh"),
        ROOT / "README.md": ("refresh",),
    }
    for path, names in shown.items():
        text = path.read_text()
        for name in names:
            assert text.count(f"<!-- {name} -->") == text.count(f"<!-- /{name} -->") == 1
            assert "Latest run: " in text.split(f"<!-- {name} -->", 1)[1], (path, name)


def test_import_throughput_runs_every_variant_and_prints_every_target(tmp_path: Path) -> None:
    # Every variant but copy_binary_2 (copy_binary with a second connection), so the
    # alternatives' packages (the default `bench` group) are known to be installed.
    variants = [
        "copy_binary",
        "connectorx_read",
        "extract_only",
        "clickhouse_postgresql",
        "naive_pandas",
    ]
    out = tmp_path / "import.json"
    doc, readme = bench_docs(tmp_path / "project", "import_throughput")
    stdout = bench_run(
        "benchmarks.import_throughput",
        *("--rows", str(ROWS), "--users", "50", "--repeat", "1"),
        *("--variants", ",".join([*variants, "olapsync"])),
        *("--baseline-rows", str(BASELINE), "--data-dir", str(tmp_path / "data")),
        *("--json", str(out), "--docs-root", str(tmp_path / "project")),
    )
    report: dict[str, Any] = json.loads(out.read_text())
    assert report["rows"] == ROWS
    assert list(report["results"]) == [*variants, "olapsync"]
    for name, result in report["results"].items():
        assert result["seconds"] > 0, name
        assert result["rows_per_s"] == pytest.approx(ROWS / result["seconds"]), name
        assert result["peak_rss_mb"] > 0, name
    assert report["olapsync_baseline"]["rows"] == BASELINE
    for target in (
        "clickhouse_postgresql / olapsync",
        "olapsync / connectorx_read",
        "naive_pandas / olapsync",
        "olapsync peak RSS =",
        f"olapsync peak RSS at {ROWS:,} / at {BASELINE:,} events",
    ):
        assert sum(target in line for line in stdout.splitlines()) == 1, (target, stdout)
    assert not list((tmp_path / "data").glob("ch-bench*")), "a ClickHouse folder was left"
    # The Markdown the README takes: a row per variant, the target lines, and the chart.
    md = out.with_suffix(".md").read_text()
    for name in report["results"]:
        assert f"`{name}`" in md, name
    assert "clickhouse_postgresql / olapsync" in md
    assert "xychart-beta" in md
    assert md.count("bar [") == 1
    # The same run, written into the project's docs by the benchmark itself: the whole of it
    # in docs/benchmarks.md, the table and its targets in the README.
    full, summary = (
        bench_section(doc, "import_throughput"),
        bench_section(readme, "import_throughput"),
    )
    for section in (full, summary):
        assert section.startswith("Latest run: ")
        assert f"`python -m benchmarks.import_throughput --rows {ROWS} " in section
        assert md.split("\n```mermaid")[0].strip() in section
    assert "xychart-beta" in full
    assert "xychart-beta" not in summary


@pytest.mark.parametrize(
    "module", ["benchmarks", "benchmarks.settle", "benchmarks.latency", "benchmarks.refresh"]
)
def test_bench_entry_points_explain_themselves_instead_of_starting(
    module: str, tmp_path: Path
) -> None:
    # `python -m benchmarks` runs for ten minutes, and the other two once took --help for the
    # ClickHouse folder to open (and made one): --help must explain and touch nothing.
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m {module} ")
    assert "round 1" not in done.stdout + done.stderr
    assert not list(tmp_path.iterdir())
    done = bench_call(module, "--bogus", "1", "2", "3")
    assert done.returncode == 2
    assert f"python -m {module}: error:" in done.stderr


def test_import_targets_show_how_far_the_rounds_ratios_spread() -> None:
    from benchmarks.import_throughput import target_lines

    def variant(*runs: float) -> dict[str, Any]:
        return {"seconds": sorted(runs)[len(runs) // 2], "runs": list(runs), "peak_rss_mb": 600}

    # Rounds that disagree: the verdict is on the medians (5.0 / 4.5), the spread is per round.
    report = {
        "rows": ROWS,
        "results": {
            "clickhouse_postgresql": variant(4.0, 5.0, 6.0),
            "olapsync": variant(5.0, 4.5, 4.0),
        },
    }
    (pull, *_) = target_lines(report)
    assert (
        pull == "  PASS  clickhouse_postgresql / olapsync = 1.11; rounds 0.80-1.50  (target >= 1.1)"
    )


def test_profile_import_accounts_for_the_process_cpu(tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    bench_run(
        "benchmarks.profile_import",
        *("--rows", str(ROWS), "--users", "50", "--repeat", "1"),
        *("--data-dir", str(tmp_path / "data"), "--json", str(out)),
    )
    report: dict[str, Any] = json.loads(out.read_text())
    (run,) = report["runs"]
    assert run["rows"] == ROWS
    threads = report["threads"]
    assert "main" in threads  # at this size, other threads may live less than a sample
    # Threads that end between two samples lose up to 50 ms each, and /proc counts each
    # thread in 10 ms ticks; but most of the process's CPU is accounted for, none twice.
    cpu = report["process_cpu_seconds"]
    assert cpu / 2 <= sum(threads.values()) <= cpu + 0.3
    assert list(report["milestones"])[-1] == "returned (ClickHouse closed)"


def test_report_latency_measures_query_and_service_without_errors(tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    doc, readme = bench_docs(tmp_path / "project", "report_latency")
    stdout = bench_run(
        "benchmarks.report_latency",
        *("--rows", str(ROWS), "--users", "50", "--seconds", "1"),
        *("--data-dir", str(tmp_path / "data"), "--json", str(out)),
        *("--docs-root", str(tmp_path / "project")),
    )
    report: dict[str, Any] = json.loads(out.read_text())
    assert list(report["sizes"]) == [str(ROWS)]
    for size in report["sizes"].values():
        # Measured once ClickHouse has merged the import: at most one part per month.
        assert 0 < size["parts"]["parts_after"] <= size["parts"]["parts_before"]
        for side in ("raw", "service", "signed_in"):
            for c in ("c1", "c8"):
                assert size[side][c]["errors"] == 0, (side, c)
                assert size[side][c]["rps"] > 0, (side, c)
                assert 0 < size[side][c]["p50_ms"] <= size[side][c]["p99_ms"], (side, c)
    lines = stdout.splitlines()
    for target in ("p50 at c=1 is raw", "rate at c=8 is"):
        assert sum(f"{ROWS:,} events: {target}" in line for line in lines) == 1, stdout
    assert any("PASS  request errors: 0" in line for line in lines), stdout
    # (The growth between sizes is printed only for two sizes or more: one keeps this short.)
    md = out.with_suffix(".md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 2 + 1 + 1  # per size and concurrency; then signed in, per size
    assert sum(f"{ROWS:,} events: sign-in adds" in line for line in lines) == 1, stdout
    assert sum("in-process check of a new" in line for line in lines) == 2, stdout
    assert "request errors: 0" in md
    for path in (doc, readme):
        section = bench_section(path, "report_latency")
        assert section.startswith("Latest run: ")
        assert md.strip() in section


def test_ab_import_runs_both_sides_with_their_settings(tmp_path: Path) -> None:
    out = tmp_path / "ab.json"
    stdout = bench_run(
        "benchmarks.ab_import",
        *("--rows", str(ROWS), "--users", "50", "--pairs", "1"),
        *("--b", "read_partitions=1", "--b-env", "OLAPSYNC_BENCH_PROBE=1"),
        *("--data-dir", str(tmp_path / "data"), "--json", str(out)),
    )
    report: dict[str, Any] = json.loads(out.read_text())
    assert report["sides"]["a"]["label"] == "defaults"
    assert report["sides"]["b"]["label"] == "read_partitions=1 OLAPSYNC_BENCH_PROBE=1"
    for side in report["sides"].values():
        assert 0 < side["seconds"]["min"] <= side["seconds"]["median"] <= side["seconds"]["max"]
    assert "B / A" in stdout


def test_ab_import_refuses_a_setting_olapsync_would_refuse() -> None:
    done = bench_call("benchmarks.ab_import", "--b", "batch_size=10")
    assert done.returncode == 1
    assert done.stderr.strip() == "--b: batch_size=10 is too small: use 1000 or more."
