"""Prometheus metrics (prometheus-client) and the access log, one line and one count per
request.

Each app has its own `CollectorRegistry`, so apps (and tests) never share counts. A client
that hangs up before its request is read is logged and counted with status 499 ("client
closed request", the code nginx uses): it is not a server error, and no answer reaches it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("reports.access")

CLIENT_CLOSED = 499
# Reports take milliseconds; the top buckets catch a cold or overloaded ClickHouse.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A token seen before takes microseconds, a new one a tenth of a millisecond; a JWKS fetch
# takes the top buckets.
AUTH_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 1.5e-4, 2e-4, 3e-4, 5e-4, 1e-3, 1e-2, 0.1, 1.0, 5.0)
AUTH_REASONS = (
    "missing",
    "malformed",
    "algorithm",
    "unknown_key",
    "signature",
    "expired",
    "not_yet_valid",
    "issuer",
    "audience",
    "missing_claim",
    "not_access_token",
    "invalid",
    "keys_unavailable",
    "forbidden",
)


class Metrics:
    """The service's metrics, in a registry of their own.

    - `olapsync_reports_requests_total{route,method,status}`
    - `olapsync_reports_request_duration_seconds{route}`
    - `olapsync_reports_clickhouse_query_duration_seconds{query}`
    - `olapsync_reports_pool_wait_seconds` and `olapsync_reports_pool_timeouts_total`
    - `olapsync_reports_auth_duration_seconds` (checking a bearer token)
    - `olapsync_reports_auth_failures_total{reason}` (401s and 503s of sign-in, 403s)
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        prefix = "olapsync_reports_"
        self.requests = Counter(
            prefix + "requests",
            "HTTP requests by route, method and status (499: the client hung up).",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            prefix + "request_duration_seconds",
            "Time from a request's start to its last byte sent, by route.",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.query = Histogram(
            prefix + "clickhouse_query_duration_seconds",
            "Time ClickHouse took to answer, by query.",
            ["query"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.pool_wait = Histogram(
            prefix + "pool_wait_seconds",
            "Time a request waited for a free ClickHouse client.",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.pool_timeouts = Counter(
            prefix + "pool_timeouts",
            "Requests answered 503 busy because no ClickHouse client came free.",
            registry=self.registry,
        )
        self.auth = Histogram(
            prefix + "auth_duration_seconds",
            "Time to check a request's bearer token (a JWKS fetch included, when one was due).",
            buckets=AUTH_BUCKETS,
            registry=self.registry,
        )
        self.auth_failures = Counter(
            prefix + "auth_failures",
            "Requests refused by sign-in, by reason.",
            ["reason"],
            registry=self.registry,
        )
        for reason in AUTH_REASONS:
            self.auth_failures.labels(reason)  # zero series, so dashboards see every reason

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


class Observe:
    """ASGI middleware: per request, one access-log line (method, path, status,
    milliseconds, client address: never headers, query strings or bodies) and its metrics.

    Args:
        app: the app to wrap.
        metrics: where to count.
        routes: the paths counted under their own label; others count as `unmatched` (a
            scanner's random paths must not create a series each).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Iterable[str]):
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            seconds = time.perf_counter() - started
            path = scope["path"]
            route = path if path in self.routes else "unmatched"
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(seconds)
            client = scope.get("client")
            access_log.info(
                "method=%s path=%s status=%d ms=%.1f client=%s%s",
                scope["method"],
                path[:200],
                status,
                seconds * 1000,
                client[0] if client else "-",
                " (client closed the request)" if status == CLIENT_CLOSED else "",
                extra={
                    "method": scope["method"],
                    "path": path[:200],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
