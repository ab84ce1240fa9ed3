"""The ledger that counts signed approvals towards a quorum, and the re-check of a release's.

The ledger refuses, with a plain reason, anything but a valid approval: a malformed or oversized
token, an unsigned or badly signed one, an unknown approver, a missing role, the submitter approving
their own version, the same approver twice, a statement for another run, version or digest, a
statement without time zone, issued in the future, expired or replayed. Refusing is all the ledger
does with bad input: ``consider`` returns an ``Outcome`` for any text. ``verify_release_approvals``
counts the approvals a release signature covers again, under the current approvers and policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from govdeploy.config.approvers import Approvers
from govdeploy.config.policy import ApprovalPolicy
from govdeploy.errors import ApprovalError, ConfigError, SignatureError
from govdeploy.trust.approvals import (
    ApprovalRequest,
    ApprovalStatement,
    Decision,
    SignedStatement,
    read_approval_token,
)
from govdeploy.trust.approver_keys import approver_keys, statement_signer
from govdeploy.trust.key_dates import DatedKey
from govdeploy.trust.validity import DEFAULT_CLOCK_SKEW_SECONDS, check_window


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
    keys: dict[str, list[DatedKey]] = field(default_factory=dict)
    # False when re-checking the approvals of a past release: a statement had to be unexpired when
    # it was collected (the release signature attests that), not when the release is loaded later
    check_expiry: bool = True
    clock_skew_seconds: int = DEFAULT_CLOCK_SKEW_SECONDS

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
        """One attempt with any text: refused with the reason, or counted."""
        try:
            signed = read_approval_token(token)
        except ApprovalError as exc:
            return Outcome(False, str(exc))
        return self.consider_signed(signed)

    def consider_signed(self, signed: SignedStatement) -> Outcome:
        statement = signed.statement
        try:
            self.check(signed)
        except ApprovalError as exc:
            return Outcome(False, str(exc), statement.approver, statement.decision, signed)
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

    def check(self, signed: SignedStatement) -> None:
        """ApprovalError naming the first reason why the statement does not count here and now."""
        statement = signed.statement
        self._signature(signed)
        if statement.nonce in self.seen_nonces:
            raise ApprovalError(
                f"statement {statement.nonce[:8]}… of {statement.approver} was already used (replay)"
            )
        self._binding(statement)
        check_window(
            "statement",
            statement.issued_at,
            statement.expires_at,
            self.policy.statement_expiry_minutes,
            skew_seconds=self.clock_skew_seconds,
            check_expiry=self.check_expiry,
        )
        self._duties(statement)

    def _signature(self, signed: SignedStatement) -> None:
        statement = signed.statement
        try:
            self.approvers.get(statement.approver)
        except ConfigError as exc:
            raise ApprovalError(str(exc)) from None
        statement_signer(
            self.keys[statement.approver],
            statement,
            signed.signature,
            statement.issued_at,
            f"the signature does not verify with the registered key of approver {statement.approver!r}",
        )

    def _binding(self, statement: ApprovalStatement) -> None:
        expected = self.request
        for name in ("flow_run_id", "model", "version", "artifact_digest"):
            given, wanted = getattr(statement, name), getattr(expected, name)
            if given != wanted:
                raise ApprovalError(
                    f"the statement is for {name} {given!r}, not {wanted!r}: it approves something else"
                )

    def _duties(self, statement: ApprovalStatement) -> None:
        approver = statement.approver
        if approver == self.request.submitted_by:
            subject = f"{self.request.model} v{self.request.version}"
            raise ApprovalError(
                f"{approver} submitted {subject} and cannot approve it (segregation of duties)"
            )
        roles = self.approvers.get(approver).roles
        required = self.policy.required_roles
        if required and not set(roles) & set(required):
            raise ApprovalError(f"approver {approver!r} has roles {roles}, none of the required {required}")
        if statement.decision == "approve" and self._same_person(approver):
            raise ApprovalError(
                f"{approver} has already approved; the quorum of {self.required} needs distinct approvers"
            )

    def _same_person(self, approver: str) -> bool:
        """Whether ``approver`` (by id, email or key) is one of those who approved already."""
        email = str(self.approvers.get(approver).email).casefold()
        raw = {key.key.public_bytes_raw() for key in self.keys[approver]}
        for other in self.approved_by:
            other_raw = {key.key.public_bytes_raw() for key in self.keys[other]}
            if (
                other == approver
                or str(self.approvers.get(other).email).casefold() == email
                or raw & other_raw
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


class ApprovalsDocument(BaseModel):
    """``approvals.json`` of a release, as far as re-checking its approvals needs it."""

    request: ApprovalRequest
    approvals: list[SignedStatement]


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
        parsed = ApprovalsDocument.model_validate_json(document)
    except ValidationError:
        raise SignatureError(
            f"{request.model} v{request.version}: approvals.json is not an approvals document"
        ) from None
    statements = parsed.approvals
    expected = request.model_copy(update={"flow_run_id": parsed.request.flow_run_id})
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
