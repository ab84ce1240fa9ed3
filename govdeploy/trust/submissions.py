"""Signed submissions: who asked for a candidate to be trained, proven like an approval.

The submitter signs a statement with their personal Ed25519 key (``config/approvers.yaml`` lists
every person, with or without an approving role) over the model and the exact training parameters,
with a nonce and an expiry. Training verifies it and records the proven person inside the signed
candidate claims, so no tag edit or flow parameter changes who submitted a version, and the
submitter can never count towards its approval quorum.

A candidate without a proven submitter (an automation-started retrain, or a free-text name) is
handled by the policy's ``approval.unproven_submission``: ``refuse`` its release, or require
``extra_approval`` (one approver more than the quorum).
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel, ValidationError

from govdeploy.config.approvers import Approvers
from govdeploy.errors import ApprovalError, ConfigError
from govdeploy.trust.audit import canonical
from govdeploy.trust.keys import approver_public_key


class SubmissionStatement(BaseModel):
    model: str
    parameters: dict[str, Any]  # the training parameters, exactly as the flow runs them
    submitted_by: str
    nonce: str
    issued_at: str
    expires_at: str


class SignedSubmission(BaseModel):
    statement: SubmissionStatement
    signature: str


def make_submission(
    model: str, parameters: dict[str, Any], submitted_by: str, valid_minutes: int
) -> SubmissionStatement:
    issued = datetime.now(UTC)
    return SubmissionStatement(
        model=model,
        parameters=parameters,
        submitted_by=submitted_by,
        nonce=secrets.token_hex(16),
        issued_at=issued.isoformat(timespec="seconds"),
        expires_at=(issued + timedelta(minutes=valid_minutes)).isoformat(timespec="seconds"),
    )


def sign_submission(statement: SubmissionStatement, key: ed25519.Ed25519PrivateKey) -> str:
    """The token a submitter hands to the train flow (``submission`` parameter)."""
    signature = base64.b64encode(key.sign(canonical(statement.model_dump()))).decode()
    signed = SignedSubmission(statement=statement, signature=signature)
    return base64.urlsafe_b64encode(signed.model_dump_json().encode()).decode()


def verify_submission(
    token: str,
    model: str,
    parameters: dict[str, Any],
    approvers: Approvers,
    keys_dir: Path,
    max_minutes: int,
) -> str:
    """The proven submitter of a training run; ApprovalError naming what does not hold."""
    try:
        signed = SignedSubmission.model_validate_json(base64.urlsafe_b64decode(token.strip().encode()))
    except (ValueError, ValidationError):
        raise ApprovalError(
            "the submission is not a signed submission token; create one with 'govdeploy train --key KEYFILE'"
        ) from None
    statement = signed.statement
    try:
        key = approver_public_key(approvers, statement.submitted_by, keys_dir)
    except ConfigError as exc:
        raise ApprovalError(f"submission by {statement.submitted_by!r} refused: {exc}") from None
    try:
        key.verify(base64.b64decode(signed.signature), canonical(statement.model_dump()))
    except (InvalidSignature, ValueError):
        raise ApprovalError(
            f"the submission does not verify with the registered key of {statement.submitted_by!r}"
        ) from None
    _check_binding(statement, model, parameters)
    _check_time(statement, max_minutes)
    return statement.submitted_by


def _check_binding(statement: SubmissionStatement, model: str, parameters: dict[str, Any]) -> None:
    if statement.model != model:
        raise ApprovalError(f"the submission is for model {statement.model!r}, not {model!r}")
    if canonical(statement.parameters) != canonical(parameters):
        raise ApprovalError(
            f"the submission signed the parameters {statement.parameters}, the run has {parameters}: "
            "sign a submission for this run"
        )


def _check_time(statement: SubmissionStatement, max_minutes: int) -> None:
    try:
        issued = datetime.fromisoformat(statement.issued_at)
        expires = datetime.fromisoformat(statement.expires_at)
    except ValueError:
        raise ApprovalError("the submission's issued_at/expires_at are not ISO timestamps") from None
    if issued.tzinfo is None or expires.tzinfo is None:
        raise ApprovalError("the submission's issued_at/expires_at have no time zone; sign a new one")
    now = datetime.now(UTC)
    if expires <= now or issued > now + timedelta(minutes=5):
        raise ApprovalError(
            f"the submission is not valid now (issued {issued}, expires {expires}); sign a new one"
        )
    if expires - issued > timedelta(minutes=max_minutes):
        raise ApprovalError(f"the submission is valid for longer than the policy's {max_minutes} minutes")
