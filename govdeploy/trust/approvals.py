"""Signed approval statements and the ledger that counts them towards a quorum.

An approval counts only as an Ed25519 signature, by a key from ``config/approvers.yaml``, over a
canonical statement that binds the flow run, model, version, artifact digest, decision, reason,
approver, nonce and expiry. The ledger refuses, with a plain reason, anything else: an unsigned or
badly signed token, an unknown approver, a missing role, the submitter approving their own
version, the same approver twice, a statement for another run, version or digest, an expired or a
replayed statement.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel, ValidationError

from govdeploy.config.approvers import Approvers
from govdeploy.config.policy import ApprovalPolicy
from govdeploy.errors import ApprovalError, ConfigError, SignatureError
from govdeploy.trust.audit import canonical
from govdeploy.trust.keys import approver_keys

Decision = Literal["approve", "reject"]


class ApprovalStatement(BaseModel):
    flow_run_id: str
    model: str
    version: str
    artifact_digest: str
    decision: Decision
    reason: str
    approver: str
    nonce: str
    issued_at: str
    expires_at: str


class SignedStatement(BaseModel):
    statement: ApprovalStatement
    signature: str


class ApprovalRequest(BaseModel):
    """What the waiting release asks approvers to sign."""

    flow_run_id: str
    model: str
    version: str
    artifact_digest: str
    submitted_by: str
    policy_digest: str
    submission_proven: bool = True


def now_utc() -> datetime:
    return datetime.now(UTC)


def make_statement(
    request: ApprovalRequest, approver: str, decision: Decision, reason: str, valid_minutes: int
) -> ApprovalStatement:
    issued = now_utc()
    return ApprovalStatement(
        flow_run_id=request.flow_run_id,
        model=request.model,
        version=request.version,
        artifact_digest=request.artifact_digest,
        decision=decision,
        reason=reason,
        approver=approver,
        nonce=secrets.token_hex(16),
        issued_at=issued.isoformat(timespec="seconds"),
        expires_at=(issued + timedelta(minutes=valid_minutes)).isoformat(timespec="seconds"),
    )


def sign_statement(statement: ApprovalStatement, key: ed25519.Ed25519PrivateKey) -> str:
    """The token an approver hands over: base64url JSON of the statement and its signature."""
    signature = base64.b64encode(key.sign(canonical(statement.model_dump()))).decode()
    signed = SignedStatement(statement=statement, signature=signature)
    return base64.urlsafe_b64encode(signed.model_dump_json().encode()).decode()


def parse_token(token: str) -> SignedStatement | None:
    try:
        raw = base64.urlsafe_b64decode(token.strip().encode())
        return SignedStatement.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        return None


@dataclass
class Outcome:
    accepted: bool
    reason: str
    approver: str | None = None
    decision: Decision | None = None
    signed: SignedStatement | None = None


@dataclass
class ApprovalLedger:
    """Counts valid approvals of one request; every call to ``consider`` is one attempt."""

    request: ApprovalRequest
    policy: ApprovalPolicy
    approvers: Approvers
    keys_dir: Path
    approved: list[SignedStatement] = field(default_factory=list)
    seen_nonces: set[str] = field(default_factory=set)
    keys: dict[str, ed25519.Ed25519PublicKey] = field(default_factory=dict)
    # False when re-checking the approvals of a past release: a statement had to be unexpired when
    # it was collected (the release signature attests that), not when the release is loaded later
    check_expiry: bool = True

    def __post_init__(self) -> None:
        # every key loaded up front: a missing key file or one key under two ids fails the release
        # before anyone is asked to approve, never in the middle of counting
        self.keys = approver_keys(self.approvers, self.keys_dir)

    @property
    def required(self) -> int:
        """Approvals needed: the quorum, one more for a candidate whose submitter is not proven."""
        proven = self.request.submission_proven or self.policy.unproven_submission == "refuse"
        return self.policy.quorum + (0 if proven else 1)

    @property
    def quorum_reached(self) -> bool:
        return len(self.approved) >= self.required

    @property
    def approved_by(self) -> list[str]:
        return [s.statement.approver for s in self.approved]

    def consider(self, token: str) -> Outcome:
        signed = parse_token(token)
        if signed is None:
            return Outcome(
                False,
                "the input is not a signed approval token; create one with "
                "'govdeploy approval-token' or 'govdeploy approve'",
            )
        return self.consider_signed(signed)

    def consider_signed(self, signed: SignedStatement) -> Outcome:
        refusal = self._refusal(signed)
        statement = signed.statement
        if refusal:
            return Outcome(False, refusal, statement.approver, statement.decision, signed)
        self.seen_nonces.add(statement.nonce)
        if statement.decision == "reject":
            return Outcome(
                True,
                f"rejected by {statement.approver}: {statement.reason}",
                statement.approver,
                "reject",
                signed,
            )
        self.approved.append(signed)
        return Outcome(
            True,
            f"approval {len(self.approved)} of {self.required} by {statement.approver}",
            statement.approver,
            "approve",
            signed,
        )

    def _refusal(self, signed: SignedStatement) -> str | None:
        statement = signed.statement
        for check in (self._signature, self._replay, self._binding, self._expiry, self._duties):
            reason = check(signed, statement)
            if reason:
                return reason
        return None

    def _signature(self, signed: SignedStatement, statement: ApprovalStatement) -> str | None:
        try:
            self.approvers.get(statement.approver)
        except ConfigError as exc:
            return str(exc)
        key = self.keys[statement.approver]
        try:
            key.verify(base64.b64decode(signed.signature), canonical(statement.model_dump()))
        except (InvalidSignature, ValueError):
            return f"the signature does not verify with the registered key of approver {statement.approver!r}"
        return None

    def _replay(self, signed: SignedStatement, statement: ApprovalStatement) -> str | None:
        if statement.nonce in self.seen_nonces:
            return f"statement {statement.nonce[:8]}… of {statement.approver} was already used (replay)"
        return None

    def _binding(self, signed: SignedStatement, statement: ApprovalStatement) -> str | None:
        expected = self.request
        for name in ("flow_run_id", "model", "version", "artifact_digest"):
            given, wanted = getattr(statement, name), getattr(expected, name)
            if given != wanted:
                return f"the statement is for {name} {given!r}, not {wanted!r}: it approves something else"
        return None

    def _expiry(self, signed: SignedStatement, statement: ApprovalStatement) -> str | None:
        try:
            issued = datetime.fromisoformat(statement.issued_at)
            expires = datetime.fromisoformat(statement.expires_at)
        except ValueError:
            return "the statement's issued_at/expires_at are not ISO timestamps"
        if issued.tzinfo is None or expires.tzinfo is None:
            return "the statement's issued_at/expires_at have no time zone; sign a new one"
        if self.check_expiry and expires <= now_utc():
            return f"the statement expired at {statement.expires_at}; sign a new one"
        if expires - issued > timedelta(minutes=self.policy.statement_expiry_minutes):
            limit = self.policy.statement_expiry_minutes
            return f"the statement is valid for longer than the policy's {limit} minutes"
        return None

    def _duties(self, signed: SignedStatement, statement: ApprovalStatement) -> str | None:
        approver = statement.approver
        if approver == self.request.submitted_by:
            subject = f"{self.request.model} v{self.request.version}"
            return f"{approver} submitted {subject} and cannot approve it (segregation of duties)"
        roles = self.approvers.get(approver).roles
        required = self.policy.required_roles
        if required and not set(roles) & set(required):
            return f"approver {approver!r} has roles {roles}, none of the required {required}"
        if statement.decision == "approve" and self._same_person(approver):
            return f"{approver} has already approved; the quorum of {self.required} needs distinct approvers"
        return None

    def _same_person(self, approver: str) -> bool:
        """Whether ``approver`` (by id, email or key) is one of those who approved already."""
        email = str(self.approvers.get(approver).email).casefold()
        raw = self.keys[approver].public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        for other in self.approved_by:
            other_raw = self.keys[other].public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            if (
                other == approver
                or str(self.approvers.get(other).email).casefold() == email
                or other_raw == raw
            ):
                return True
        return False


def require_proven_submitter(request: ApprovalRequest, policy: ApprovalPolicy) -> None:
    """ApprovalError when the policy refuses releases of candidates without a proven submitter."""
    if not request.submission_proven and policy.unproven_submission == "refuse":
        raise ApprovalError(
            f"{request.model} v{request.version} was trained without a signed submission (claimed by "
            f"{request.submitted_by!r}) and the policy refuses such releases "
            "(approval.unproven_submission: refuse); retrain with 'govdeploy train --key KEYFILE'"
        )


def verify_release_approvals(
    document: bytes,
    request: ApprovalRequest,
    policy: ApprovalPolicy,
    approvers: Approvers,
    keys_dir: Path,
) -> list[str]:
    """Re-check the approvals a release signature covers against ``request`` (model, version,
    verified artifact digest and the submitter from the signed candidate claims) and the current
    approver list and policy; the approvers who count, or SignatureError when they are no quorum.
    """
    try:
        parsed = json.loads(document)
        recorded = ApprovalRequest.model_validate(parsed["request"])
        statements = [SignedStatement.model_validate(item) for item in parsed["approvals"]]
    except (ValueError, KeyError, TypeError, ValidationError):
        raise SignatureError(
            f"{request.model} v{request.version}: approvals.json is not an approvals document"
        ) from None
    expected = request.model_copy(update={"flow_run_id": recorded.flow_run_id})
    try:
        require_proven_submitter(expected, policy)
    except ApprovalError as exc:
        raise SignatureError(str(exc)) from None
    try:
        ledger = ApprovalLedger(expected, policy, approvers, keys_dir, check_expiry=False)
    except ConfigError as exc:
        raise SignatureError(
            f"the approvals of {request.model} v{request.version} cannot be checked: {exc}"
        ) from None
    refused = []
    for signed in statements:
        outcome = ledger.consider_signed(signed)
        if not outcome.accepted or outcome.decision != "approve":
            refused.append(outcome.reason)
    if not ledger.quorum_reached:
        raise SignatureError(
            f"{request.model} v{request.version} carries {len(ledger.approved)} valid approvals, fewer than "
            f"the quorum of {ledger.required}"
            + (f" ({'; '.join(refused)})" if refused else "")
            + ": it was not approved under the current approver list and policy"
        )
    return ledger.approved_by
