"""Shared by the benchmarks: the source database, isolated runs, and result tables."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from olapsync import demo
from olapsync.demo import DemoSource

RESULTS = Path("bench-results")
# This clone: docs/benchmarks.md and README.md show the latest run, written by the benchmark.
PROJECT = Path(__file__).resolve().parents[1]


def start_source(rows: int, users: int, data_dir: Path) -> DemoSource:
    """An embedded PostgreSQL with `rows` clean events (reused when it already has them),
    started as the demo starts its own (`olapsync.demo.start_source`).

    Clean: ClickHouse's own postgresql() pull aborts on an 'infinity' timestamp, so the
    side-by-side comparison uses data every variant can load.
    """
    # One folder per size and user count: the report benchmark (1,000 users) and the import's
    # 1M baseline (10,000) would otherwise regenerate each other's data.
    source = demo.start_source(
        data_dir / f"postgres-{rows}-{users}u",
        users=users,
        events=rows,
        bad_rows=False,
        orphans=False,
    )
    if source.generated.created:
        print(f"generated {rows:,} events in {source.seconds:.0f}s", file=sys.stderr)
        wait_for_idle(source.telemetry_url)
    return source


def wait_for_idle(url: str, timeout: float = 30) -> None:
    """Until the generator's server processes have ended: a backend's CPU is added to the
    server's when it ends, and would otherwise be counted against the first variant."""
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            others = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND backend_type IN ('client backend', 'autovacuum worker')"
            ).fetchone()
            if others == (0,):
                break
            time.sleep(0.1)
    time.sleep(0.2)  # the postmaster collects the last one's CPU when it reaps it


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every import benchmark shares: the source's size and where data lives."""
    parser.add_argument("--rows", type=int, default=5_000_000, help="events (default 5M)")
    parser.add_argument("--users", type=int, default=10_000, help="users (default 10,000)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=250_000,
        help="rows per batch olapsync reads (default 250,000)",
    )
    add_data_dir_argument(parser, "the generated PostgreSQL sources")


def _imported_folder(text: str) -> Path:
    folder = Path(text)
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder: import into it first")
    return folder


def add_folder_argument(parser: argparse.ArgumentParser) -> None:
    """`folder`: an existing embedded ClickHouse folder (chDB would make an empty one)."""
    parser.add_argument(
        "folder", type=_imported_folder, help="an embedded ClickHouse folder olapsync imported"
    )


def add_data_dir_argument(parser: argparse.ArgumentParser, kept: str) -> None:
    """`--data-dir`: where `kept` are kept between runs and reused."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=RESULTS / "data",
        help=f"where {kept} are kept and reused (default bench-results/data)",
    )


def add_docs_argument(parser: argparse.ArgumentParser) -> None:
    """`--docs-root`: the project whose docs/benchmarks.md and README.md show this run."""
    parser.add_argument(
        "--docs-root",
        type=Path,
        default=PROJECT,
        help="write this run's tables into DOCS_ROOT/docs/benchmarks.md (in full) and "
        "DOCS_ROOT/README.md (the summary), between their markers (default: this clone)",
    )


def run_header(prog: str, argv: list[str] | None) -> str:
    """When and how a run was made, as a Markdown line above its tables."""
    args = sys.argv[1:] if argv is None else argv
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return f"Latest run: {when}, `python -m {' '.join([prog, *args])}`, {os.cpu_count()} cores."


def publish(root: Path, name: str, *, full: str, summary: str) -> None:
    """Put a run's Markdown between the `<!-- NAME -->` and `<!-- /NAME -->` lines of
    docs/benchmarks.md (`full`) and of README.md (`summary`), so that neither is pasted by
    hand. A file without those lines is left alone, with a warning."""
    for path, text in ((root / "docs" / "benchmarks.md", full), (root / "README.md", summary)):
        begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
        doc = path.read_text() if path.is_file() else ""
        if begin not in doc or end not in doc:
            print(f"{path} has no {begin} ... {end} section: not updated", file=sys.stderr)
            continue
        head, rest = doc.split(begin, 1)
        tail = rest.split(end, 1)[1]
        path.write_text(f"{head}{begin}\n{text.strip()}\n{end}{tail}")
        print(f"updated {path}", file=sys.stderr)


def stat_cpu_seconds(stat_path: str, *, children: bool = False) -> tuple[str, float]:
    """A process's or thread's name and CPU seconds from its /proc `stat` file; with
    `children`, plus those of its children that have exited."""
    stat = Path(stat_path).read_text()
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat.rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime are fields 14-17 of stat(5); [0] here is field 3.
    ticks = sum(int(f) for f in fields[11 : 15 if children else 13])
    return name, ticks / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(data_dir: Path) -> float:
    """CPU the PostgreSQL server in `data_dir` has used: the postmaster and every backend
    that has exited (each connection's backend is added when it ends)."""
    pid = (data_dir / "postmaster.pid").read_text().split()[0]
    return stat_cpu_seconds(f"/proc/{pid}/stat", children=True)[1]


def run_isolated(module: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python -m module args` in a fresh process (with `env` added to the environment);
    return its JSON plus its peak RSS."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(
            f"`python -m {module} {args[0] if args else ''}` failed with exit code "
            f"{proc.returncode} (its own error is printed above)"
        )
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return result


def ratio(results: dict[str, Any], top: str, bottom: str) -> tuple[float, str]:
    """`top`'s median seconds over `bottom`'s, and a text with the range of the rounds' own
    ratios (how much this shared machine's drift moved it within the run). Each result has
    `seconds` (the median) and `runs` (seconds per round, in round order)."""
    r = results[top]["seconds"] / results[bottom]["seconds"]
    rounds = [a / b for a, b in zip(results[top]["runs"], results[bottom]["runs"], strict=True)]
    spread = f"; rounds {min(rounds):.2f}-{max(rounds):.2f}" if len(rounds) > 1 else ""
    return r, f"{top} / {bottom} = {r:.2f}{spread}"


def verdict(ok: bool, text: str) -> str:
    """One target line of a benchmark's output: PASS or MISS, and what was measured."""
    return f"  {'PASS' if ok else 'MISS'}  {text}"


def run_cli(main: Callable[[], object]) -> None:
    """Run a benchmark's `main`: a step that fails ends it with one line and exit code 1 (the
    failing child process has printed its own error), Ctrl-C with exit code 130."""
    try:
        main()
    except RuntimeError as exc:
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)


def latency_summary(latencies: list[float], seconds: float) -> dict[str, float]:
    """p50 and p99 of request latencies (in seconds) as milliseconds, and requests per second
    over `seconds` of load."""
    ordered = sorted(latencies)
    return {
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        "rps": len(ordered) / seconds,
    }


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def bar_chart(path: Path, title: str, labels: list[str], values: list[float], unit: str) -> None:
    """A horizontal bar chart as PNG, if matplotlib is installed (the `bench` group)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (uv sync --group bench)", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * len(labels)))
    bars = ax.barh(
        labels, values, color=["#d62728" if label == "olapsync" else "#7f7f7f" for label in labels]
    )
    ax.bar_label(bars, fmt="%.2f")
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def mermaid_bar_chart(title: str, labels: list[str], values: list[float], unit: str) -> str:
    """The bar chart as Markdown (a Mermaid `xychart`): GitHub draws it where the README
    shows it, and no image has to be kept in git."""
    names = ", ".join(f'"{label}"' for label in labels)
    top = max(values, default=1.0) * 1.1
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta horizontal",
            f'    title "{title}"',
            f"    x-axis [{names}]",
            f'    y-axis "{unit}" 0 --> {top:.1f}',
            f"    bar [{', '.join(f'{v:.2f}' for v in values)}]",
            "```",
        ]
    )
