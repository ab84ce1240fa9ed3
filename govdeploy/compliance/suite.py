"""The whole compliance check: every check in order, into one report."""

from __future__ import annotations

from datetime import UTC, datetime

from govdeploy.compliance.config_checks import (
    AccessLoader,
    access_check,
    approver_roles,
    config_digests,
    governance,
)
from govdeploy.compliance.report import Check, ComplianceReport, Context, run_checks
from govdeploy.compliance.state_checks import key_expiry, key_rotation, retention_overdue, serving_evidence
from govdeploy.config.settings import Settings

AUDIT_ACTION = "compliance.checked"


def all_checks(load_access: AccessLoader) -> list[Check]:
    return [
        config_digests,
        governance,
        approver_roles,
        access_check(load_access),
        key_rotation,
        key_expiry,
        retention_overdue,
        serving_evidence,
    ]


def check(
    settings: Settings,
    load_access: AccessLoader,
    *,
    now: datetime | None = None,
    stack: bool = False,
    expiry_days: int = 30,
) -> ComplianceReport:
    """Run every check; with ``stack`` also those that read the bucket and the registry."""
    context = Context(settings, now or datetime.now(UTC), expiry_days=expiry_days, stack=stack)
    return run_checks(context, all_checks(load_access))


def audit_payload(report: ComplianceReport) -> dict[str, object]:
    """What the audit record of a run holds: the verdict, each check's status, what failed, and the
    digest of the full report."""
    return {
        "status": report.status,
        "checks": {c.name: c.status for c in report.checks},
        "failures": report.failures(),
        "report_sha256": report.digest,
    }
