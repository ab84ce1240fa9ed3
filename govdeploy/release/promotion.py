"""Signed promotion: after the approval quorum, sign the exact approved artifacts.

Order matters for "nothing half-done": the artifacts are verified and compared with the approved
digest, the approvals and the release signature are uploaded beside them (overwriting any from an
earlier, failed attempt), and only then is the release evidence tagged. Nothing serves yet: the
signed serving record (``serving.rollout.promote``) is the commit point, written after this, and the
aliases follow it. Running it again after a failure is safe.

The version's description tells people the same in markdown (who approved, the gates, the digests,
when); tools read the ``govdeploy.release`` tag.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ValidationError

from govdeploy.backends import registry
from govdeploy.release.approval_view import code, md
from govdeploy.release.gate import Check
from govdeploy.trust.approvals import ApprovalRequest, SignedStatement
from govdeploy.trust.audit import canonical
from govdeploy.trust.roots import TrustRoots
from govdeploy.trust.versions import sign_release


class Promotion(BaseModel):
    model: str
    version: str
    alias: str
    previous: str | None
    artifact_digest: str
    signature_sha256: str
    approvers: list[str]
    promoted_at: str


def approvals_document(
    request: ApprovalRequest, approvals: list[SignedStatement], gate: dict[str, object]
) -> bytes:
    """What the release signature covers besides the model files: who approved what, and why."""
    return canonical(
        {
            "request": request.model_dump(),
            "approvals": [a.model_dump() for a in approvals],
            "gate": gate,
        }
    )


def promote(
    request: ApprovalRequest,
    approvals: list[SignedStatement],
    gate: dict[str, object],
    alias: str,
    *,
    signing_key: Path,
    roots: TrustRoots,
    tracking_uri: str,
) -> Promotion:
    """Sign the approved artifacts (release level) and tag the version's release evidence (for
    ``alias``); ``previous`` is left for the serving record to tell."""
    signed = sign_release(
        request.model,
        request.version,
        approvals_document(request, approvals, gate),
        request.artifact_digest,
        signing_key,
        roots,
        tracking_uri,
    )
    promoted_at = datetime.now(UTC).isoformat(timespec="seconds")
    approvers = [a.statement.approver for a in approvals]
    release_tag = json.dumps(
        {
            "alias": alias,
            "artifact_digest": signed.artifact_digest,
            "signature_sha256": signed.signature_sha256,
            "approvers": approvers,
            "policy_digest": request.policy_digest,
            "flow_run_id": request.flow_run_id,
            "promoted_at": promoted_at,
        },
        sort_keys=True,
    )
    registry.set_version_tags(
        request.model, request.version, {f"{registry.TAG}release": release_tag}, tracking_uri
    )
    promoted = Promotion(
        model=request.model,
        version=request.version,
        alias=alias,
        previous=None,
        artifact_digest=signed.artifact_digest,
        signature_sha256=signed.signature_sha256,
        approvers=approvers,
        promoted_at=promoted_at,
    )
    description = release_description(promoted, request, approvals, gate)
    registry.set_version_description(request.model, request.version, description, tracking_uri)
    return promoted


def gate_checks(gate: dict[str, object]) -> list[Check]:
    """The checks of the gate document the release signature covers (none when it has none)."""
    checks = gate.get("checks")
    try:
        return [Check.model_validate(c) for c in checks] if isinstance(checks, list) else []
    except ValidationError:
        return []


def _approval_line(signed: SignedStatement) -> str:
    statement = signed.statement
    return f"- **{md(statement.approver)}** at {md(statement.issued_at)}: {md(statement.reason or '-')}"


def release_description(
    promoted: Promotion, request: ApprovalRequest, approvals: list[SignedStatement], gate: dict[str, object]
) -> str:
    """The version's description in MLflow: a readable summary of its signed release."""
    checks = gate_checks(gate)
    passed = sum(c.passed for c in checks)
    lines = [
        f"### Released {promoted.promoted_at} as {md(promoted.alias)}",
        "",
        f"Approved by {len(approvals)} verified approvers (signed statements, quorum of the policy):",
        "",
        *[_approval_line(a) for a in approvals],
        "",
        f"Gates: {passed} of {len(checks)} checks passed"
        + (f", decided {md(gate.get('decided_at'))}" if gate.get("decided_at") else ""),
        "",
    ]
    if checks:
        lines += ["| gate | check | value | threshold | result |", "|---|---|---|---|---|"]
        lines += [
            f"| {md(c.gate)} | {md(c.name)} | {md(c.value)} | {md(c.threshold)} | "
            f"{'pass' if c.passed else 'FAIL'} |"
            for c in checks
        ]
        lines.append("")
    lines += [
        f"- artifact digest: {code(promoted.artifact_digest)}",
        f"- release signature sha256: {code(promoted.signature_sha256)}",
        f"- policy digest: {code(request.policy_digest)}",
        f"- submitted by: {md(request.submitted_by)}"
        + ("" if request.submission_proven else " (claimed, not proven)"),
        f"- release flow run: {code(request.flow_run_id)}",
        "",
        "The signed approvals are in the version's `approvals.json`; tools read the "
        "`govdeploy.release` tag. Verify with `govdeploy verify`.",
    ]
    return "\n".join(lines)
