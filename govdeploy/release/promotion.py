"""Signed promotion: after the approval quorum, sign the exact approved artifacts.

Order matters for "nothing half-done": the artifacts are verified and compared with the approved
digest, the approvals and the release signature are uploaded beside them (overwriting any from an
earlier, failed attempt), and only then is the release evidence tagged. Nothing serves yet: the
signed serving record (``serving.rollout.promote``) is the commit point, written after this, and the
aliases follow it. Running it again after a failure is safe.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from govdeploy.backends import registry
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
    return Promotion(
        model=request.model,
        version=request.version,
        alias=alias,
        previous=None,
        artifact_digest=signed.artifact_digest,
        signature_sha256=signed.signature_sha256,
        approvers=approvers,
        promoted_at=promoted_at,
    )
