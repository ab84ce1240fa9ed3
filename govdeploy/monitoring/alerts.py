"""Alerts: a JSON POST to the configured webhook, and the gateway's anomaly alerts delivered off the
event loop.

``AlertNotifier.submit`` only appends to a bounded queue; one background thread POSTs each alert
to the webhook (``post_alert``) and hands it to Prefect as an event (``govdeploy.backends.events``).
Neither raises: an unreachable webhook or Prefect server is logged and the gateway keeps serving.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from govdeploy.backends import events
from govdeploy.monitoring.anomalies import ANOMALY_EVENT

log = logging.getLogger("govdeploy.gateway")

Deliver = Callable[[dict[str, Any]], None]


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


def anomaly_event(alert: dict[str, Any]) -> str:
    """Queue ``alert`` as a Prefect event about the model version; returns what happened."""
    model, version = alert["model"], alert["version"]
    return events.emit(
        ANOMALY_EVENT,
        resource={
            "prefect.resource.id": f"govdeploy.model.{model}",
            "prefect.resource.name": model,
            "govdeploy.version": version,
            "govdeploy.kind": alert["kind"],
        },
        related=[
            {
                "prefect.resource.id": f"govdeploy.model.{model}.v{version}",
                "prefect.resource.role": "model-version",
            }
        ],
        payload=alert,
    )


class AlertNotifier:
    """Bounded queue of alerts, delivered by one background thread."""

    def __init__(self, webhook: str | None, *, max_queued: int = 1000, deliver: Deliver | None = None):
        self.webhook = webhook
        self.deliver = deliver or self._deliver
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue(max_queued)
        self.thread: threading.Thread | None = None
        self.sent = 0

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="gateway-alerts", daemon=True)
            self.thread.start()

    def submit(self, alert: dict[str, Any]) -> None:
        """Queue one alert; never blocks (a full queue drops the alert with an error log)."""
        try:
            self.queue.put_nowait({**alert, "time": datetime.now(UTC).isoformat()})
        except queue.Full:
            log.error("alert queue full, alert dropped: %s", alert)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (within ``timeout``) and stop the thread; idempotent."""
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join(timeout)
            self.thread = None
        events.drain(timeout)

    def _run(self) -> None:
        while (alert := self.queue.get()) is not None:
            try:
                self.deliver(alert)
                self.sent += 1
            except Exception:  # a delivery bug must not stop later alerts
                log.exception("alert delivery failed: %s", alert)

    def _deliver(self, alert: dict[str, Any]) -> None:
        what = f"{alert['model']} v{alert['version']} {alert['kind']} ({alert['reason']})"
        webhook = post_alert(self.webhook, alert)
        event = anomaly_event(alert)
        level = logging.WARNING if webhook.startswith(("delivered", "no webhook")) else logging.ERROR
        log.log(level, "anomaly alert %s: webhook: %s; %s", what, webhook, event)
