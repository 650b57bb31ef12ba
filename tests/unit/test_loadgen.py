"""The load generator's HTTP client reads each response whole, wherever its headers put
Content-Length, and follows the server when it closes the connection."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from bench.loadgen import Connection

RESPONSES = [
    # Content-Length last, as gunicorn sends a bare Flask response
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
    b'{"venues": []}\n',
    # first, and a body that holds a blank line
    b"HTTP/1.1 201 Created\r\nContent-Length: 6\r\nX-Request-ID: a\r\n\r\nab\r\n\r\n",
    # no body at all, then the server closes
    b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
]


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        for batch in (RESPONSES, RESPONSES[:1]):  # a second connection after the close
            conn, _ = listener.accept()
            with conn:
                for response in batch:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(65536)
                    conn.sendall(response)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()
    thread.join(timeout=5)
    listener.close()


def test_responses_are_read_by_their_content_length(server: tuple[str, int]) -> None:
    conn = Connection(*server)
    assert conn.request("GET", "/a", None, {}) == (200, b'{"venues": []}\n')
    assert conn.request("POST", "/b", b"{}", {"Content-Type": "application/json"}) == (
        201,
        b"ab\r\n\r\n",
    )
    assert conn.request("GET", "/c", None, {}) == (204, b"")
    # The server closed that connection: the next request goes over a new one.
    assert conn.request("GET", "/a", None, {}) == (200, b'{"venues": []}\n')
    conn.close()
