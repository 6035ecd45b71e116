"""The reports service: `POST /report`, `GET /health` and `GET /openapi.json` over Starlette.

Handlers parse and check the request on the event loop and run the blocking ClickHouse query in
Starlette's threadpool, on a client taken from a small pool (chDB serialises calls per client, so
a pool lets requests run side by side). Anything a client can send gets a 4xx with a `detail`
that says what was wrong, never a 5xx; a ClickHouse failure is a 503.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from olapsync.clickhouse import Target
from olapsync.config import Config
from olapsync.errors import OlapsyncError, TargetError
from olapsync.queries import Reports, UnknownUserError, UserReport
from olapsync.window import to_utc
from reports.openapi import OPENAPI

log = logging.getLogger("reports")
access_log = logging.getLogger("reports.access")

MAX_BODY = 64 * 1024
INT32 = (-(2**31), 2**31 - 1)
FIELDS = {"user_id", "start_ts", "end_ts"}


class BadRequest(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _parse_ts(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(422, f"{name} must be an ISO-8601 string, got {type(value).__name__}.")
    try:
        return to_utc(datetime.fromisoformat(value.strip()))
    except (ValueError, OverflowError):
        raise BadRequest(
            422, f"{name} {value[:64]!r} is not an ISO-8601 timestamp, e.g. 2026-01-01T00:00:00Z."
        ) from None


def parse_report_request(body: bytes) -> tuple[int, datetime | None, datetime | None]:
    """Check a `POST /report` body; raise `BadRequest` saying what is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise BadRequest(400, "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest(422, f"The body must be a JSON object, got {type(data).__name__}.")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        names = ", ".join(repr(u[:40]) for u in unknown[:5])
        raise BadRequest(422, f"Unknown field(s) {names}: allowed are user_id, start_ts, end_ts.")
    if "user_id" not in data:
        raise BadRequest(422, "user_id is required.")
    user_id = data["user_id"]
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise BadRequest(422, f"user_id must be an integer, got {type(user_id).__name__}.")
    if not INT32[0] <= user_id <= INT32[1]:
        raise BadRequest(422, f"user_id {user_id} is outside the Int32 range.")
    start = _parse_ts(data.get("start_ts"), "start_ts")
    end = _parse_ts(data.get("end_ts"), "end_ts")
    if start is not None and end is not None and start > end:
        raise BadRequest(422, "start_ts is after end_ts.")
    return user_id, start, end


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise BadRequest(413, f"The body is larger than {MAX_BODY} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest(413, f"The body is larger than {MAX_BODY} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


class ClientPool:
    """A few ClickHouse targets shared by the request threads, one per request at a time."""

    def __init__(self, config: Config, size: int = 4):
        self.config = config
        # Last in, first out: at low concurrency the same (warm) client serves every request.
        self._idle: queue.LifoQueue[Target] = queue.LifoQueue()
        self._all: list[Target] = []
        try:
            for _ in range(size):
                target = Target(config, create_database=False)
                self._all.append(target)
                self._idle.put(target)
        except BaseException:
            self.close()
            raise

    @contextlib.contextmanager
    def reports(self) -> Iterator[Reports]:
        target = self._idle.get()
        try:
            yield Reports(target=target)
        finally:
            self._idle.put(target)

    def close(self) -> None:
        for target in self._all:
            target.close()
        self._all.clear()


def _report(
    pool: ClientPool, user_id: int, start: datetime | None, end: datetime | None
) -> UserReport:
    with pool.reports() as reports:
        return reports.user_report(user_id, start, end)


def _healthy(pool: ClientPool) -> bool:
    with pool.reports() as reports:
        try:
            return bool(reports.target.client.ping())
        except Exception:
            return False


async def report(request: Request) -> Response:
    try:
        user_id, start, end = parse_report_request(await _read_body(request))
        result = await run_in_threadpool(_report, request.app.state.pool, user_id, start, end)
    except BadRequest as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)
    except UnknownUserError:
        return JSONResponse({"detail": f"User {user_id} not found."}, status_code=404)
    except TargetError as exc:
        log.error("report query failed: %s", exc)
        return JSONResponse({"detail": "ClickHouse is unavailable; try again."}, status_code=503)
    return JSONResponse(asdict(result))


async def health(request: Request) -> Response:
    ok = await run_in_threadpool(_healthy, request.app.state.pool)
    return JSONResponse({"status": "ok" if ok else "unavailable"}, status_code=200 if ok else 503)


async def openapi(request: Request) -> Response:
    return JSONResponse(OPENAPI)


class AccessLog:
    """One structured line per request: method, path, status, milliseconds. No bodies."""

    def __init__(self, app: ASGIApp):
        self.app = app

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
            ms = (time.perf_counter() - started) * 1000
            client = scope.get("client")
            access_log.info(
                "method=%s path=%s status=%d ms=%.1f client=%s",
                scope["method"],
                scope["path"],
                status,
                ms,
                client[0] if client else "-",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(ms, 1),
                },
            )


async def _unexpected(request: Request, exc: Exception) -> Response:
    # A bug, not a bad request: say so without leaking details; the log has the traceback.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "Internal error."}, status_code=500)


def create_app(config: Config | None = None, *, pool: ClientPool | None = None) -> Starlette:
    """The reports app. With `pool`, it uses that one; else it opens one in its lifespan.

    Args:
        config: where the data is; defaults to `Config.from_env()`.
        pool: an open `ClientPool` (the CLI opens it first to report errors clearly).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = pool is None
        app.state.pool = pool if pool is not None else ClientPool(config or Config.from_env())
        try:
            yield
        finally:
            if own:
                app.state.pool.close()

    app = Starlette(
        routes=[
            Route("/report", report, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers={Exception: _unexpected},
    )
    app.add_middleware(AccessLog)
    return app


__all__ = ["BadRequest", "ClientPool", "OlapsyncError", "create_app", "parse_report_request"]
