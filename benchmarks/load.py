"""Load for `benchmarks.report_latency`: POST /report for random users at a concurrency, with
wrk when installed (`apt-get install wrk`), else Python threads; p50/p99 ms, rate, errors."""

from __future__ import annotations

import random
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

BODY = '{{"user_id": {uid}, "start_ts": "2025-11-01T00:00:00", "end_ts": "2026-02-28T23:59:59"}}'
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%s
math.randomseed(42)
request = function()
  local body = string.format('%s', math.random(1, %d))
  return wrk.format(nil, "/report", nil, body)
end
"""


def wrk(
    base: str,
    users: int,
    concurrency: int,
    seconds: float,
    folder: Path,
    headers: dict[str, str],
) -> dict[str, Any]:
    script = folder / "post.lua"
    body = BODY.replace("{uid}", "%d").replace("{{", "{").replace("}}", "}")
    extra = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    script.write_text(WRK_SCRIPT % (extra, body, users))
    done = subprocess.run(
        [
            "wrk",
            f"-t{min(concurrency, 2)}",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            base,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    text = done.stdout

    def ms(label: str) -> float:
        match = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", text)
        assert match, text
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(g) for g in sock.groups()) if sock else 0
    )
    return {"p50_ms": ms("50"), "p99_ms": ms("99"), "rps": rps, "errors": errors, "tool": "wrk"}


def python_load(
    base: str, users: int, concurrency: int, seconds: float, headers: dict[str, str]
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    # Clients first (each loads TLS settings, slow on a busy machine), then the clock: a
    # client made after the deadline would send nothing.
    clients = [httpx.Client(base_url=base, timeout=30, headers=headers) for _ in range(concurrency)]
    stop = time.monotonic() + seconds

    def work(client: httpx.Client, seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        with client:
            while True:  # at least one request each
                started = time.perf_counter()
                try:
                    body = BODY.format(uid=rng.randint(1, users))
                    ok = client.post("/report", content=body).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    latencies.append(time.perf_counter() - started)
                    errors += not ok
                if time.monotonic() >= stop:
                    break

    threads = [threading.Thread(target=work, args=(c, i)) for i, c in enumerate(clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return {
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "rps": len(latencies) / (time.monotonic() - began),
        "errors": errors,
        "tool": "python",
    }
