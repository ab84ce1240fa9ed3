"""Signed submissions: who asked for a candidate to be trained, proven like an approval.

The submitter signs a statement with their personal Ed25519 key (``config/approvers.yaml`` lists
every person, with or without an approving role) over the model and the exact training parameters,
with a nonce and an expiry. Training verifies it and records the proven person inside the signed
candidate claims, so no tag edit or flow parameter changes who submitted a version, and the
submitter can never count towards its approval quorum.

A submission counts for one training run: its nonce is recorded as used (``trust/nonces.py``) once
everything else verified, so the token, readable by anyone as a flow parameter, cannot be replayed
by another run with the same parameters while it is unexpired.

A candidate without a proven submitter (an automation-started retrain, or a free-text name) is
handled by the policy's ``approval.unproven_submission``: ``refuse`` its release, or require
``extra_approval`` (one approver more than the quorum).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from govdeploy.config.approvers import Approvers
from govdeploy.errors import ApprovalError, ConfigError
from govdeploy.trust.approver_keys import approver_key_ring, statement_signer
from govdeploy.trust.audit import canonical
from govdeploy.trust.nonces import UsedNonces, new_use
from govdeploy.trust.statements import fresh, sign_token
from govdeploy.trust.validity import (
    DEFAULT_CLOCK_SKEW_SECONDS,
    Name,
    Nonce,
    Signature,
    Timestamp,
    check_window,
    read_token,
    shown,
)

TOKEN_FIX = "create one with 'govdeploy train --key KEYFILE'"
# a training parameter: a JSON scalar of bounded size
Parameter = (
    StrictBool
    | Annotated[int, Field(ge=-(2**63), le=2**63)]
    | Annotated[float, Field(allow_inf_nan=False)]
    | Annotated[str, Field(max_length=4096)]
    | None
)


class SubmissionStatement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Name
    # the training parameters, exactly as the flow runs them
    parameters: Annotated[dict[Annotated[str, Field(max_length=64)], Parameter], Field(max_length=32)]
    submitted_by: Name
    nonce: Nonce
    issued_at: Timestamp
    expires_at: Timestamp


class SignedSubmission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    statement: SubmissionStatement
    signature: Signature


def make_submission(
    model: str, parameters: dict[str, Any], submitted_by: str, valid_minutes: int
) -> SubmissionStatement:
    return SubmissionStatement(
        model=model, parameters=parameters, submitted_by=submitted_by, **fresh(valid_minutes)
    )


def sign_submission(statement: SubmissionStatement, key: ed25519.Ed25519PrivateKey) -> str:
    """The token a submitter hands to the train flow (``submission`` parameter)."""
    return sign_token(statement, SignedSubmission, key)


def read_submission(token: str) -> SignedSubmission:
    """The signed submission a token carries (not yet verified); ApprovalError when it carries none."""
    return read_token(token, SignedSubmission, "submission token", TOKEN_FIX)


def verify_submission(
    token: str,
    model: str,
    parameters: dict[str, Any],
    approvers: Approvers,
    keys_dir: Path,
    max_minutes: int,
    *,
    used: UsedNonces,
    flow_run_id: str | None,
    claimed: str | None = None,
    skew_seconds: int = DEFAULT_CLOCK_SKEW_SECONDS,
) -> str:
    """The proven submitter of the training run ``flow_run_id``; ApprovalError naming what does not
    hold. A submission that holds is used up: the same token is refused for any other run."""
    signed = read_submission(token)
    statement = signed.statement
    _check_signature(signed, approvers, keys_dir)
    if claimed and claimed != statement.submitted_by:
        raise ApprovalError(
            f"the submission is signed by {statement.submitted_by!r}, not by the claimed {shown(claimed)}"
        )
    _check_binding(statement, model, parameters)
    check_window(
        "submission", statement.issued_at, statement.expires_at, max_minutes, skew_seconds=skew_seconds
    )
    used.claim(statement.nonce, new_use(flow_run_id, statement.submitted_by, statement.expires_at))
    return statement.submitted_by


def _check_signature(signed: SignedSubmission, approvers: Approvers, keys_dir: Path) -> None:
    statement = signed.statement
    try:
        keys = approver_key_ring(approvers, statement.submitted_by, keys_dir)
    except ConfigError as exc:
        raise ApprovalError(f"submission by {statement.submitted_by!r} refused: {exc}") from None
    statement_signer(
        keys,
        statement,
        signed.signature,
        statement.issued_at,
        f"the submission does not verify with the registered key of {statement.submitted_by!r}",
    )


def _check_binding(statement: SubmissionStatement, model: str, parameters: dict[str, Any]) -> None:
    if statement.model != model:
        raise ApprovalError(f"the submission is for model {statement.model!r}, not {model!r}")
    try:
        same = canonical(statement.parameters) == canonical(parameters)
    except ValueError:  # a parameter that is no JSON text (e.g. a lone surrogate in a path)
        same = False
    if not same:
        raise ApprovalError(
            f"the submission signed the parameters {shown(statement.parameters)}, the run has "
            f"{shown(parameters)}: sign a submission for this run"
        )
