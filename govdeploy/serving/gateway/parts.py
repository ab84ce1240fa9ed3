"""The gateway's parts, built once per process (each worker process builds its own) from settings
and config.

``Gateway.problems`` is what ``/healthz`` reports: the I/O log's (records that cannot be written,
a stalled or full queue, records lost, a shipping backlog too large or too old) and the serving
state's refresh (the last one failed, or none succeeded for ``refresh_max_missed`` periods), of the
worker process that answers.

With several worker processes (``govdeploy.serving.gateway.workers``) each admits its share of every
rate limit, and a reload, kill or revive one of them applied reaches the others before it answers
(``everywhere``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govdeploy.backends import events
from govdeploy.backends.storage import s3_client
from govdeploy.config.catalog import load_catalog
from govdeploy.config.policy import load_policy
from govdeploy.config.settings import Settings
from govdeploy.errors import GovdeployError
from govdeploy.monitoring.alerts import AlertNotifier, post_alert
from govdeploy.monitoring.anomalies import AnomalyMonitor
from govdeploy.monitoring.iolog import IOLogWriter
from govdeploy.serving import rollout
from govdeploy.serving.gateway.access import KeyRing, RateLimiter, load_access
from govdeploy.serving.gateway.metrics import GatewayMetrics
from govdeploy.serving.gateway.state import ServingState
from govdeploy.serving.gateway.workers import STEP_SECONDS, Siblings, siblings_dir, worker_processes
from govdeploy.trust.audit_trail import audit_log
from govdeploy.trust.keys import master_key

log = logging.getLogger("govdeploy.gateway")
IOLOG_EVENT = "govdeploy.gateway.iolog"


@dataclass
class RefreshHealth:
    """When the serving state's refresh last succeeded and failed (monotonic seconds), and why."""

    started: float = field(default_factory=time.monotonic)
    succeeded_at: float | None = None
    failed_at: float | None = None
    error: str | None = None
    failures: int = 0

    def succeeded(self) -> None:
        self.succeeded_at, self.error = time.monotonic(), None

    def failed(self, exc: BaseException) -> None:
        self.failed_at, self.error = time.monotonic(), f"{type(exc).__name__}: {exc}"
        self.failures += 1

    def problem(self, period: float, max_missed: int) -> str | None:
        """Why the refresh is unhealthy: the last one failed, or none succeeded for ``max_missed`` periods."""
        if self.error is not None:
            return f"the last refresh of the serving state failed: {self.error}"
        since = time.monotonic() - (self.succeeded_at if self.succeeded_at is not None else self.started)
        if since > period * max_missed:
            return f"no refresh of the serving state succeeded for {since:.0f}s"
        return None


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
    refresh_health: RefreshHealth = field(default_factory=RefreshHealth)
    workers: int = 1  # worker processes of this gateway, this one among them
    siblings: Siblings | None = None  # None: this process runs alone
    kills_seen: dict[str, str] | None = None  # the siblings' local kills as last applied here

    def start(self) -> None:
        self.writer.start()
        self.notifier.start()
        requested = self.siblings.requested() if self.siblings else 0
        self.refresh()
        if self.siblings is not None:
            self.siblings.confirm(requested)
        threading.Thread(target=self._poll, args=(requested,), name="registry-poll", daemon=True).start()

    def refresh(self) -> None:
        """Refresh the serving state once, recording when it succeeded or failed, and why."""
        try:
            self.state.refresh()
            kills = self.siblings.local_kills() if self.siblings else None
        except BaseException as exc:
            self.refresh_health.failed(exc)
            self.metrics.refresh_failures.inc()
            raise
        if kills is not None and kills != self.kills_seen:  # a sibling held or ended a local kill
            for name, served in self.state.models.items():
                served.local_kill = kills.get(name)
            self.kills_seen = kills
        self.refresh_health.succeeded()

    def _poll(self, tried: int) -> None:
        """Refresh every ``refresh_seconds``, and at once when a sibling worker asks (then confirm)."""
        period = self.settings.refresh_seconds
        due = time.monotonic() + period
        while not self.stopping.wait(STEP_SECONDS if self.siblings else period):
            requested = self.siblings.requested() if self.siblings else 0
            if self.siblings is not None and requested <= tried and time.monotonic() < due:
                continue
            tried, due = max(tried, requested), time.monotonic() + period
            if self._refresh_logged() and self.siblings is not None:
                self.siblings.confirm(requested)

    def _refresh_logged(self) -> bool:
        try:
            self.refresh()
            return True
        except GovdeployError as exc:  # the registry is down: keep serving what is verified
            log.warning("registry refresh failed, serving state unchanged: %s", exc)
        except Exception:  # any other failure: log it and poll again; the thread never dies
            log.exception("registry refresh crashed, serving state unchanged")
        return False

    def hold_kill(self, model: str, reason: str | None) -> None:
        """Hold (``reason``) or end (None) a kill of ``model`` that is not (yet) in the serving record,
        on every worker process of this gateway."""
        if self.siblings is not None:  # first, so that no refresh here undoes it meanwhile
            try:
                self.siblings.set_local_kill(model, reason)
            except OSError as exc:  # it holds here still (a refresh applies only what changed)
                log.error("the kill of %s could not be passed to the other worker processes: %s", model, exc)
        self.state.models[model].local_kill = reason

    async def everywhere(self) -> str | None:
        """After a reload, kill or revive applied here: have every other worker process refresh now,
        and wait for them; None, or which did not confirm in time."""
        return None if self.siblings is None else await self.siblings.everywhere()

    def problems(self) -> list[str]:
        """Why the gateway is not healthy now (I/O log, serving-state refresh); empty when it is."""
        found = self.writer.problems()
        refresh = self.refresh_health.problem(self.settings.refresh_seconds, self.settings.refresh_max_missed)
        return found + ([refresh] if refresh else [])

    async def stop(self) -> None:
        """Safe shutdown: stop polling, let batches finish, flush every I/O record (or say loudly how
        many are lost)."""
        self.stopping.set()
        for served in self.state.models.values():
            for slot in (served.champion, served.challenger):
                if slot is not None:
                    await slot.batcher.stop()
        try:
            await asyncio.to_thread(self.writer.close)
        except GovdeployError as exc:  # logged by the writer with the count; alert before exiting
            post_alert(self.settings.alert_webhook, {"event": IOLOG_EVENT, "reason": str(exc)})
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

    def switch(self, model: str, reason: str | None, issuer: str) -> str | None:
        """Write the kill switch (``reason``, None to revive) into the model's signed serving record
        and apply it here; the problem when it could not be written."""
        try:
            rollout.switch(self.settings, model, reason, issuer)
        except GovdeployError as exc:
            return str(exc)
        self.state.refresh()
        return None


def _shipper(settings: Settings, root: Path) -> Callable[[Path], None]:
    client = s3_client(settings)

    def ship(path: Path) -> None:
        key = "iolog/" + path.relative_to(root).as_posix()
        client.put_object(Bucket=settings.bucket, Key=key, Body=path.read_bytes())

    return ship


def _iolog_alert(settings: Settings) -> Callable[[str], None]:
    """Alert an I/O log problem to the webhook, off the writer's threads (never raises)."""

    def deliver(reason: str) -> None:
        outcome = post_alert(settings.alert_webhook, {"event": IOLOG_EVENT, "reason": reason})
        log.error("I/O log alert: %s; webhook: %s", reason, outcome)

    def alert(reason: str) -> None:
        threading.Thread(target=deliver, args=(reason,), name="iolog-alert", daemon=True).start()

    return alert


def build_writer(settings: Settings, master: bytes) -> IOLogWriter:
    """The I/O log writer of a gateway process, as its settings say, shipping to the bucket."""
    iolog_dir = settings.state_dir / "iolog"
    return IOLogWriter(
        iolog_dir,
        master,
        shipper=_shipper(settings, iolog_dir),
        max_queued=settings.io_log_max_queued,
        stall_seconds=settings.io_log_stall_seconds,
        on_failure=settings.io_log_failure,
        backlog_max=settings.io_backlog_max_batches,
        backlog_max_age=settings.io_backlog_max_age_seconds,
        ship_retry_max=settings.io_ship_retry_max_seconds,
        alert=_iolog_alert(settings),
    )


def _refusal_recorder(settings: Settings, metrics: GatewayMetrics) -> Callable[[str, dict[str, Any]], None]:
    """What a refused serving record or version leaves (once per refusal): a metric, a Prefect event
    automations can react to, and an audit record (the audit failure is the caller's to log)."""

    def record(model: str, payload: dict[str, Any]) -> None:
        metrics.serving_refusals.labels(model).inc()
        outcome = events.emit(
            "govdeploy.gateway.refused",
            {"prefect.resource.id": f"govdeploy.model.{model}"},
            [],
            dict(payload),
        )
        log.info("%s refusal: %s", model, outcome)
        audit_log(settings).append("serving.refused", "gateway", dict(payload), model=model)

    return record


def build_gateway(settings: Settings) -> Gateway:
    catalog = load_catalog(settings.models_path)
    master = master_key(settings.keys_dir)
    workers = worker_processes(settings)
    shared = siblings_dir() if workers > 1 else None
    metrics = GatewayMetrics(multiprocess=shared.parent / "metrics" if shared else None)
    policy = load_policy(settings.policy_path)
    return Gateway(
        settings=settings,
        keys=KeyRing.from_config(load_access(settings.access_path), settings.keys_dir),
        # behind one load balancer, every worker process of every replica admits its share
        limiter=RateLimiter(share=settings.gateway_replica_count * workers),
        writer=build_writer(settings, master),
        state=ServingState(
            settings,
            {name: frozenset(spec.pii_columns) for name, spec in catalog.models.items()},
            settings.batch_max_rows,
            settings.batch_max_wait_ms / 1000,
            audit=_refusal_recorder(settings, metrics),
            canary_stale_seconds=policy.canary.stale_after_seconds,
        ),
        metrics=metrics,
        token_secret=hmac.new(master, b"govdeploy-io-tokens", hashlib.sha256).digest(),
        monitor=AnomalyMonitor(policy.alerts),
        notifier=AlertNotifier(settings.alert_webhook),
        workers=workers,
        siblings=Siblings(shared, workers) if shared else None,
    )
