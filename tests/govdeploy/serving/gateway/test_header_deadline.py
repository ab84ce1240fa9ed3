"""Slow request headers: a real uvicorn server with the gateway's HTTP protocol closes the connection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from govdeploy.serving.gateway.server import HeaderDeadline

pytestmark = pytest.mark.integration


class QuickDeadline(HeaderDeadline):
    timeout = 0.5


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    config = uvicorn.Config(
        hello, host="127.0.0.1", port=0, http=QuickDeadline, timeout_keep_alive=5, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(10)


def closed_after(connection: socket.socket, limit: float) -> float | None:
    """Seconds until the server closed ``connection`` (reading and dropping what it sent), or None."""
    connection.settimeout(limit)
    started = time.monotonic()
    try:
        while connection.recv(4096):
            pass
    except TimeoutError:
        return None
    return time.monotonic() - started


def answer(connection: socket.socket) -> bytes:
    """One whole response of ``hello`` (it may come in several segments)."""
    connection.settimeout(5)
    data = b""
    while not data.endswith(b"\r\n\r\nok"):
        chunk = connection.recv(4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


def test_a_connection_without_complete_headers_is_closed(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(b"POST /v1/models/m/predict HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        waited = closed_after(connection, 5)
    assert waited is not None and waited < 2


def test_the_next_request_on_a_kept_alive_connection_has_a_deadline_too(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n")
        assert answer(connection).startswith(b"HTTP/1.1 200")
        connection.sendall(b"GET / HTTP/1.1\r\nHost: ")  # then nothing more, within the keep-alive time
        waited = closed_after(connection, 4)
    assert waited is not None and waited < 2


def test_a_prompt_client_is_answered(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: ")
        time.sleep(0.3)
        connection.sendall(b"gateway\r\n\r\n")
        assert answer(connection).startswith(b"HTTP/1.1 200")
        time.sleep(0.3)  # 0.6 s after the first request began: its deadline was disarmed
        connection.sendall(b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n")
        assert answer(connection).startswith(b"HTTP/1.1 200")
