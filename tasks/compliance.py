"""Retention and compliance checks as tasks of the nightly ``compliance`` flow."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from govdeploy.compliance.report import ComplianceReport
from govdeploy.compliance.suite import AUDIT_ACTION, audit_payload, check
from govdeploy.config.policy import load_policy
from govdeploy.config.settings import get_settings
from govdeploy.monitoring.alerts import post_alert
from govdeploy.monitoring.retention import RetentionReport, enforce
from govdeploy.serving.gateway.access import load_access
from tasks.artifacts import artifact_key
from tasks.audit import audit_event


@task(cache_policy=NO_CACHE)  # no retries: each day deleted is already an audit record
def enforce_retention(dry_run: bool = False) -> RetentionReport:
    """Delete the I/O log's days past ``retention.io_log_days`` (bucket and local spool)."""
    settings = get_settings()
    report = enforce(settings, load_policy(settings.policy_path), dry_run=dry_run)
    create_table_artifact(
        key=artifact_key("retention"),
        table=[
            {"where": d.where, "day": d.day, "count": d.count, "bytes": d.bytes, "locked": d.locked}
            for d in report.deleted
        ],
        description=f"I/O log retention ({report.io_log_days} days, kept from {report.first_kept_day}): "
        + ("dry run" if dry_run else f"{len(report.deleted)} day(s) deleted")
        + ("; problems: " + "; ".join(report.problems) if report.problems else ""),
    )
    for problem in report.problems:
        get_run_logger().error("retention: %s", problem)
    return report


@task(cache_policy=NO_CACHE)
def check_compliance(registry: bool = True, expiry_days: int = 30) -> ComplianceReport:
    """Every compliance check; with ``registry`` also the bucket and the serving versions' evidence."""
    report = check(get_settings(), load_access, stack=registry, expiry_days=expiry_days)
    create_table_artifact(
        key=artifact_key("compliance"),
        table=[{"check": c.name, "status": c.status, "summary": c.summary} for c in report.checks],
        description=f"Compliance check: **{report.status}**",
    )
    return report


@task(cache_policy=NO_CACHE)
def record_compliance(report: ComplianceReport, retention: RetentionReport) -> dict[str, Any]:
    """The run's verdict in the audit trail (``compliance.checked``); an alert when it is not a pass."""
    settings = get_settings()
    policy = load_policy(settings.policy_path)
    payload: dict[str, Any] = {**audit_payload(report), "retention_problems": retention.problems}
    failed = report.status != "pass" or not retention.ok
    if failed:
        alert = {"kind": AUDIT_ACTION, "status": report.status, "failures": payload["failures"]}
        alert["retention_problems"] = retention.problems
        payload["alert"] = post_alert(settings.alert_webhook, alert)
        get_run_logger().error("compliance check %s: %s", report.status, "; ".join(report.failures()))
    audit_event(
        AUDIT_ACTION, payload, policy_digest=policy.digest, retention_days=policy.retention.audit_days
    )
    return payload
