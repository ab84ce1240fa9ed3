"""Health checks of the stack's components: plain HTTP probes, and the authentication probe that
tells a server which demands credentials from one that answers anybody."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator

import httpx

Check = Callable[[], bool]
BasicAuth = tuple[str, str]
Auth = BasicAuth | httpx.Auth


class BearerAuth(httpx.Auth):
    """An API key sent as ``Authorization: Bearer`` (Prefect Cloud)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def prefect_client_auth() -> Auth | None:
    """How Prefect's own client authenticates, from its variables: ``PREFECT_API_KEY`` (bearer) or
    ``PREFECT_API_AUTH_STRING`` (basic); None without either."""
    if key := os.environ.get("PREFECT_API_KEY"):
        return BearerAuth(key)
    user, colon, secret = os.environ.get("PREFECT_API_AUTH_STRING", "").partition(":")
    return (user, secret) if colon else None


def _get(url: str, auth: Auth | None) -> httpx.Response | None:
    try:
        return httpx.get(url, auth=auth, timeout=2.0)
    except httpx.HTTPError:
        return None


def http_ok(url: str, expect: str | None = None, auth: Auth | None = None) -> Check:
    """200 (with ``expect`` in the body)."""

    def check() -> bool:
        response = _get(url, auth)
        return (
            response is not None
            and response.status_code == 200
            and (expect is None or expect in response.text)
        )

    return check


def demands_credentials(url: str, auth: BasicAuth | None) -> Check:
    """``url`` answers 200 to ``auth`` and 401 to an anonymous request.

    A server started without authentication (before its credentials existed) fails this check, so
    ``status`` reports it unhealthy and ``up`` restarts it with authentication.
    """

    def check() -> bool:
        if auth is None:
            return False
        anonymous = _get(url, None)
        if anonymous is None or anonymous.status_code != 401:
            return False
        authenticated = _get(url, auth)
        return authenticated is not None and authenticated.status_code == 200

    return check


def deployment_ready(url: str, auth: BasicAuth | None) -> Check:
    """A served deployment is READY while its runner polls the server."""

    def check() -> bool:
        response = _get(url, auth)
        try:
            return (
                response is not None
                and response.status_code == 200
                and response.json().get("status") == "READY"
            )
        except ValueError:
            return False

    return check


def all_ok(checks: list[Check]) -> Check:
    return lambda: all(check() for check in checks)
