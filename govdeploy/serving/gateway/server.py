"""What guards the gateway's connections before the app answers: request headers in time, bodies
within their limit and in time.

``HeaderDeadline`` is the HTTP protocol to run the app with (uvicorn
``--http govdeploy.serving.gateway.server:HeaderDeadline``): it closes connections that do not send
complete request headers within ``header_timeout_seconds``, which uvicorn alone never does.
``LimitedBody`` is the ``receive`` the app gets for one request (``RecordEveryResponse`` in
``govdeploy.serving.gateway.main``): more body bytes than the route's limit get 413, a part that
does not arrive within ``body_timeout_seconds`` 408.
"""

from __future__ import annotations

import asyncio

from fastapi import HTTPException
from starlette.types import Message, Receive, Scope
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from govdeploy.config.settings import get_settings


def declared_length(scope: Scope) -> int | None:
    """The Content-Length of a request, if it has a readable one (the body is counted anyway)."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value) if len(value) < 19 else 2**63
    return None


class LimitedBody:
    """The ``receive`` of one request: at most ``limit`` body bytes (413), each part in time (408)."""

    def __init__(self, receive: Receive, limit: int, timeout: float) -> None:
        self.receive, self.limit, self.timeout = receive, limit, timeout
        self.size, self.complete = 0, False

    async def __call__(self) -> Message:
        if self.complete:  # only a disconnect can come now: wait for it as long as it takes
            return await self.receive()
        try:
            async with asyncio.timeout(self.timeout):  # a timer, not a task per message (wait_for)
                message = await self.receive()
        except TimeoutError:
            raise HTTPException(408, f"request body not received within {self.timeout:g} s") from None
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
            if self.size > self.limit:
                raise HTTPException(413, f"body exceeds the limit of {self.limit} bytes")
        return message


class HeaderDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol that closes a connection whose request line and headers are not
    complete ``header_timeout_seconds`` after it opened or after its previous response (uvicorn
    times out only idle keep-alive connections; a slowly sent body gets 408 from the app)."""

    timeout: float | None = None  # seconds; None: the settings' header_timeout_seconds
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # its headers are complete already
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        timeout = self.timeout or get_settings().header_timeout_seconds
        self._deadline = self.loop.call_later(timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()
