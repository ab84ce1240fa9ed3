"""Signed approval statements: what an approver signs, and the token that carries it.

An approval counts only as an Ed25519 signature, by a key from ``config/approvers.yaml``, over a
canonical statement that binds the flow run, model, version, artifact digest, decision, reason,
approver, nonce and expiry (``govdeploy.trust.statements``). ``ApprovalRequest`` is what a waiting
release asks approvers to sign; ``govdeploy.trust.approval_ledger`` decides which statements count.
"""

from __future__ import annotations

from typing import Annotated, Literal

from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel, ConfigDict, Field

from govdeploy.errors import ApprovalError
from govdeploy.trust.statements import fresh, sign_token
from govdeploy.trust.validity import Name, Nonce, Signature, Timestamp, read_token
from govdeploy.trust.validity import now_utc as now_utc  # the clock statements are checked against

Decision = Literal["approve", "reject"]
TOKEN_FIX = "create one with 'govdeploy approval-token' or 'govdeploy approve'"


class ApprovalStatement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flow_run_id: Name
    model: Name
    version: Name
    artifact_digest: Name
    decision: Decision
    reason: Annotated[str, Field(max_length=2000)]
    approver: Name
    nonce: Nonce
    issued_at: Timestamp
    expires_at: Timestamp


class SignedStatement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    statement: ApprovalStatement
    signature: Signature


class ApprovalRequest(BaseModel):
    """What the waiting release asks approvers to sign."""

    flow_run_id: str
    model: str
    version: str
    artifact_digest: str
    submitted_by: str
    policy_digest: str
    submission_proven: bool = True


def make_statement(
    request: ApprovalRequest, approver: str, decision: Decision, reason: str, valid_minutes: int
) -> ApprovalStatement:
    return ApprovalStatement(
        flow_run_id=request.flow_run_id,
        model=request.model,
        version=request.version,
        artifact_digest=request.artifact_digest,
        decision=decision,
        reason=reason,
        approver=approver,
        **fresh(valid_minutes),
    )


def sign_statement(statement: ApprovalStatement, key: ed25519.Ed25519PrivateKey) -> str:
    """The token an approver hands over: base64url JSON of the statement and its signature."""
    return sign_token(statement, SignedStatement, key)


def read_approval_token(token: str) -> SignedStatement:
    """The signed statement a token carries (not yet verified); ApprovalError when it carries none."""
    return read_token(token, SignedStatement, "approval token", TOKEN_FIX)


def parse_token(token: str) -> SignedStatement | None:
    try:
        return read_approval_token(token)
    except ApprovalError:
        return None
