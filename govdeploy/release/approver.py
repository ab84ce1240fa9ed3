"""The approver's side: inspect a paused release, sign a statement, resume the run with it.

The approver verifies the candidate's artifacts themselves and signs the digest they verified;
the waiting flow accepts the statement only if it matches what it evaluated.
"""

from __future__ import annotations

import time
from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound
from prefect.flow_runs import resume_flow_run

from govdeploy.backends import registry
from govdeploy.config.governance import load_governance
from govdeploy.config.settings import Settings
from govdeploy.errors import ApprovalError
from govdeploy.trust.approvals import ApprovalRequest, Decision, make_statement, parse_token, sign_statement
from govdeploy.trust.audit import AuditRecord
from govdeploy.trust.audit_trail import records
from govdeploy.trust.keys import load_ed25519_private
from govdeploy.trust.versions import verify_version


def _run_id(flow_run_id: str) -> UUID:
    try:
        return UUID(flow_run_id)
    except ValueError:
        raise ApprovalError(
            f"{flow_run_id!r} is not a flow run id (a UUID, shown in the Prefect UI)"
        ) from None


def _paused_run(settings: Settings, flow_run_id: str, wait_seconds: float) -> FlowRun:
    """The flow run once it is paused; a run that is busy (checking the last input) is waited for."""
    deadline = time.monotonic() + wait_seconds
    with get_client(sync_client=True) as client:
        while True:
            try:
                run = client.read_flow_run(_run_id(flow_run_id))
            except ObjectNotFound:
                raise ApprovalError(
                    f"flow run {flow_run_id} does not exist on {settings.prefect_api_url}"
                ) from None
            state = run.state
            if state is not None and state.is_paused():
                return run
            busy = state is not None and state.is_running()
            if not busy or time.monotonic() > deadline:
                name = state.name if state else "unknown"
                raise ApprovalError(f"flow run {flow_run_id} is not waiting for approval (it is {name})")
            time.sleep(0.5)


def pending_request(settings: Settings, flow_run_id: str, wait_seconds: float = 30.0) -> ApprovalRequest:
    """The request a paused release run waits on, with the artifact digest verified here."""
    run = _paused_run(settings, flow_run_id, wait_seconds)
    model, version = str(run.parameters["model"]), str(run.parameters["version"])
    registry.connect(settings.mlflow_url, settings.experiment)
    check = verify_version(
        model,
        version,
        trusted_keys=settings.trusted_signing_keys,
        level="candidate",
        tracking_uri=settings.mlflow_url,
    )
    tags = registry.version_tags(model, version, settings.mlflow_url)
    return ApprovalRequest(
        flow_run_id=flow_run_id,
        model=model,
        version=version,
        artifact_digest=check.artifact_digest,
        submitted_by=tags.get("govdeploy.submitted_by", "unknown"),
        policy_digest=load_governance(settings.config_dir, model).policy.digest,
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
    resume_flow_run(_run_id(flow_run_id), run_input={"token": token})
    if signed is None:
        return None
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        for record in reversed(records(settings)):
            if record.payload.get("nonce") == signed.statement.nonce:
                return record
        time.sleep(0.5)
    return None
