"""The gateway's parts, built once per process from settings and config."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from govdeploy.backends.storage import s3_client
from govdeploy.config.catalog import load_catalog
from govdeploy.config.policy import load_policy
from govdeploy.config.settings import Settings
from govdeploy.errors import GovdeployError
from govdeploy.monitoring.alerts import AlertNotifier
from govdeploy.monitoring.anomalies import AnomalyMonitor
from govdeploy.monitoring.iolog import IOLogWriter
from govdeploy.serving.gateway.access import KeyRing, RateLimiter, load_access
from govdeploy.serving.gateway.metrics import GatewayMetrics
from govdeploy.serving.gateway.state import ServingState
from govdeploy.trust.audit_trail import audit_log
from govdeploy.trust.keys import master_key

log = logging.getLogger("govdeploy.gateway")


@dataclass
class Gateway:
    settings: Settings
    keys: KeyRing
    limiter: RateLimiter
    writer: IOLogWriter
    state: ServingState
    metrics: GatewayMetrics
    token_secret: bytes
    monitor: AnomalyMonitor
    notifier: AlertNotifier
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.writer.start()
        self.notifier.start()
        self.state.refresh()
        threading.Thread(target=self._poll, name="registry-poll", daemon=True).start()

    def _poll(self) -> None:
        while not self.stopping.wait(self.settings.refresh_seconds):
            try:
                self.state.refresh()
            except GovdeployError as exc:  # the registry is down: keep serving what is verified
                log.warning("registry refresh failed, serving state unchanged: %s", exc)
            except Exception:  # any other failure: log it and poll again; the thread never dies
                log.exception("registry refresh crashed, serving state unchanged")

    async def stop(self) -> None:
        """Safe shutdown: stop polling, let batches finish, flush every I/O record."""
        self.stopping.set()
        for served in self.state.models.values():
            for slot in (served.champion, served.challenger):
                if slot is not None:
                    await slot.batcher.stop()
        await asyncio.to_thread(self.writer.close)
        await asyncio.to_thread(self.notifier.close)

    def observe(
        self,
        model: str,
        version: str,
        status: int,
        scores: list[float] | None,
        out_of_range: tuple[int, dict[str, int]] | None,
    ) -> None:
        """Count one prediction response of ``version``; queue the anomaly alerts it raises."""
        for alert in self.monitor.observe(model, version, status, scores, out_of_range):
            self.metrics.alerts.labels(model, version, alert.kind).inc()
            self.notifier.submit(alert.payload())

    def audit(self, action: str, actor: str, model: str, payload: dict[str, object]) -> None:
        audit_log(self.settings).append(action, actor, dict(payload), model=model)


def _shipper(settings: Settings, root: Path) -> Callable[[Path], None]:
    client = s3_client(settings)

    def ship(path: Path) -> None:
        key = "iolog/" + path.relative_to(root).as_posix()
        client.put_object(Bucket=settings.bucket, Key=key, Body=path.read_bytes())

    return ship


def build_gateway(settings: Settings) -> Gateway:
    catalog = load_catalog(settings.models_path)
    master = master_key(settings.keys_dir)
    iolog_dir = settings.state_dir / "iolog"
    return Gateway(
        settings=settings,
        keys=KeyRing.from_config(load_access(settings.access_path), settings.keys_dir),
        limiter=RateLimiter(),
        writer=IOLogWriter(iolog_dir, master, shipper=_shipper(settings, iolog_dir)),
        state=ServingState(
            settings,
            {name: frozenset(spec.pii_columns) for name, spec in catalog.models.items()},
            settings.batch_max_rows,
            settings.batch_max_wait_ms / 1000,
            audit=lambda model, payload: audit_log(settings).append(
                "serving.refused", "gateway", dict(payload), model=model
            ),
        ),
        metrics=GatewayMetrics(),
        token_secret=hmac.new(master, b"govdeploy-io-tokens", hashlib.sha256).digest(),
        monitor=AnomalyMonitor(load_policy(settings.policy_path).alerts),
        notifier=AlertNotifier(settings.alert_webhook),
    )
