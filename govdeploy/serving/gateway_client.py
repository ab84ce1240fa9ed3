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
    """Ask every gateway replica to reconcile with the serving record at once; None, or which did not
    and why (they apply the change at their next poll)."""
    failed = []
    for url in settings.gateway_urls:
        try:
            response = httpx.post(
                f"{url}/v1/models/{model}/reload",
                headers={"X-API-Key": api_key(settings, "deployer")},
                timeout=60,
            )
            response.raise_for_status()
        except (httpx.HTTPError, GovdeployError) as exc:
            failed.append(f"{url}: {exc}")
    if failed:
        return f"gateway reload failed ({'; '.join(failed)}); they apply the change at their next poll"
    return None


def model_metrics(settings: Settings, model: str) -> dict[str, VersionStats]:
    """The cumulative Prometheus counters of ``model`` per version, summed over every gateway replica;
    GovdeployError when one cannot be read (a canary must not judge part of the traffic)."""
    total: dict[str, VersionStats] = {}
    for url in settings.gateway_urls:
        try:
            response = httpx.get(
                f"{url}/metrics", headers={"X-API-Key": api_key(settings, "auditor")}, timeout=30
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise GovdeployError(f"gateway metrics at {url} unreadable: {exc}") from exc
        for version, stats in parse_metrics(response.text, model).items():
            total[version] = total[version].plus(stats) if version in total else stats
    return total


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
