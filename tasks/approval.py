"""Waiting for signed approvals, and signed promotion, inside the release flow.

``wait_for_approvals`` pauses the flow run (it must be called from a flow): approvers resume it
from the Prefect UI form or with ``govdeploy approve``; each input is checked by the approval
ledger and recorded in the audit trail, and the run keeps waiting for valid approvals until the
quorum, an authorised rejection, or the timeout. What the approver sees is
``govdeploy.release.approval_view``: the form's description (a refusal on top, re-paused within a
second), a status artifact and a log line per attempt on the run page.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.runtime import flow_run

from govdeploy.backends import registry
from govdeploy.config.approvers import load_approvers
from govdeploy.config.governance import Governance
from govdeploy.config.settings import get_settings
from govdeploy.errors import ApprovalTimeoutError, GovdeployError
from govdeploy.monitoring.alerts import post_alert
from govdeploy.release import approval, promotion
from govdeploy.release.gate import GateReport
from govdeploy.serving import rollout
from govdeploy.trust.approval_ledger import ApprovalLedger, require_proven_submitter
from govdeploy.trust.approvals import ApprovalRequest, SignedStatement
from govdeploy.trust.keys import signing_key
from govdeploy.trust.roots import load_roots
from tasks.approval_form import ApprovalForm, ApprovalInput
from tasks.artifacts import approver_view
from tasks.audit import audit_event

__all__ = ["ApprovalInput", "approval_request", "promote_version", "wait_for_approvals"]


def approval_request(
    model: str, version: str, artifact_digest: str, submitted_by: str, proven: bool, policy_digest: str
) -> ApprovalRequest:
    """The request approvers sign, for the bytes evaluation verified; the submitter comes from the
    version's signed candidate claims (a registry tag is editable by anyone)."""
    return ApprovalRequest(
        flow_run_id=str(flow_run.id),
        model=model,
        version=version,
        artifact_digest=artifact_digest,
        submitted_by=submitted_by,
        policy_digest=policy_digest,
        submission_proven=proven,
    )


def _open_ledger(request: ApprovalRequest, config: Governance) -> ApprovalLedger:
    """The ledger of this release; an approver list that cannot count, or a release the policy
    refuses, leaves an ``approval.not_started`` record."""
    settings = get_settings()
    try:
        ledger = ApprovalLedger(
            request,
            config.policy.approval,
            load_approvers(settings.approvers_path),
            settings.keys_dir,
            clock_skew_seconds=config.policy.approval.clock_skew_seconds,
        )
        require_proven_submitter(request, config.policy.approval)
    except GovdeployError as exc:
        audit_event(
            "approval.not_started",
            {"reason": str(exc), "flow_run_id": request.flow_run_id},
            model=request.model,
            version=request.version,
            policy_digest=request.policy_digest,
            retention_days=config.policy.retention.audit_days,
        )
        raise
    return ledger


def wait_for_approvals(
    request: ApprovalRequest,
    report: GateReport,
    config: Governance,
    timeout_seconds: int | None = None,
    canary: bool = False,
) -> list[SignedStatement]:
    """Pause until the quorum of valid signed approvals; raise ApprovalError on rejection or timeout.

    ``canary`` is the release's own request for a canary: the form tells what approval starts."""
    ledger = _open_ledger(request, config)
    retention = config.policy.retention.audit_days
    seconds = approval.window_seconds(config.policy.approval, timeout_seconds)
    form = ApprovalForm(approver_view(request, report, config.policy, canary), ledger, retention)
    form.publish()
    try:
        return approval.collect_approvals(ledger, seconds, form.ask, form.record)
    except ApprovalTimeoutError as exc:
        announce_timeout(request, str(exc), retention)
        raise


def announce_timeout(request: ApprovalRequest, reason: str, retention_days: int) -> None:
    """Record and announce a release that got no quorum in time (audit, Prefect event, webhook)."""
    audit_event(
        "approval.timed_out",
        {"reason": reason, "flow_run_id": request.flow_run_id},
        model=request.model,
        version=request.version,
        policy_digest=request.policy_digest,
        retention_days=retention_days,
    )
    alert = {
        "event": "govdeploy.approval.timed_out",
        "model": request.model,
        "version": request.version,
        "flow_run_id": request.flow_run_id,
        "reason": reason,
    }
    emit_event(
        event="govdeploy.approval.timed_out",
        resource={"prefect.resource.id": f"govdeploy.model.{request.model}.v{request.version}"},
        payload=alert,
    )
    get_run_logger().error(
        "approval timed out: %s; alert %s", reason, post_alert(get_settings().alert_webhook, alert)
    )


def _log_stage_problem(problem: str | None) -> None:
    if problem:
        get_run_logger().warning("%s", problem)


@task(cache_policy=NO_CACHE)
def promote_version(
    request: ApprovalRequest,
    approvals: list[SignedStatement],
    report: GateReport,
    config: Governance,
    canary: bool = False,
    intent: str | None = None,
) -> promotion.Promotion:
    """Sign the approved artifacts, then serve them: as ``challenger`` when a canary is asked for (by
    the policy or the release) and a champion serves, else as ``champion``. The signed serving record
    (carrying ``intent``, the id of the audit record announcing the promotion) commits it; the
    aliases follow.

    The ``govdeploy.stage`` tags follow too (approved once signed, then champion or challenger, the
    replaced champion retired); they are informational, and failing to set them only warns."""
    settings = get_settings()
    champion = rollout.serving_champion(settings, request.model)
    alias = approval.promotion_alias(config.policy, champion, request.version, canary)
    gate: dict[str, Any] = {
        "passed": report.passed,
        "checks": [c.model_dump() for c in report.checks],
        "policy_digest": report.policy_digest,
        "decided_at": report.decided_at,
    }
    promoted = promotion.promote(
        request,
        approvals,
        gate,
        alias,
        signing_key=signing_key(settings, "release"),
        roots=load_roots(settings),
        tracking_uri=settings.mlflow_url,
    )
    _log_stage_problem(registry.set_stages(request.model, {request.version: "approved"}, settings.mlflow_url))
    record, previous = rollout.promote(
        settings, promoted.model, promoted.version, alias, settings.user, audit_record=intent
    )
    promoted = promoted.model_copy(update={"previous": previous})
    problem = rollout.sync_registry(settings, record)
    if problem:
        get_run_logger().warning("%s", problem)
    replaced = previous if alias == registry.CHAMPION else None  # a challenger replaces nobody yet
    stage: registry.Stage = "champion" if alias == registry.CHAMPION else "challenger"
    stages: dict[str | None, registry.Stage] = {replaced: "retired", request.version: stage}
    stages.setdefault(rollout.dropped_challenger(settings, record), "retired")
    _log_stage_problem(registry.set_stages(request.model, stages, settings.mlflow_url))
    get_run_logger().info(
        "promoted %s v%s to %s (previous: %s)", promoted.model, promoted.version, alias, promoted.previous
    )
    return promoted
