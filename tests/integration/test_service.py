"""The service around the reports: a pool that cannot hang, /health that never waits behind
reports, Prometheus metrics per app, and CORS only when asked for."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from olapsync.config import Config
from reports.app import create_app
from reports.pool import ClientPool
from reports.settings import ServiceSettings
from tests.integration import test_reports
from tests.support import Source

data = test_reports.data  # the imported data fixture (module-scoped: built again here)


def samples(client: TestClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample on /metrics, by name and labels (parsed by prometheus-client)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def busy_pool(data: tuple[Config, Source]) -> Iterator[tuple[ClientPool, TestClient]]:
    pool = ClientPool(data[0], size=1, timeout=0.5)
    settings = ServiceSettings(pool=1, pool_timeout=0.5)
    try:
        with TestClient(create_app(data[0], pool=pool, settings=settings)) as client:
            yield pool, client
    finally:
        pool.close()


def test_a_busy_pool_answers_503_and_health_still_answers(
    busy_pool: tuple[ClientPool, TestClient],
) -> None:
    pool, client = busy_pool
    assert client.post("/report", json={"user_id": 3}).status_code == 200
    with pool.reports():  # the only client is taken, as by a long query
        with concurrent.futures.ThreadPoolExecutor(3) as threads:
            answers = list(
                threads.map(
                    lambda _: client.post("/report", json={"user_id": 3}), range(3), timeout=60
                )
            )
        for response in answers:
            assert response.status_code == 503
            assert response.json()["detail"].startswith("The service is busy")
            assert response.headers["retry-after"] == "1"
        assert client.get("/health").json() == {"status": "ok"}
    assert client.post("/report", json={"user_id": 3}).status_code == 200
    found = samples(client)
    assert value(found, "olapsync_reports_pool_timeouts_total") == 3
    assert (
        value(
            found, "olapsync_reports_requests_total", route="/report", method="POST", status="503"
        )
        == 3
    )
    assert value(found, "olapsync_reports_pool_wait_seconds_count") == 5


def test_metrics_count_requests_queries_and_routes(data: tuple[Config, Source]) -> None:
    with TestClient(create_app(data[0])) as client:
        for body in ({"user_id": 3}, {"user_id": 3}, {"user_id": 999_999}, {"user_id": "x"}):
            client.post("/report", json=body)
        client.get("/no-such-page")
        client.get("/health")
        found = samples(client)
        count = "olapsync_reports_requests_total"
        assert value(found, count, route="/report", method="POST", status="200") == 2
        assert value(found, count, route="/report", method="POST", status="404") == 1
        assert value(found, count, route="/report", method="POST", status="422") == 1
        assert value(found, count, route="unmatched", method="GET", status="404") == 1
        assert value(found, count, route="/health", method="GET", status="200") == 1
        duration = "olapsync_reports_request_duration_seconds_count"
        assert value(found, duration, route="/report") == 4
        queries = "olapsync_reports_clickhouse_query_duration_seconds_count"
        assert value(found, queries, query="report") == 3  # the 422 never reached ClickHouse
        assert value(found, "olapsync_reports_auth_failures_total", reason="expired") == 0
    # Each app counts for itself: nothing leaks from the app above.
    with TestClient(create_app(data[0])) as fresh:
        assert value(samples(fresh), count, route="/report", method="POST", status="200") == 0


def test_cors_only_for_the_listed_origins(data: tuple[Config, Source]) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    settings = ServiceSettings(cors_origins=("https://portal.example",))
    with TestClient(create_app(data[0], settings=settings)) as client:
        allowed = client.options(
            "/report", headers={"Origin": "https://portal.example", **preflight}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://portal.example"
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        other = client.options("/report", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in other.headers
        simple = client.post(
            "/report", json={"user_id": 3}, headers={"Origin": "https://portal.example"}
        )
        assert simple.headers["access-control-allow-origin"] == "https://portal.example"
    with TestClient(create_app(data[0])) as client:  # off by default
        response = client.post(
            "/report", json={"user_id": 3}, headers={"Origin": "https://portal.example"}
        )
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers
        assert (
            client.options(
                "/report", headers={"Origin": "https://portal.example", **preflight}
            ).status_code
            == 405
        )
