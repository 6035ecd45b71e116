"""Hostile requests against the real service process, signed in as an admin: generated cases
from its own OpenAPI document, SQL metacharacters, absurd ranges, 10 MB bodies, clients that
hang up or dribble their bodies over real sockets, and answers while an import swaps
partitions underneath."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
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
from tests.oidc import ADMIN_ROLE, AUDIENCE, LocalIssuer
from tests.support import TALLY, PgServer, Source, cli, start_service, urls


class Served:
    def __init__(self, base: str, pid: int, source: Source, token: str, log: Path):
        self.base = base
        self.pid = pid
        self.source = source
        self.token = token  # an admin's access token
        self.headers = {"Authorization": f"Bearer {token}"}
        self.log = log  # the service's stdout and stderr


BODY_TIMEOUT = 2


@pytest.fixture(scope="module")
def served(pg: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The real service process, signed in through a real issuer on 127.0.0.1."""
    name = "host_" + uuid.uuid4().hex[:8]
    url = pg.create(name)
    generate(url, url, users=30, events=5000)
    source = Source(url)
    folder = tmp_path_factory.mktemp("hostile") / "ch"
    assert cli("import", env=urls(source, folder)).returncode == 0
    log = folder.parent / "service.log"
    with LocalIssuer() as issuer, log.open("w") as output:
        key = issuer.add_key("RSA")
        token = issuer.token("an-admin", key, realm_roles=(ADMIN_ROLE,), lifetime=3600)
        env = {
            **urls(source, folder),
            "OLAPSYNC_OIDC_ISSUER": issuer.issuer,
            "OLAPSYNC_OIDC_AUDIENCE": AUDIENCE,
            "OLAPSYNC_REPORTS_BODY_TIMEOUT": str(BODY_TIMEOUT),
        }
        server, base = start_service(env, output=output.fileno())
        yield Served(base, server.pid, source, token, log)
        server.terminate()
        server.wait(timeout=30)
    pg.drop(name)


MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


@pytest.mark.parametrize("mode", MODES, ids=str)
def test_generated_requests_never_get_a_5xx(served: Served, mode: Any) -> None:
    # schemathesis's pytest plugin does not run under pytest 9, so its strategies drive
    # Hypothesis directly: cases from the service's own /openapi.json, valid and invalid.
    # Every case carries an admin's token; schemathesis's ignored_auth check also sends
    # each signed-in operation without it and with a broken one, and wants a 401.
    api = schemathesis.openapi.from_url(served.base + "/openapi.json")
    cases = 0
    for result in api.get_all_operations():
        operation = result.ok()
        examples = {"/report": 300, "/me/report": 150}.get(operation.path, 20)
        if examples == 20 and mode == schemathesis.GenerationMode.NEGATIVE:
            continue  # GET /health and /metrics take nothing that could be invalid

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
                headers=served.headers,
                excluded_checks=[schemathesis.checks.positive_data_acceptance],
            )
            assert response.status_code < 500
            TALLY["api_cases"] += 1
            nonlocal cases
            cases += 1

        check()
    assert cases >= 250  # per mode: 500+ in all


def post(served: Served, body: Any = None, **kw: Any) -> httpx.Response:
    return httpx.post(served.base + "/report", json=body, headers=served.headers, timeout=30, **kw)


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
        response = httpx.post(
            served.base + "/report", content=big, headers=served.headers, timeout=60
        )
        assert response.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(160):
            yield b"x" * 65536

    for _ in range(3):
        try:
            response = httpx.post(
                served.base + "/report", content=chunks(), headers=served.headers, timeout=60
            )
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


def _raw(served: Served, request: bytes) -> socket.socket:
    """A real TCP connection to the service that has sent `request` (and nothing else)."""
    host, port = served.base.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=30)
    conn.sendall(request)
    return conn


def _head(served: Served, *lines: str) -> bytes:
    return (
        "\r\n".join(
            [
                "POST /report HTTP/1.1",
                "Host: reports",
                f"Authorization: Bearer {served.token}",
                "Content-Type: application/json",
                *lines,
            ]
        )
        + "\r\n\r\n"
    ).encode()


def _metric(served: Served, status: str) -> float:
    text = httpx.get(served.base + "/metrics", timeout=30).text
    prefix = f'olapsync_reports_requests_total{{method="POST",route="/report",status="{status}"}} '
    return sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith(prefix))


def test_clients_that_hang_up_are_499_never_5xx(served: Served) -> None:
    """Issue 15 item 9's kind: a client that goes away mid-request is its doing, not a
    server error. The example (half a declared body, then close) and three more."""
    body = b'{"user_id": 3, "start_ts": "2026-01-01"}'
    hang_ups = {
        "half the declared body": _head(served, f"Content-Length: {len(body)}") + body[:15],
        "headers only": _head(served, f"Content-Length: {len(body)}"),
        "an aborted chunked upload": _head(served, "Transfer-Encoding: chunked")
        + b"10\r\n"
        + body[:16]
        + b"\r\n",
        "a chunk cut short": _head(served, "Transfer-Encoding: chunked") + b"28\r\n" + body[:9],
    }
    before = {status: _metric(served, status) for status in ("499", "500")}
    logged_before = served.log.read_text().count("status=499")
    for request in hang_ups.values():
        _raw(served, request).close()
    deadline = time.monotonic() + 30
    while _metric(served, "499") < before["499"] + len(hang_ups):
        assert time.monotonic() < deadline, "the hang-ups were not all counted as 499"
        time.sleep(0.1)
    assert _metric(served, "500") == before["500"]
    log = served.log.read_text()
    assert log.count("status=499") == logged_before + len(hang_ups)
    for line in (x for x in log.splitlines() if "status=499" in x):
        assert " INFO reports.access method=POST path=/report status=499 " in line
        assert line.endswith("(client closed the request)")
    assert "Traceback" not in log
    assert " ERROR " not in log
    assert post(served, {"user_id": 3}).status_code == 200  # and the service is still fine
    TALLY["api_cases"] += len(hang_ups)


def test_a_body_slower_than_the_timeout_is_408_and_closed(served: Served) -> None:
    body = b'{"user_id": 3}'
    for request in (
        _head(served, f"Content-Length: {len(body)}") + body[:5],
        _head(served, "Transfer-Encoding: chunked") + b"5\r\n" + body[:5] + b"\r\n",
    ):
        conn = _raw(served, request)
        with conn:
            answer = b""
            while chunk := conn.recv(4096):  # the service answers, then closes
                answer += chunk
        head, _, detail = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ")
        assert b"connection: close" in head.lower()
        assert json.loads(detail) == {"detail": f"The body did not arrive within {BODY_TIMEOUT} s."}
    log = served.log.read_text()
    assert log.count("path=/report status=408") == 2
    assert "Traceback" not in log
    TALLY["api_cases"] += 2


def test_the_service_log_never_holds_a_token(served: Served) -> None:
    # Last in this module: by now the service has seen the admin's token on hundreds of
    # requests, broken and missing tokens from schemathesis, and the hang-ups above.
    log = served.log.read_text()
    assert "method=POST path=/report status=200" in log
    for part in (served.token, *served.token.split(".")[1:]):
        assert part not in log
    assert "Bearer" not in log
    assert "Traceback" not in log
