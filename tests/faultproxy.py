"""A fault injector in front of a real influxd, for drills: the writes still land in the real
database, but this proxy can answer them with an error status instead, or late. It runs on a
thread of the test, on a loopback port of its own."""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sim.launch import free_port


class FaultProxy:
    """Forward every request to `upstream`; `fail` answers the next writes with these HTTP
    statuses instead (they never reach influxd), `slow` forwards the next writes and answers
    each only after that many seconds (the write has landed: a client that gave up and
    retries writes it twice), and every write before `slow_until` takes `slow_s`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fail: deque[int] = deque()
        self.slow: deque[float] = deque()
        self.slow_until = 0.0  # writes until then (time.monotonic) all take slow_s
        self.slow_s = 10.0
        self.writes = self.failed = self.delayed = self.landed = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                proxy.forward(self, None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.forward(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where clients should write."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FaultProxy:
        """Serve on a thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def forward(self, h: BaseHTTPRequestHandler, body: bytes | None) -> None:
        """Answer one request: an injected failure, or influxd's answer (maybe late)."""
        delay, status = 0.0, 0
        if h.path.startswith("/write"):
            with self.lock:
                self.writes += 1
                if self.fail:
                    status, self.failed = self.fail.popleft(), self.failed + 1
                elif self.slow:
                    delay, self.delayed = self.slow.popleft(), self.delayed + 1
                elif time.monotonic() < self.slow_until:
                    delay, self.delayed = self.slow_s, self.delayed + 1
        if status:
            self._answer(h, status, b'{"error":"injected by the drill"}')
            return
        request = urllib.request.Request(self.upstream + h.path, data=body, method=h.command,
                                         headers={"Content-Type": "text/plain"})
        try:
            with urllib.request.urlopen(request, timeout=120) as resp:
                code, data = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            code, data = exc.code, exc.read()
        except OSError:
            code, data = 503, b'{"error":"influxd unreachable"}'
        if delay and code == 204:
            with self.lock:
                self.landed += 1  # in influxd, its answer held back
            # slow storage delays writes; a refusal (413 on the body's size, 400 on its
            # content) is decided while reading the body, before the engine, so it is not
            time.sleep(delay)
        self._answer(h, code, data)

    @staticmethod
    def _answer(h: BaseHTTPRequestHandler, code: int, data: bytes) -> None:
        with contextlib.suppress(OSError):  # the client may have given up waiting
            h.send_response(code)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
