"""The approver's side: inspect a paused release, sign a statement, resume the run with it.

The approver verifies the candidate's artifacts themselves and signs the digest they verified;
the waiting flow accepts the statement only if it matches what it evaluated.
"""

from __future__ import annotations

from pathlib import Path

from govdeploy.backends import flow_runs
from govdeploy.config.governance import load_governance
from govdeploy.config.settings import Settings
from govdeploy.errors import ApprovalError, GovdeployError
from govdeploy.polling import poll
from govdeploy.trust.approvals import ApprovalRequest, Decision, make_statement, parse_token, sign_statement
from govdeploy.trust.audit import AuditRecord
from govdeploy.trust.audit_trail import records
from govdeploy.trust.keys import load_ed25519_private
from govdeploy.trust.roots import load_roots
from govdeploy.trust.versions import verify_version


def pending_request(settings: Settings, flow_run_id: str, wait_seconds: float = 30.0) -> ApprovalRequest:
    """The request a paused release run waits on, with the artifact digest verified here."""
    try:
        run = flow_runs.wait_until_paused(flow_run_id, wait_seconds)
    except GovdeployError as exc:
        raise ApprovalError(
            f"{exc} on {settings.prefect_api_url}; only a paused release can be approved"
        ) from None
    if not {"model", "version"} <= set(run.parameters):
        raise ApprovalError(
            f"flow run {flow_run_id} has no model and version parameters: it is not a release"
        )
    model, version = str(run.parameters["model"]), str(run.parameters["version"])
    check = verify_version(
        model,
        version,
        roots=load_roots(settings),
        level="candidate",
        tracking_uri=settings.mlflow_url,
    )
    return ApprovalRequest(
        flow_run_id=flow_run_id,
        model=model,
        version=version,
        artifact_digest=check.artifact_digest,
        submitted_by=check.identity.submitted_by,
        submission_proven=check.identity.submission_proven,
        policy_digest=load_governance(settings.config_dir, model).digest,
    )


def approval_token(
    settings: Settings, flow_run_id: str, approver: str, key: Path, decision: Decision, reason: str
) -> str:
    """A signed statement for the paused run, as the token the UI form and ``approve`` take."""
    request = pending_request(settings, flow_run_id)
    minutes = load_governance(settings.config_dir, request.model).policy.approval.statement_expiry_minutes
    statement = make_statement(request, approver, decision, reason, minutes)
    return sign_statement(statement, load_ed25519_private(key, f"private key of {approver}"))


def submit(
    settings: Settings, flow_run_id: str, token: str, wait_seconds: float = 60.0
) -> AuditRecord | None:
    """Resume the run with the token and wait for the flow's verdict in the audit trail."""
    signed = parse_token(token)
    flow_runs.resume(flow_run_id, {"token": token})
    if signed is None:
        return None
    nonce = signed.statement.nonce

    def verdict() -> AuditRecord | None:
        return next((r for r in reversed(records(settings)) if r.payload.get("nonce") == nonce), None)

    return poll(verdict, timeout=wait_seconds)
