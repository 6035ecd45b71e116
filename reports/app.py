"""The reports service: `POST /report`, `GET /me/report`, `GET /health`, `GET /metrics` and
`GET /openapi.json` over Starlette.

A report request is signed in first (`reports.auth`; 401/503 before the body is read), then
its body or query is decoded through the declared types (`reports.schemas`; 400/408/413/422),
then a ClickHouse client is taken within `pool_timeout` seconds (else 503 "busy") and the
query runs in a worker thread. Who may read what is part of the query itself: a token
without the admin role gets the report only when the user's `user_uuid` is its `sub`, so no
other user's row leaves ClickHouse, and it gets the same 403 for someone else's id as for an
id that does not exist (it cannot probe which ids exist; admins get 404 for unknown ids).

Anything a client sends gets a 4xx with a `detail` saying what was wrong, never a 5xx; a
client that hangs up is logged and counted as 499, not as an error; ClickHouse failures are
503.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, TypeVar

import anyio
from anyio import to_thread
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from olapsync.config import Config
from olapsync.errors import OlapsyncError, TargetError
from olapsync.queries import Reports, UnknownUserError, UserReport
from reports.auth import AuthError, KeysUnavailable, Principal, Verifier
from reports.metrics import CLIENT_CLOSED, Metrics, Observe
from reports.openapi import openapi_document
from reports.pool import ClientPool, PoolBusy
from reports.schemas import (
    MAX_BODY,
    BadRequest,
    ReportRequest,
    decode_report_request,
    decode_window_query,
    encode_report,
)
from reports.settings import ServiceSettings

log = logging.getLogger("reports")

T = TypeVar("T")
FORBIDDEN = "This token may read only its own user's report."
ROUTES = ("/report", "/me/report", "/health", "/metrics", "/openapi.json")


def parse_report_request(body: bytes) -> tuple[int, datetime | None, datetime | None]:
    """Check a `POST /report` body: (user_id, start, end) in UTC; `BadRequest` says why not."""
    request = decode_report_request(body)
    return (request.user_id, *request.bounds())


def _state(request: Request) -> Any:
    return request.app.state


async def _principal(request: Request) -> Principal | None:
    """The signed-in caller; None when the service runs without sign-in."""
    state = _state(request)
    verifier: Verifier | None = state.verifier
    if verifier is None:
        return None
    started = time.perf_counter()
    try:
        return await verifier.authenticate(request.headers.get("authorization"))
    except AuthError as exc:
        state.metrics.auth_failures.labels(exc.reason).inc()
        challenge = "Bearer"
        if exc.token_sent:  # RFC 6750 §3.1: name the error only when a token was sent
            challenge = f'Bearer error="invalid_token", error_description="{exc.description}"'
        raise BadRequest(401, exc.description, {"WWW-Authenticate": challenge}) from None
    except KeysUnavailable:
        state.metrics.auth_failures.labels("keys_unavailable").inc()
        raise BadRequest(
            503,
            "The sign-in keys cannot be fetched right now; try again shortly.",
            {"Retry-After": "30"},
        ) from None
    finally:
        state.metrics.auth.observe(time.perf_counter() - started)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    too_big = BadRequest(413, f"The body is larger than {MAX_BODY} bytes.", {"Connection": "close"})
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise too_big
    timeout = _state(request).settings.body_timeout
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY:
                    raise too_big
                chunks.append(chunk)
    except TimeoutError:
        # A body dribbled in slowly holds a connection and a task: answer and close.
        raise BadRequest(
            408, f"The body did not arrive within {timeout:g} s.", {"Connection": "close"}
        ) from None
    return b"".join(chunks)


def _timed(metrics: Metrics, what: str, pool: ClientPool, call: Callable[[Reports], T]) -> T:
    with pool.reports() as reports:
        started = time.perf_counter()
        try:
            return call(reports)
        finally:
            metrics.query.labels(what).observe(time.perf_counter() - started)


async def _query(request: Request, what: str, call: Callable[[Reports], T]) -> T:
    """Run `call` on a pooled client in a worker thread, after at most `pool_timeout` seconds
    of waiting (on the event loop) for a free client."""
    state = _state(request)
    started = time.perf_counter()
    try:
        with anyio.fail_after(state.settings.pool_timeout):
            await state.slots.acquire()
    except TimeoutError:
        raise _busy(state) from None
    finally:
        state.metrics.pool_wait.observe(time.perf_counter() - started)
    try:
        return await to_thread.run_sync(
            _timed, state.metrics, what, state.pool, call, limiter=state.query_threads
        )
    except PoolBusy:  # a client taken outside the service (a pool shared with a notebook)
        raise _busy(state) from None
    except TargetError as exc:
        log.error("%s query failed: %s", what, exc)
        raise BadRequest(503, "ClickHouse is unavailable; try again.") from None
    finally:
        state.slots.release()


def _busy(state: Any) -> BadRequest:
    state.metrics.pool_timeouts.inc()
    return BadRequest(
        503,
        f"The service is busy: no ClickHouse client came free in "
        f"{state.settings.pool_timeout:g} s; try again.",
        {"Retry-After": "1"},
    )


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


async def report(request: Request) -> Response:
    principal = await _principal(request)
    body: ReportRequest = decode_report_request(await _read_body(request))
    start, end = body.bounds()
    owner = None if principal is None or principal.admin else principal.subject
    try:
        result: UserReport = await _query(
            request, "report", lambda r: r.user_report(body.user_id, start, end, owner=owner)
        )
    except UnknownUserError:
        if owner is not None:
            _state(request).metrics.auth_failures.labels("forbidden").inc()
            raise BadRequest(403, FORBIDDEN) from None
        raise BadRequest(404, f"User {body.user_id} not found.") from None
    return _json(encode_report(result))


async def my_report(request: Request) -> Response:
    if _state(request).verifier is None:
        raise BadRequest(
            404,
            "GET /me/report needs sign-in, and this service runs without it: set "
            "OLAPSYNC_OIDC_ISSUER and OLAPSYNC_OIDC_AUDIENCE.",
        )
    principal = await _principal(request)
    assert principal is not None
    start, end = decode_window_query(request.query_params.multi_items()).bounds()
    try:
        result: UserReport = await _query(
            request, "me_report", lambda r: r.user_report_by_uuid(principal.subject, start, end)
        )
    except UnknownUserError:
        raise BadRequest(404, "No user in the users table has this token's subject.") from None
    return _json(encode_report(result))


async def health(request: Request) -> Response:
    state = _state(request)
    ok = False
    # Its own client and thread limiter: never behind reports. A ping that outlasts the
    # wait is left to finish in its thread; the answer is "unavailable" meanwhile.
    with anyio.move_on_after(state.settings.pool_timeout):
        ok = await to_thread.run_sync(
            state.pool.ping, limiter=state.health_threads, abandon_on_cancel=True
        )
    return JSONResponse({"status": "ok" if ok else "unavailable"}, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    registry: Metrics = _state(request).metrics
    return Response(registry.render(), media_type=registry.content_type)


async def openapi(request: Request) -> Response:
    return JSONResponse(_state(request).openapi)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # Nobody is left to read this answer (uvicorn drops it); the status is for the access
    # log and the metrics, which must not count a client's hang-up as a server error.
    return Response(status_code=CLIENT_CLOSED)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # A bug, not a bad request: say so without leaking details; the log has the traceback.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "Internal error."}, status_code=500)


def create_app(
    config: Config | None = None,
    *,
    pool: ClientPool | None = None,
    settings: ServiceSettings | None = None,
    verifier: Verifier | None = None,
) -> Starlette:
    """The reports app. With `pool`, it uses that one; else it opens one in its lifespan.

    Args:
        config: where the data is; defaults to `Config.from_env()`.
        pool: an open `ClientPool` (the CLI opens it first to report errors clearly).
        settings: timeouts, sign-in and CORS; defaults to `ServiceSettings()` (no sign-in,
            loopback).
        verifier: the sign-in check to use instead of the one `settings` describe (tests
            pass one with their own clock).
    """
    settings = settings or ServiceSettings()
    if verifier is None and settings.auth_enabled:
        verifier = Verifier.from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = pool is None
        state = app.state
        state.pool = (
            pool
            if pool is not None
            else ClientPool(
                config or Config.from_env(), size=settings.pool, timeout=settings.pool_timeout
            )
        )
        state.slots = anyio.Semaphore(state.pool.size)
        state.query_threads = anyio.CapacityLimiter(state.pool.size)
        state.health_threads = anyio.CapacityLimiter(2)
        try:
            yield
        finally:
            if own:
                state.pool.close()

    app = Starlette(
        routes=[
            Route("/report", report, methods=["POST"]),
            Route("/me/report", my_report, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers={
            BadRequest: _refused,
            ClientDisconnect: _client_gone,
            Exception: _unexpected,
        },
    )
    app.state.settings = settings
    app.state.verifier = verifier
    app.state.metrics = Metrics()
    app.state.openapi = openapi_document(auth=verifier is not None, issuer=settings.oidc_issuer)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(Observe, metrics=app.state.metrics, routes=ROUTES)
    return app


__all__ = [
    "BadRequest",
    "ClientPool",
    "OlapsyncError",
    "ServiceSettings",
    "create_app",
    "parse_report_request",
]
