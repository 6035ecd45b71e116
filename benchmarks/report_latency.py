"""Report latency: the raw ClickHouse query against POST /report through a real uvicorn
process under load, at concurrency 1 and 8, for several data sizes.

    uv run python -m benchmarks.report_latency [--rows 1000000,20000000] [--seconds 10]

Before measuring a size, it waits until ClickHouse has merged the import's parts (see
`benchmarks.settle`), so reports are timed on the layout they are served from, not in the
minute after an import. Each side runs twice for half the time, raw-service-service-raw, and
the halves are averaged.
The load tool is wrk when installed (`apt-get install wrk`), else a Python client.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

from benchmarks.common import (
    RESULTS,
    add_data_dir_argument,
    add_docs_argument,
    latency_summary,
    publish,
    run_cli,
    run_header,
    run_isolated,
    start_source,
    verdict,
    write_json,
)
from olapsync.pgembed import free_port

BODY = '{{"user_id": {uid}, "start_ts": "2025-11-01T00:00:00", "end_ts": "2026-02-28T23:59:59"}}'
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
math.randomseed(42)
request = function()
  local body = string.format('%s', math.random(1, %d))
  return wrk.format(nil, "/report", nil, body)
end
"""


def _wrk(base: str, users: int, concurrency: int, seconds: float, folder: Path) -> dict[str, Any]:
    script = folder / "post.lua"
    body = BODY.replace("{uid}", "%d").replace("{{", "{").replace("}}", "}")
    script.write_text(WRK_SCRIPT % (body, users))
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


def _python_load(base: str, users: int, concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def work(seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        with httpx.Client(base_url=base, timeout=30) as client:
            # At least one request each, however late the thread started on a busy machine.
            while True:
                started = time.perf_counter()
                response = client.post("/report", content=BODY.format(uid=rng.randint(1, users)))
                with lock:
                    latencies.append(time.perf_counter() - started)
                    errors += response.status_code != 200
                if time.monotonic() >= stop:
                    break

    threads = [threading.Thread(target=work, args=(i,)) for i in range(concurrency)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = latency_summary(latencies, time.monotonic() - began)
    return {**summary, "errors": errors, "tool": "python"}


def measure_service(folder: Path, users: int, seconds: float) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "OLAPSYNC_CLICKHOUSE_URL": f"chdb://{folder}"}
    server = subprocess.Popen(
        [sys.executable, "-m", "reports", "--port", str(port), "--pool", "8"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.post(base + "/report", content=BODY.format(uid=1)).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.2)
        out = {}
        for concurrency in (1, 8):
            if shutil.which("wrk"):
                out[f"c{concurrency}"] = _wrk(base, users, concurrency, seconds, folder.parent)
            else:
                out[f"c{concurrency}"] = _python_load(base, users, concurrency, seconds)
        return out
    finally:
        server.terminate()
        server.wait(timeout=30)


def _child(module: str, *args: object) -> dict[str, Any]:
    """A step on the folder in a process of its own (chDB: one process per folder); its JSON."""
    out = run_isolated(module, *map(str, args))
    return {k: v for k, v in out.items() if k != "peak_rss_mb"}


def _raw(folder: Path, users: int, seconds: float) -> dict[str, Any]:
    """The report query itself."""
    return _child("benchmarks.latency", folder, users, seconds)


def _mean(halves: list[dict[str, Any]]) -> dict[str, Any]:
    """Per concurrency, the mean of the halves' p50, p99 and rate; their errors summed."""
    out: dict[str, Any] = {}
    for c in halves[0]:
        cells = [h[c] for h in halves]
        out[c] = {k: sum(x[k] for x in cells) / len(cells) for k in ("p50_ms", "p99_ms", "rps")}
        out[c]["errors"] = sum(int(x["errors"]) for x in cells)
    return out


def ensure_imported(source: Any, folder: Path) -> None:
    marker = folder.parent / f"{folder.name}.imported"
    if marker.exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    env = {
        **os.environ,
        "OLAPSYNC_CRM_URL": source.crm_url,
        "OLAPSYNC_TELEMETRY_URL": source.telemetry_url,
        "OLAPSYNC_CLICKHOUSE_URL": f"chdb://{folder}",
    }
    subprocess.run(
        [sys.executable, "-m", "olapsync", "import"], env=env, check=True, stdout=subprocess.DEVNULL
    )
    marker.write_text("ok")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report_latency", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--rows", default="1000000,20000000", help="event counts, comma-separated (default 1M,20M)"
    )
    parser.add_argument("--users", type=int, default=1000, help="users (default 1,000)")
    parser.add_argument(
        "--seconds", type=float, default=10, help="load per cell (default 10, in two halves)"
    )
    add_data_dir_argument(parser, "the sources and imported data")
    parser.add_argument(
        "--json",
        type=Path,
        default=RESULTS / "report_latency.json",
        help="where to write results (default bench-results/report_latency.json)",
    )
    add_docs_argument(parser)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"users": args.users, "sizes": {}}
    for rows in (int(r) for r in args.rows.split(",")):
        source = start_source(rows, args.users, args.data_dir.resolve())
        folder = (args.data_dir / f"ch-report-{rows}").resolve()
        try:
            ensure_imported(source, folder)
        finally:
            source.server.stop()
        settled = _child("benchmarks.settle", folder)
        # A-B-B-A, half the time each: a steady drift of this machine's speed (it is shared)
        # then weighs on the raw query and the service alike, and cancels out of their means.
        half = args.seconds / 2
        raw = [_raw(folder, args.users, half)]
        service = [measure_service(folder, args.users, half) for _ in range(2)]
        raw.append(_raw(folder, args.users, half))
        report["sizes"][str(rows)] = {
            "raw": _mean(raw),
            "service": _mean(service),
            "halves": {"raw": raw, "service": service},
            "parts": settled,
        }
    write_json(args.json, report)
    print_table(report)
    table = markdown(report)
    args.json.with_suffix(".md").write_text(table)
    print(f"\nwrote {args.json} and its table as .md", file=sys.stderr)
    header = run_header("benchmarks.report_latency", argv)
    text = f"{header}\n\n{table}"
    publish(args.docs_root, "report_latency", full=text, summary=text)
    return report


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\nPOST /report vs the raw query ({report['users']:,} users, random user, 4-month window)"
    )
    print(
        f"{'events':>12} {'conc':>4} {'raw p50':>9} {'raw p99':>9} {'raw rps':>8} "
        f"{'svc p50':>9} {'svc p99':>9} {'svc rps':>8} {'errors':>6}"
    )
    for rows, r in report["sizes"].items():
        for c in ("c1", "c8"):
            raw, svc = r["raw"][c], r["service"][c]
            print(
                f"{int(rows):>12,} {c[1:]:>4} {raw['p50_ms']:9.2f} {raw['p99_ms']:9.2f} "
                f"{raw['rps']:8.0f} {svc['p50_ms']:9.2f} {svc['p99_ms']:9.2f} {svc['rps']:8.0f} "
                f"{svc['errors']:6d}"
            )
    print()
    for line in target_lines(report):
        print(line)


def markdown(report: dict[str, Any]) -> str:
    """The table and the target lines as Markdown, as the README shows them."""
    lines = [
        f"`POST /report` ({report['users']:,} users, random user, 4-month window):",
        "",
        "| events | concurrency | raw query p50 / p99 ms | service p50 / p99 ms "
        "| raw / service req/s | errors |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for rows, r in report["sizes"].items():
        for c in ("c1", "c8"):
            raw, svc = r["raw"][c], r["service"][c]
            lines.append(
                f"| {int(rows):,} | {c[1:]} | {raw['p50_ms']:.1f} / {raw['p99_ms']:.1f} "
                f"| {svc['p50_ms']:.1f} / {svc['p99_ms']:.1f} | {raw['rps']:.0f} / {svc['rps']:.0f} "
                f"| {svc['errors']} |"
            )
    lines += ["", *(f"- {line.strip()}" for line in target_lines(report))]
    return "\n".join(lines) + "\n"


def target_lines(report: dict[str, Any]) -> list[str]:
    """The issue's targets, each as PASS/MISS, at every size measured."""
    lines = []

    def check(ok: bool, text: str) -> None:
        lines.append(verdict(ok, text))

    sizes = report["sizes"]
    for rows, r in sizes.items():
        raw, svc = r["raw"], r["service"]
        extra = svc["c1"]["p50_ms"] - raw["c1"]["p50_ms"]
        check(
            extra <= 2, f"{int(rows):,} events: p50 at c=1 is raw {extra:+.2f} ms  (target <= +2)"
        )
        rate = svc["c8"]["rps"] / raw["c8"]["rps"]
        check(
            rate >= 0.7, f"{int(rows):,} events: rate at c=8 is {rate:.2f} x raw  (target >= 0.7)"
        )
    errors = sum(r["service"][c]["errors"] for r in sizes.values() for c in ("c1", "c8"))
    check(errors == 0, f"request errors: {errors}  (target 0)")
    if len(sizes) > 1:
        (small, first), *_, (large, last) = sizes.items()
        growth = last["service"]["c1"]["p50_ms"] / first["service"]["c1"]["p50_ms"]
        check(
            growth <= 1.5,
            f"p50 at {int(large):,} events is {growth:.2f} x p50 at {int(small):,}"
            "  (target <= 1.5)",
        )
    return lines


if __name__ == "__main__":
    run_cli(main)
