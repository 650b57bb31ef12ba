"""A webhook receiver on loopback for the tests: a real HTTP server in a thread."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


class Receiver:
    """A webhook receiver on loopback: answers the queued statuses in turn (then 200), after
    `delay` seconds; records every request and notes when one delivery (path and webhook-id),
    or one path, was in flight twice at once. `hold()` keeps every answer back until
    `release()`: a delivery stays in flight for as long as a test needs (a restart's worth).
    `keep_alive`: HTTP/1.1, connections stay open between requests; `peers` records the client
    address (host, port) of every request, so a test sees which connection each came on."""

    def __init__(self, keep_alive: bool = False) -> None:
        self.answers: list[int] = []
        self.delay = 0.0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.overlaps: list[str] = []
        self.max_in_flight = 0
        self.peers: list[tuple[str, int]] = []
        self._in_flight: list[str] = []
        self._lock = threading.Lock()
        self._gate = threading.Event()
        self._gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                # one delivery (this endpoint, this event), and this endpoint
                keys = [f"{self.path} {headers.get('webhook-id')}", self.path]
                with receiver._lock:
                    receiver.overlaps += [k for k in keys if k in receiver._in_flight]
                    receiver._in_flight += keys
                    receiver.max_in_flight = max(
                        receiver.max_in_flight, len(receiver._in_flight) // 2
                    )
                    receiver.requests.append((self.path, headers, body))
                    receiver.peers.append(self.client_address[:2])
                    status = receiver.answers.pop(0) if receiver.answers else 200
                receiver._gate.wait(timeout=60)
                time.sleep(receiver.delay)
                with receiver._lock:
                    for k in keys:
                        receiver._in_flight.remove(k)
                try:
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("location", "/elsewhere")
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the worker gave up waiting (a timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def hold(self) -> None:
        """Answer nothing (the requests still arrive and are recorded) until `release()`."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every request's payload, each verified with the receiver-side library."""
        hook = Webhook(secret)
        return [hook.verify(body, headers) for _path, headers, body in self.requests]

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
