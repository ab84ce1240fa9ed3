"""Alerts to a configurable webhook (JSON POST)."""

from __future__ import annotations

from typing import Any

import httpx


def post_alert(url: str | None, alert: dict[str, Any], timeout: float = 5.0) -> str:
    """POST ``alert`` to ``url``; returns what happened (never raises: an alert must not break a flow)."""
    if not url:
        return "no webhook configured (GOVDEPLOY_ALERT_WEBHOOK)"
    try:
        response = httpx.post(url, json=alert, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"webhook {url} unreachable: {exc}"
    if response.status_code >= 300:
        return f"webhook {url} answered {response.status_code}"
    return f"delivered to {url}"
