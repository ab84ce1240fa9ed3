"""Writing governance events to the audit trail from flows."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from govdeploy.config.settings import get_settings
from govdeploy.release.gate import GateReport
from govdeploy.trust.audit import AuditRecord
from govdeploy.trust.audit_trail import audit_log


@task(cache_policy=NO_CACHE)  # no retries: a retry after a written record would duplicate it
def audit_event(
    action: str,
    payload: dict[str, Any],
    *,
    model: str | None = None,
    version: str | None = None,
    policy_digest: str | None = None,
    actor: str | None = None,
    retention_days: int = 2555,
    sensitive: dict[str, Any] | None = None,
) -> AuditRecord:
    """Append one record (hash-chained, signed, anchored in the locked bucket).

    ``sensitive`` (personal data) is stored encrypted in the record, never in clear.
    """
    settings = get_settings()
    record = audit_log(settings, retention_days).append(
        action,
        actor or settings.user,
        payload,
        model=model,
        version=version,
        policy_digest=policy_digest,
        sensitive=sensitive,
    )
    get_run_logger().info("audit record %d: %s by %s", record.seq, action, record.actor)
    return record


def audit_gate(report: GateReport, retention_days: int) -> AuditRecord:
    """The gate decision as an audit record: verdict, failed checks, policy digest."""
    return audit_event(
        "gate.decided",
        {
            "passed": report.passed,
            "checks": len(report.checks),
            "failures": [f"{c.gate}: {c.reason}" for c in report.failures],
        },
        model=report.model,
        version=report.version,
        policy_digest=report.policy_digest,
        retention_days=retention_days,
    )
