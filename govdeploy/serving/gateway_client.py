"""What the flows ask of a running gateway: reconcile now, and its metrics of one model.

Requests carry the API key of a configured principal from ``<state>/keys/api/<principal>.key``.
"""

from __future__ import annotations

import httpx

from govdeploy.config.settings import Settings
from govdeploy.errors import ConfigError, GovdeployError
from govdeploy.serving.canary import VersionStats, parse_metrics


def api_key(settings: Settings, principal: str) -> str:
    path = settings.keys_dir / "api" / f"{principal}.key"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"API key of {principal!r} ({path}) cannot be read: {exc}; create it with 'govdeploy keys init'"
        ) from None


def reload(settings: Settings, model: str) -> str | None:
    """Ask the gateway to reconcile with the registry at once; None, or why it did not (it then
    applies the change at its next poll)."""
    try:
        response = httpx.post(
            f"{settings.gateway_url}/v1/models/{model}/reload",
            headers={"X-API-Key": api_key(settings, "deployer")},
            timeout=60,
        )
        response.raise_for_status()
    except (httpx.HTTPError, GovdeployError) as exc:
        return f"gateway reload failed ({exc}); it applies the change at its next poll"
    return None


def model_metrics(settings: Settings, model: str) -> dict[str, VersionStats]:
    """The gateway's cumulative Prometheus counters of ``model``, per version."""
    try:
        response = httpx.get(
            f"{settings.gateway_url}/metrics", headers={"X-API-Key": api_key(settings, "auditor")}, timeout=30
        )
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise GovdeployError(f"gateway metrics at {settings.gateway_url} unreadable: {exc}") from exc
    return parse_metrics(response.text, model)


def health(settings: Settings) -> dict[str, object]:
    """What the gateway's /healthz tells a deployer (status, problems, I/O log and its shipping
    backlog), or ``{"status": "unreachable", "problems": [why]}`` when it cannot be asked."""
    try:
        response = httpx.get(
            f"{settings.gateway_url}/healthz",
            headers={"X-API-Key": api_key(settings, "deployer")},
            timeout=settings.dependency_timeout_seconds,
        )
        body = response.json()
    except (httpx.HTTPError, GovdeployError, ValueError) as exc:
        return {"status": "unreachable", "problems": [f"gateway at {settings.gateway_url}: {exc}"]}
    if not isinstance(body, dict) or not isinstance(body.get("problems"), list):
        return {
            "status": "unknown",
            "problems": [f"gateway at {settings.gateway_url} answered {response.text[:200]!r}"],
        }
    return body
