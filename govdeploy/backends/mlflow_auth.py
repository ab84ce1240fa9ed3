"""Users of an MLflow server that runs the basic-auth app (``mlflow server --app-name basic-auth``).

Every call names the server and the admin it acts as: nothing here reads MLflow's credential
environment variables, so the stack can create users before its own environment is set. Users
get no grants: what they may do is the server's ``default_permission`` (READ on the local stack).
Passwords travel only in request bodies and Authorization headers, never in messages.
"""

from __future__ import annotations

import httpx

from govdeploy.errors import RegistryError

USERS = "/api/2.0/mlflow/users"
TIMEOUT = 10.0


def _call(
    method: str,
    url: str,
    auth: tuple[str, str],
    params: dict[str, str] | None = None,
    body: dict[str, str] | None = None,
) -> httpx.Response:
    try:
        return httpx.request(method, url, auth=auth, params=params, json=body, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise RegistryError(
            f"MLflow at {url.split('/api/')[0]} is unreachable ({type(exc).__name__}); "
            "start the stack with 'govdeploy up'"
        ) from exc


def _refused(action: str, tracking_uri: str, response: httpx.Response) -> RegistryError:
    fix = {
        401: "the server does not accept the admin credential (its auth database was created with "
        "another password)",
        403: "the acting user is not an MLflow admin",
    }.get(response.status_code, "see the MLflow server's log")
    return RegistryError(f"{action} at {tracking_uri} failed with HTTP {response.status_code}; {fix}")


def authenticates(tracking_uri: str, username: str, password: str) -> bool:
    """Whether the server accepts this username and password."""
    response = _call("GET", f"{tracking_uri}{USERS}/current", (username, password))
    return response.status_code == 200


def ensure_user(tracking_uri: str, admin: tuple[str, str], username: str, password: str) -> str:
    """Make ``username`` a (non-admin) user whose password is ``password``; return what was done."""
    if authenticates(tracking_uri, username, password):
        return "exists"
    found = _call("GET", f"{tracking_uri}{USERS}/get", admin, params={"username": username})
    if found.status_code == 404:
        created = _call(
            "POST", f"{tracking_uri}{USERS}/create", admin, body={"username": username, "password": password}
        )
        if created.status_code != 200:
            raise _refused(f"creating MLflow user {username!r}", tracking_uri, created)
        return "created"
    if found.status_code != 200:
        raise _refused(f"reading MLflow user {username!r}", tracking_uri, found)
    reset = _call(
        "PATCH",
        f"{tracking_uri}{USERS}/update-password",
        admin,
        body={"username": username, "password": password},
    )
    if reset.status_code != 200:
        raise _refused(f"setting the password of MLflow user {username!r}", tracking_uri, reset)
    return "password reset"
