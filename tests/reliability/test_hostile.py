"""Hostile requests against the real service process: generated cases from its own OpenAPI
document, SQL metacharacters, absurd ranges, 10 MB bodies, and answers while an import swaps
partitions underneath."""

from __future__ import annotations

import concurrent.futures
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psutil
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient

from olapsync import ImportResult, import_olap_data
from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.generate import generate
from reports.app import create_app
from tests.support import TALLY, PgServer, Source, cli, start_service, urls


class Served:
    def __init__(self, base: str, pid: int, source: Source):
        self.base = base
        self.pid = pid
        self.source = source


@pytest.fixture(scope="module")
def served(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    name = "host_" + uuid.uuid4().hex[:8]
    url = pg.create(name)
    generate(url, url, users=30, events=5000)
    source = Source(url)
    folder = tmp_path_factory.mktemp("hostile") / "ch"
    assert cli("import", env=urls(source, folder)).returncode == 0
    server, base = start_service(urls(source, folder), output=subprocess.DEVNULL)
    yield Served(base, server.pid, source)
    server.terminate()
    server.wait(timeout=30)
    pg.drop(name)


MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_generated_requests_never_get_a_5xx(served: Served, mode: Any) -> None:
    # schemathesis's pytest plugin does not run under pytest 9, so its strategies drive
    # Hypothesis directly: cases from the service's own /openapi.json, valid and invalid.
    api = schemathesis.openapi.from_url(served.base + "/openapi.json")
    for result in api.get_all_operations():
        operation = result.ok()
        has_input = operation.method.upper() == "POST"
        if not has_input and mode == schemathesis.GenerationMode.NEGATIVE:
            continue  # GET /health takes nothing that could be invalid
        examples = 300 if has_input else 20

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            # A schema cannot say "start_ts <= end_ts": a reversed, schema-valid window is
            # rightly a 422, so "valid data is accepted" is the one check left out.
            response = case.call_and_validate(
                base_url=served.base,
                excluded_checks=[schemathesis.checks.positive_data_acceptance],
            )
            assert response.status_code < 500
            TALLY["api_cases"] += 1

        check()


def post(served: Served, body: Any = None, **kw: Any) -> httpx.Response:
    return httpx.post(served.base + "/report", json=body, timeout=30, **kw)


META = [
    "'",
    '"',
    "\\",
    ";",
    "--",
    "/*",
    "*/",
    "%",
    "_",
    "\x00",
    "{user_id:Int32}",
    "'; DROP TABLE olap.users; --",
    "1' OR '1'='1",
    "`users`",
    "$$",
    "\u202e",
]


def test_sql_metacharacters_in_every_field(served: Served) -> None:
    reference = post(served, {"user_id": 3}).json()
    for meta in META:
        for field in ("start_ts", "end_ts"):
            response = post(served, {"user_id": 3, field: meta})
            assert response.status_code == 422, (field, meta)
        assert post(served, {"user_id": 3, meta: 1}).status_code == 422
        assert post(served, {"user_id": meta}).status_code == 422
        TALLY["api_cases"] += 4
    # Nothing was dropped or changed.
    assert post(served, {"user_id": 3}).json() == reference


def test_huge_reversed_and_empty_ranges(served: Served) -> None:
    everything = post(served, {"user_id": 3}).json()
    huge = post(
        served,
        {
            "user_id": 3,
            "start_ts": "0001-01-01T00:00:00",
            "end_ts": "9999-12-31T23:59:59.999999+14:00",
        },
    )
    assert huge.status_code == 200
    assert huge.json() == everything
    reversed_ = post(served, {"user_id": 3, "start_ts": "2026-02-01", "end_ts": "2026-01-01"})
    assert reversed_.status_code == 422
    instant = post(
        served,
        {"user_id": 3, "start_ts": "2026-01-01T00:00:00.5", "end_ts": "2026-01-01T00:00:00.7"},
    )
    assert instant.status_code == 200
    assert instant.json()["total_events"] == 0
    TALLY["api_cases"] += 4


def test_10_mb_bodies_are_413_without_memory_growth(served: Served) -> None:
    server = psutil.Process(served.pid)
    big = b'{"user_id": 3, "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    post(served, {"user_id": 3})
    before = server.memory_info().rss
    for _ in range(10):
        response = httpx.post(served.base + "/report", content=big, timeout=60)
        assert response.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(160):
            yield b"x" * 65536

    for _ in range(3):
        try:
            response = httpx.post(served.base + "/report", content=chunks(), timeout=60)
            assert response.status_code == 413
        except httpx.TransportError:
            pass  # the server may close the upload early, after answering 413
    growth = server.memory_info().rss - before
    assert growth < 20 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB"
    assert post(served, {"user_id": 3}).status_code == 200
    TALLY["api_cases"] += 13


MONTHS = [
    ("2025-10-01T00:00:00", "2025-10-31T23:59:59"),
    ("2025-12-01T00:00:00", "2025-12-31T23:59:59"),
    ("2026-02-01T00:00:00", "2026-02-28T23:59:59"),
]


def test_50_concurrent_requests_while_an_import_swaps(pg: PgServer, chdb_dir: Path) -> None:
    # In one process on the embedded engine: the import and the service share it.
    name = "swap_" + uuid.uuid4().hex[:8]
    url = pg.create(name)
    generate(url, url, users=20, events=40_000)
    source = Source(url)
    config = Config(
        crm_url=url,
        telemetry_url=url,
        clickhouse_url=f"chdb://{chdb_dir}",
        database=name,
        batch_size=5000,
    )
    assert isinstance(import_olap_data(config=config), ImportResult)
    try:
        with TestClient(create_app(config)) as client:

            def ask(i: int) -> tuple[int, dict[str, Any]]:
                start, end = MONTHS[i % len(MONTHS)]
                body = {"user_id": 1 + i % 5, "start_ts": start, "end_ts": end}
                response = client.post("/report", json=body)
                assert response.status_code == 200, response.text
                return i, response.json()

            old = dict(ask(i) for i in range(50))
            source.execute("UPDATE telemetry_events SET signal_duration = signal_duration * 2")
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                running = pool.submit(import_olap_data, config=config)
                answers = []
                while not running.done():
                    answers += list(pool.map(ask, range(50)))
                assert isinstance(running.result(), ImportResult)
            new = dict(ask(i) for i in range(50))
            assert all(old[i] != new[i] for i in range(50) if old[i]["total_events"])
            for i, answer in answers:
                # Each answer covers one month, and a month swaps atomically.
                assert answer in (old[i], new[i]), i
            TALLY["api_cases"] += len(answers)
            assert len(answers) >= 50
    finally:
        with Target(config) as target:
            target.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")
        pg.drop(name)
