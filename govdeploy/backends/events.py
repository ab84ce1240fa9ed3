"""Prefect events from processes that are not flows (the gateway): queued for Prefect's own events
worker thread, never raising. The only module of the core that imports ``prefect.events``."""

from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger("govdeploy.events")


def emit(event: str, resource: dict[str, str], related: list[dict[str, str]], payload: dict[str, Any]) -> str:
    """Queue one event; returns what happened, never raises.

    Only with a configured Prefect API: without one, Prefect would start a server of its own.
    """
    try:
        from prefect.events import emit_event
        from prefect.settings import get_current_settings

        if not get_current_settings().api.url:
            return "no Prefect API configured (PREFECT_API_URL): no event"
        sent = emit_event(event=event, resource=resource, related=related, payload=payload)
    except Exception as exc:
        return f"Prefect event not emitted: {type(exc).__name__}: {exc}"
    return "Prefect event queued" if sent is not None else "Prefect events are off: no event"


def drain(timeout: float) -> None:
    """Give Prefect's events worker up to ``timeout`` seconds to send what it holds (if it ever ran)."""
    if "prefect.events.worker" not in sys.modules:
        return
    try:
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all(timeout=timeout, at_exit=False)
    except Exception as exc:
        log.warning("Prefect events not drained: %s", exc)
