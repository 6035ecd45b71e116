"""Test-only: enough of ClickHouse's HTTP interface, backed by chDB, for clickhouse-connect's
HTTP client — so the tests exercise the HTTP transport without a ClickHouse server.

Supported: `GET /ping`; queries in the `query` parameter and/or the body; `param_*` bound
parameters; settings as URL parameters; Native/Arrow/TSV (any format chDB speaks) in and out;
`INSERT ... FORMAT X` with the data in the body (Content-Encoding lz4/zstd/gzip/br);
user/password (basic auth or X-ClickHouse-User/Key); errors as ClickHouse sends them
(HTTP 500/403 with `X-ClickHouse-Exception-Code`); a second, read-only user (`readonly`):
its queries run in a chDB session of their own with `readonly = 1`, so the engine itself
refuses what such a ClickHouse user may not do.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb

# URL parameters that steer the HTTP transport, not the query.
TRANSPORT = {
    "query",
    "database",
    "query_id",
    "session_id",
    "session_timeout",
    "session_check",
    "compress",
    "decompress",
    "wait_end_of_query",
    "send_progress_in_http_headers",
    "http_headers_progress_interval_ms",
    "enable_http_compression",
    "default_format",
    "client_protocol_version",
    "buffer_size",
    "user",
    "password",
    "quota_key",
    "role",
}
_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<table>[^\s(]+)\s*(?P<cols>\([^)]*\))?\s*(?:SETTINGS\s+.*?)?"
    r"FORMAT\s+(?P<fmt>\w+)\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CODE = re.compile(r"Code:\s*(\d+)")


def _decode(body: bytes, encoding: str | None) -> bytes:
    if not encoding or encoding == "identity":
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "lz4":
        import lz4.frame

        return bytes(lz4.frame.decompress(body))
    if encoding == "zstd":
        import zstandard

        return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(body))
    if encoding == "br":
        import brotli

        return bytes(brotli.decompress(body))
    raise ValueError(f"unsupported Content-Encoding {encoding}")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class ChdbHttpServer:
    """Serve the chDB engine at `path` over HTTP on 127.0.0.1:`port` (0: any free port)."""

    def __init__(
        self,
        path: str,
        *,
        user: str = "default",
        password: str = "",
        port: int = 0,
        readonly: tuple[str, str] | None = None,
    ):
        self.path = path
        self.user = user
        self.password = password
        self.readonly = readonly
        self.lock = threading.Lock()
        self.conn = chdb.connect(path)
        # A session of its own: once `readonly = 1` is set it cannot be unset.
        self.readonly_conn = chdb.connect(path) if readonly else None
        if self.readonly_conn is not None:
            self.readonly_conn.query("SET readonly = 1")
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server.handle(self)

            def do_POST(self) -> None:
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"http://{self.user}:{pw}@127.0.0.1:{self.port}"

    def readonly_url(self) -> str:
        assert self.readonly is not None
        user, password = self.readonly
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def __enter__(self) -> ChdbHttpServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.conn.close()
        if self.readonly_conn is not None:
            self.readonly_conn.close()

    # -- one request ----------------------------------------------------------------------
    def _session(self, req: BaseHTTPRequestHandler, params: dict[str, str]) -> Any:
        """The chDB session of the request's user; None when the login is wrong."""
        user = req.headers.get("X-ClickHouse-User") or params.get("user")
        key = req.headers.get("X-ClickHouse-Key") or params.get("password")
        auth = req.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            user, _, key = base64.b64decode(auth[6:]).decode().partition(":")
        login = (user or "default", key or "")
        if login == (self.user, self.password):
            return self.conn
        if self.readonly is not None and login == self.readonly:
            return self.readonly_conn
        return None

    def _reply(
        self,
        req: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        req.send_response(status)
        for key, value in (headers or {}).items():
            req.send_header(key, value)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        self.requests += 1
        parts = urlsplit(req.path)
        if parts.path.rstrip("/") == "/ping":
            self._reply(req, 200, b"Ok.\n")
            return
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(req.headers.get("Content-Length") or 0)
        body = _decode(req.rfile.read(length), req.headers.get("Content-Encoding"))
        conn = self._session(req, params)
        if conn is None:
            message = (
                f"Code: 516. DB::Exception: {self.user}: Authentication failed: "
                "password is incorrect, or there is no user with such name. "
                "(AUTHENTICATION_FAILED)"
            )
            self._reply(req, 403, message.encode(), {"X-ClickHouse-Exception-Code": "516"})
            return
        try:
            out, fmt = self._execute(conn, params, body)
        except Exception as exc:  # the engine's error, as ClickHouse sends it
            text = str(exc)
            start = text.find("Code: ")
            text = text[start:] if start >= 0 else text
            code = _CODE.search(text)
            self._reply(
                req,
                500,
                text.encode(),
                {"X-ClickHouse-Exception-Code": code.group(1) if code else "1001"},
            )
            return
        self._reply(
            req,
            200,
            out,
            {
                "X-ClickHouse-Format": fmt,
                "X-ClickHouse-Timezone": "UTC",
                "X-ClickHouse-Summary": json.dumps({"read_rows": "0", "written_rows": "0"}),
                "X-ClickHouse-Query-Id": params.get("query_id", ""),
                "Content-Type": "application/octet-stream",
            },
        )

    def _execute(self, conn: Any, params: dict[str, str], body: bytes) -> tuple[bytes, str]:
        query = params.get("query", "")
        data = b""
        if query:
            data = body
        else:
            text_end = body.find(b"\n") if body.lstrip()[:6].upper() == b"INSERT" else -1
            if text_end >= 0:
                query, data = body[:text_end].decode(), body[text_end + 1 :]
            else:
                query = body.decode()
        settings = {
            k: v for k, v in params.items() if k not in TRANSPORT and not k.startswith("param_")
        }
        bound = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        database = params.get("database")
        with self.lock:
            applied = []
            try:
                if database:
                    conn.query(f"USE `{database}`")
                for key, value in settings.items():
                    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                        conn.query(f"SET {key} = {_quote(value)}")
                        applied.append(key)
                insert = _INSERT.match(query)
                if insert and data:
                    return self._insert(conn, insert, data), "TabSeparated"
                match = _FORMAT.search(query)
                fmt = match.group(1) if match else params.get("default_format", "TabSeparated")
                result = conn.query(query, fmt, params=bound) if bound else conn.query(query, fmt)
                return result.bytes() if hasattr(result, "bytes") else bytes(result), fmt
            finally:
                for key in applied:
                    conn.query(f"SET {key} = DEFAULT")
                if database:
                    conn.query("USE default")

    def _insert(self, conn: Any, insert: re.Match[str], data: bytes) -> bytes:
        with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as tmp:
            tmp.write(data)
        try:
            cols = insert.group("cols") or ""
            conn.query(
                f"INSERT INTO {insert.group('table')} {cols} FROM INFILE {_quote(tmp.name)} "
                f"FORMAT {insert.group('fmt')}"
            )
        finally:
            os.unlink(tmp.name)
        return b""
