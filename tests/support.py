"""What the tests share besides fixtures: the test databases' shapes, checks on a target's
contents, and running the commands in processes of their own. Tests import it directly;
`conftest.py` only defines fixtures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from olapsync.clickhouse import Target

# The size of the `source` fixture's generated data.
SMALL_USERS = 40
SMALL_EVENTS = 6000

# What the reliability suite proved, summed over its tests and printed as one line at the end
# (tests/reliability/conftest.py).
TALLY: Counter[str] = Counter()


@dataclass
class PgServer:
    admin_url: str

    def url(self, database: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path="/" + database))

    def create(self, name: str) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@dataclass
class Source:
    """One PostgreSQL database holding both seed tables (CRM and Telemetry in one)."""

    url: str

    def execute(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


EVENT_COLUMNS = (
    "id, user_id, prosthesis_type, muscle_group, signal_frequency, signal_duration, "
    "signal_amplitude, event_timestamp, saved_ts"
)

# A source row that validation accepts, in PostgreSQL terms.
VALID = """
    user_id IN (SELECT user_id FROM users)
    AND prosthesis_type IN ('arm', 'hand', 'leg') AND btrim(muscle_group) <> ''
    AND signal_frequency > 0 AND signal_duration >= 0
    AND signal_amplitude NOT IN ('NaN', 'Infinity', '-Infinity')
    AND isfinite(event_timestamp) AND event_timestamp >= '1970-01-01'
    AND event_timestamp <= '2106-02-07 06:28:15'
    AND isfinite(saved_ts) AND saved_ts >= '1970-01-01' AND saved_ts <= '2106-02-07 06:28:15'
    AND muscle_group IS NOT NULL AND signal_frequency IS NOT NULL
    AND signal_duration IS NOT NULL AND signal_amplitude IS NOT NULL
"""


def source_partitions(source: Source, where: str = "TRUE") -> dict[str, tuple[int, int, float]]:
    """Per month of the source's valid rows: count, sum of durations, sum of amplitudes."""
    rows = source.execute(
        "SELECT to_char(event_timestamp, 'YYYYMM'), count(*), sum(signal_duration), "
        f"sum(signal_amplitude) FROM telemetry_events WHERE {VALID} AND {where} GROUP BY 1"
    )
    return {p: (int(n), int(d), float(a)) for p, n, d, a in rows}


def target_partitions(ch: Target) -> dict[str, tuple[int, int, float]]:
    """The same per partition of the imported events."""
    rows = ch.rows(
        "SELECT _partition_id, count(), sum(signal_duration), sum(signal_amplitude) "
        f"FROM {ch.t('telemetry_events')} GROUP BY 1"
    )
    return {p: (int(n), int(d), float(a)) for p, n, d, a in rows}


def assert_same(a: dict[str, tuple[int, int, float]], b: dict[str, tuple[int, int, float]]) -> None:
    assert a.keys() == b.keys()
    for pid in a:
        assert a[pid][:2] == b[pid][:2], pid
        assert a[pid][2] == pytest.approx(b[pid][2], rel=1e-9), pid


def checksums(target: Target, table: str = "telemetry_events") -> dict[str, tuple[int, int]]:
    """Per partition: (row count, order-independent checksum of every column)."""
    rows = target.rows(
        f"SELECT _partition_id, count(), groupBitXor(cityHash64({EVENT_COLUMNS})) "
        f"FROM {target.t(table)} GROUP BY 1 ORDER BY 1"
    )
    return {str(p): (int(n), int(h)) for p, n, h in rows}


def users_checksum(target: Target) -> tuple[int, int]:
    n, h = target.rows(
        f"SELECT count(), groupBitXor(cityHash64(user_id, name, email)) FROM {target.t('users')}"
    )[0]
    return int(n), int(h)


CHECK = """
import json, sys
from olapsync.clickhouse import Target
from olapsync.config import Config
from tests.support import checksums, users_checksum
for line in sys.stdin:
    with Target(Config(clickhouse_url=line.strip(), database="olap")) as t:
        tables = t.tables()
        ledger = t.rows("SELECT run_id, argMax(status, finished_at) FROM olap.olapsync_runs GROUP BY run_id ORDER BY min(started_at), run_id") if "olapsync_runs" in tables else []
        print(json.dumps({"parts": checksums(t), "users": users_checksum(t),
                          "ledger": [list(r) for r in ledger],
                          "dupes": t.scalar("SELECT count() - uniqExact(id) FROM olap.telemetry_events")}),
              flush=True)
"""


class _Checker:
    """One helper process that reads a chDB folder's state on request.

    The test process holds its own chDB folder (one per process), so another folder is read
    from a helper; it opens the folder only while it reads, so imports can run in between.
    """

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def __call__(self, folder: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
        if env:
            return _state_once(folder, env)
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CHECK],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(f"chdb://{folder}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the state helper died"
        return _decode(line)


def _decode(text: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(text)
    out["users"] = tuple(out["users"])
    out["parts"] = {k: tuple(v) for k, v in out["parts"].items()}
    return out


def _state_once(folder: Path, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHECK],
        input=f"chdb://{folder}\n",
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return _decode(done.stdout)


state = _Checker()


def cli(
    *args: str, env: dict[str, str] | None = None, code: str | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """Run `python -m olapsync ARGS` (or, with `code`, `python -c CODE ARGS`: a program that
    changes something in olapsync and then calls `olapsync.cli.main`), without the caller's
    OLAPSYNC_* variables."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OLAPSYNC_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, *(("-c", code) if code else ("-m", "olapsync")), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


def urls(source: Source, folder: Path) -> dict[str, str]:
    return {
        "OLAPSYNC_CRM_URL": source.url,
        "OLAPSYNC_TELEMETRY_URL": source.url,
        "OLAPSYNC_CLICKHOUSE_URL": f"chdb://{folder}",
    }


def start_service(
    env: dict[str, str],
    *,
    output: int | None = subprocess.PIPE,
    command: tuple[str, ...] = ("-m", "reports"),
) -> tuple[subprocess.Popen[str], str]:
    """Start `python -m reports` (or `python COMMAND`) on a free port; return it once /health
    answers 200."""
    import time

    import httpx2 as httpx

    from olapsync.pgembed import free_port

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, *command, "--port", str(port)],
        env={**os.environ, **env},
        stdout=output,
        stderr=subprocess.STDOUT if output == subprocess.PIPE else output,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/health").status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        assert server.poll() is None, "the service exited"
        assert time.monotonic() < deadline, "the service did not start in 60 s"
        time.sleep(0.2)


# -- Running the benchmarks in tests ------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]


def bench_call(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def bench_run(module: str, *args: str) -> str:
    done = bench_call(module, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def bench_docs(root: Path, name: str) -> tuple[Path, Path]:
    """A project's docs/benchmarks.md and README.md with an old section `name` each, as
    this clone's have (a test run must not write its tiny figures into the real ones)."""
    (root / "docs").mkdir(parents=True)
    paths = root / "docs" / "benchmarks.md", root / "README.md"
    for path in paths:
        path.write_text(
            f"# {path.name}\n\n<!-- {name} -->\nold figures\n<!-- /{name} -->\n\nMore.\n"
        )
    return paths


def bench_section(path: Path, name: str) -> str:
    text = path.read_text()
    assert text.startswith(f"# {path.name}\n\n"), text  # what is around it stays
    assert text.endswith("\n\nMore.\n"), text
    return text.split(f"<!-- {name} -->\n", 1)[1].split(f"\n<!-- /{name} -->", 1)[0]
