"""Raw report-query latency in one process (`python -m benchmarks.latency FOLDER USERS
SECONDS`): the baseline POST /report is compared with. Prints JSON for concurrency 1 and 8."""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from datetime import datetime

from benchmarks.common import add_folder_argument, latency_summary
from olapsync import Config, Reports
from olapsync.clickhouse import Target

START, END = datetime(2025, 11, 1), datetime(2026, 2, 28, 23, 59, 59)


def measure(config: Config, users: int, concurrency: int, seconds: float) -> dict[str, float]:
    targets = [Target(config) for _ in range(concurrency)]
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def work(target: Target, seed: int) -> None:
        reports, rng = Reports(target=target), random.Random(seed)
        # At least one report each, however late the thread started on a busy machine.
        while True:
            started = time.perf_counter()
            reports.user_report(rng.randint(1, users), START, END)
            with lock:
                latencies.append(time.perf_counter() - started)
            if time.monotonic() >= stop:
                break

    threads = [threading.Thread(target=work, args=(t, i)) for i, t in enumerate(targets)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    for target in targets:
        target.close()
    return {**latency_summary(latencies, elapsed), "errors": 0}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.latency", description=__doc__.split("\n\n")[0]
    )
    add_folder_argument(parser)
    parser.add_argument("users", type=int, help="report on a random user in 1..USERS")
    parser.add_argument("seconds", type=float, help="load per concurrency")
    args = parser.parse_args(argv)
    folder, users, seconds = args.folder, args.users, args.seconds
    config = Config(clickhouse_url=f"chdb://{folder}")
    with Target(config) as warm:  # first query pays for loading marks and caches
        Reports(target=warm).user_report(1, START, END)
    print(json.dumps({f"c{c}": measure(config, users, c, seconds) for c in (1, 8)}))


if __name__ == "__main__":
    main()
