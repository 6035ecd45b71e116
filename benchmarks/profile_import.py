"""Where an import's time goes: the CPU of each kind of thread in one real import, and the
PostgreSQL server's, next to the wall-clock milestones of the run.

    uv run python -m benchmarks.profile_import [--rows N] [--repeat K]

Runs `import_olap_data` in this process against the benchmark source (the same embedded
PostgreSQL as `import_throughput`), into a fresh embedded ClickHouse folder, while a thread
reads every thread's CPU from /proc every 50 ms. Threads are grouped by what runs on them:

- main: start-up, reading users, validating each batch with Polars, Arrow conversions;
- olapsync-insert: the background insert (clickhouse-connect writing each batch for chDB,
  chDB parsing it and writing MergeTree parts, as far as it runs on the calling thread);
- polars: Polars' threads (validation): its pool, its streaming engine's `async-executor`s
  and its allocator's;
- connectorx: its readers, which decode the rows (native threads that carry the process's
  name and are not Python threads), and its `r2d2` pool;
- other: named threads, mostly chDB's pools (`ThreadPool` runs the inserts' parsing and
  part writing); `tokio-rt-worker` may be Polars' or connectorx's.

A thread that ends between two samples loses up to 50 ms, so the groups can add up to a little
less than the process's CPU, which is printed too.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    RESULTS,
    add_source_arguments,
    median,
    run_cli,
    server_cpu_seconds,
    start_source,
    stat_cpu_seconds,
    write_json,
)
from olapsync.demo import DemoSource

_NUMBERED = re.compile(r"[-_:]?\d+$")  # ClickHouse numbers the threads of a pool


def _threads() -> dict[int, tuple[str, float]]:
    """Every thread of this process: name and CPU seconds so far."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            out[int(tid)] = stat_cpu_seconds(f"/proc/self/task/{tid}/stat")
        except FileNotFoundError:
            continue  # ended meanwhile
    return out


class Sampler:
    """Samples every thread's CPU until stopped; `groups()` sums them by kind."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.last: dict[int, tuple[str, float]] = {}
        self.at_start = _threads()
        self.inserters: set[int] = set()
        self.python: set[int] = set()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="profile-sampler", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            for t in threading.enumerate():
                if t.native_id is not None:
                    self.python.add(t.native_id)
                    if t.name == "olapsync-insert":
                        self.inserters.add(t.native_id)
            self.last.update(_threads())
            self.stopped.wait(self.interval)

    def stop(self) -> dict[str, float]:
        self.last.update(_threads())
        self.stopped.set()
        self.thread.join()
        return self.groups()

    def groups(self) -> dict[str, float]:
        main, sampler = os.getpid(), self.thread.native_id
        sums: dict[str, float] = {}
        for tid, (name, cpu) in self.last.items():
            cpu -= self.at_start.get(tid, (name, 0.0))[1]
            if tid == sampler:
                continue
            if tid == main:
                group = "main"
            elif tid in self.inserters:
                group = "olapsync-insert"
            elif tid in self.python:
                group = "other Python threads"
            elif name.startswith(("polars", "async-executor", "jemalloc_bg_thd")):
                group = "polars"
            elif name.startswith(("python", "r2d2")):
                group = "connectorx"
            else:
                group = f"other: {_NUMBERED.sub('', name)}"
            sums[group] = sums.get(group, 0.0) + cpu
        return sums


def profile_once(args: argparse.Namespace, source: DemoSource) -> dict[str, Any]:
    from olapsync import Config, import_olap_data
    from olapsync.progress import ProgressEvent

    folder = (args.data_dir / "ch-profile").resolve()
    shutil.rmtree(folder, ignore_errors=True)
    config = Config(
        crm_url=source.crm_url,
        telemetry_url=source.telemetry_url,
        clickhouse_url=f"chdb://{folder}",
        batch_size=args.batch_size,
    )
    milestones: dict[str, float] = {}

    def on_progress(event: ProgressEvent) -> None:
        at = time.perf_counter() - started
        if event.phase == "extract" and event.rows:
            milestones.setdefault("first batch read", at)
            milestones["last batch read"] = at
        elif event.phase in ("users", "publish", "done"):
            milestones.setdefault(f"{event.phase} starts", at)

    server, cpu = server_cpu_seconds(source.server.data_dir), time.process_time()
    sampler = Sampler()
    started = time.perf_counter()
    result = import_olap_data(config=config, on_progress=on_progress)
    wall = time.perf_counter() - started
    milestones["returned (ClickHouse closed)"] = wall
    groups = sampler.stop()
    cpu = time.process_time() - cpu
    time.sleep(0.2)  # let the last backend exit and be counted
    server = server_cpu_seconds(source.server.data_dir) - server
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "rows": result.events_loaded,
        "seconds": wall,
        "process_cpu_seconds": cpu,
        "server_cpu_seconds": server,
        "threads": groups,
        "milestones": milestones,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_import", description=__doc__.split("\n\n")[0]
    )
    add_source_arguments(parser)
    parser.add_argument("--repeat", type=int, default=3, help="imports (default 3; medians)")
    parser.add_argument("--json", type=Path, default=None, help="default bench-results/")
    args = parser.parse_args(argv)
    out = args.json or RESULTS / f"profile_{args.rows}.json"

    # Libraries load before the clock starts, as in the throughput benchmark.
    import olapsync  # noqa: F401

    source = start_source(args.rows, args.users, args.data_dir.resolve())
    try:
        runs = [profile_once(args, source) for _ in range(args.repeat)]
    finally:
        source.server.stop()

    def med(key: str, inner: str | None = None) -> float:
        if inner is None:
            return median([r[key] for r in runs])
        return median([r[key].get(inner, 0.0) for r in runs])

    groups = {g: med("threads", g) for r in runs for g in r["threads"]}
    marks = {m: med("milestones", m) for r in runs for m in r["milestones"]}
    report = {
        "rows": args.rows,
        "repeat": args.repeat,
        "seconds": med("seconds"),
        "process_cpu_seconds": med("process_cpu_seconds"),
        "server_cpu_seconds": med("server_cpu_seconds"),
        "threads": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
        "milestones": dict(sorted(marks.items(), key=lambda kv: kv[1])),
        "runs": runs,
    }
    write_json(out, report)
    print(f"\nImport of {args.rows:,} events, median of {args.repeat} runs")
    print(f"  wall {report['seconds']:.2f} s")
    print("  milestones, seconds after `import_olap_data` was called:")
    for name, at in report["milestones"].items():
        print(f"    {at:6.2f}  {name}")
    print(
        f"  CPU, core-seconds: process {report['process_cpu_seconds']:.2f}, "
        f"PostgreSQL server {report['server_cpu_seconds']:.2f}"
    )
    for name, cpu in report["threads"].items():
        print(f"    {cpu:6.2f}  {name}")
    busy = (report["process_cpu_seconds"] + report["server_cpu_seconds"]) / report["seconds"]
    print(f"  cores busy on average: {busy:.2f} of {os.cpu_count()}")
    print(f"\nwrote {out}")
    return report


if __name__ == "__main__":
    run_cli(main)
