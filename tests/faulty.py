"""Test-only: an HTTP proxy in front of a ClickHouse HTTP endpoint (tests/chhttp.py) that
fails chosen statements the ways a network or a busy server does, so that retries are
tested against real connections and real answers rather than mocks of olapsync's code.

A `Fault` matches a statement by a regular expression on its text (the `query` URL
parameter, or the body when it is plain text) and does one of:
- `reset`: close the connection without forwarding (nothing reached the server);
- `lose_answer`: forward, let the server execute it, then close the connection before the
  answer (the statement landed, the client never hears so);
- `error`: answer as ClickHouse does when it refuses a statement: HTTP 500 with
  `X-ClickHouse-Exception-Code: <code>` and "Code: <code>. DB::Exception: ..." (nothing
  reached the server).
Each fault fires `times` times, then lets matching statements through.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class Fault:
    pattern: str
    action: Literal["reset", "lose_answer", "error"]
    code: int = 0
    name: str = "INJECTED"
    times: int = 1


class FaultyProxy:
    """Forward HTTP requests to 127.0.0.1:`upstream_port`, failing those that match a fault.

    Attributes:
        statements: the text of every statement that reached the proxy, in order.
        fired: (action, statement) for every fault that fired.
    """

    def __init__(self, upstream_port: int, faults: list[Fault] | None = None):
        self.upstream_port = upstream_port
        self.faults = list(faults or [])
        self.statements: list[str] = []
        self.fired: list[tuple[str, str]] = []
        self._guard = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            def do_POST(self) -> None:
                proxy.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def __enter__(self) -> FaultyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def count(self, pattern: str) -> int:
        """How many statements matching `pattern` reached the proxy."""
        return sum(1 for s in self.statements if re.search(pattern, s, re.IGNORECASE | re.DOTALL))

    # -- one request ----------------------------------------------------------------------
    @staticmethod
    def _body(req: BaseHTTPRequestHandler) -> bytes:
        if req.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(req.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    req.rfile.readline()
                    return b"".join(chunks)
                chunks.append(req.rfile.read(size))
                req.rfile.readline()
        return req.rfile.read(int(req.headers.get("Content-Length") or 0))

    def _fault_for(self, statement: str) -> Fault | None:
        with self._guard:
            self.statements.append(statement)
            for fault in self.faults:
                if fault.times > 0 and re.search(
                    fault.pattern, statement, re.IGNORECASE | re.DOTALL
                ):
                    fault.times -= 1
                    self.fired.append((fault.action, statement))
                    return fault
        return None

    @staticmethod
    def _hang_up(req: BaseHTTPRequestHandler) -> None:
        req.close_connection = True
        # SO_LINGER 0: the client sees a reset, as when a server or a load balancer dies.
        req.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        req.connection.close()

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        body = self._body(req)
        params = dict(parse_qsl(urlsplit(req.path).query, keep_blank_values=True))
        text = params.get("query", "")
        if not req.headers.get("Content-Encoding"):
            text += "\n" + body.decode(errors="replace")
        fault = self._fault_for(text.strip()) if urlsplit(req.path).path != "/ping" else None
        if fault is not None and fault.action == "reset":
            self._hang_up(req)
            return
        if fault is not None and fault.action == "error":
            message = (
                f"Code: {fault.code}. DB::Exception: injected by the test proxy. ({fault.name})"
            )
            payload = message.encode()
            req.send_response(500)
            req.send_header("X-ClickHouse-Exception-Code", str(fault.code))
            req.send_header("Content-Length", str(len(payload)))
            req.end_headers()
            req.wfile.write(payload)
            return
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=120)
        try:
            headers = {k: v for k, v in req.headers.items() if k.lower() not in HOP_BY_HOP}
            headers["Content-Length"] = str(len(body))
            upstream.request(req.command, req.path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
        finally:
            upstream.close()
        if fault is not None:  # lose_answer: it ran; the client never hears
            self._hang_up(req)
            return
        req.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                req.send_header(key, value)
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        req.wfile.write(payload)
