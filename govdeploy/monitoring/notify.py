"""Delivery of the gateway's anomaly alerts, off the event loop.

``AlertNotifier.submit`` only appends to a bounded queue; one background thread POSTs each alert
to the webhook (``govdeploy.alerts.post_alert``) and hands it to Prefect as an event
(``prefect.events.emit_event``, which queues it for Prefect's own events worker thread). Neither
raises: an unreachable webhook or Prefect server is logged and the gateway keeps serving.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from govdeploy.monitoring.alerts import post_alert
from govdeploy.monitoring.anomalies import ANOMALY_EVENT

log = logging.getLogger("govdeploy.gateway")

Deliver = Callable[[dict[str, Any]], None]


def emit_prefect_event(alert: dict[str, Any]) -> str:
    """Queue ``alert`` as a Prefect event about the model; returns what happened, never raises.

    Only with a configured Prefect API: without one, Prefect would start a server of its own.
    """
    try:
        from prefect.events import emit_event
        from prefect.settings import get_current_settings

        if not get_current_settings().api.url:
            return "no Prefect API configured (PREFECT_API_URL): no event"
        model, version = alert["model"], alert["version"]
        event = emit_event(
            event=ANOMALY_EVENT,
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
    except Exception as exc:
        return f"Prefect event not emitted: {type(exc).__name__}: {exc}"
    return "Prefect event queued" if event is not None else "Prefect events are off: no event"


def drain_prefect_events(timeout: float) -> None:
    """Give Prefect's events worker up to ``timeout`` seconds to send what it holds (if it ever ran)."""
    if "prefect.events.worker" not in sys.modules:
        return
    try:
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=timeout, at_exit=False)
    except Exception as exc:
        log.warning("Prefect events not drained: %s", exc)


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
        drain_prefect_events(timeout)

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
        event = emit_prefect_event(alert)
        level = logging.WARNING if webhook.startswith(("delivered", "no webhook")) else logging.ERROR
        log.log(level, "anomaly alert %s: webhook: %s; %s", what, webhook, event)
