"""The approval form of a paused release: what the Prefect UI shows and takes, and each attempt.

``ApprovalInput`` is the pause form (decision, reason, token). ``ApprovalForm`` pauses the run with
the description of ``govdeploy.release.approval_view`` and hands each token to the approval ledger
(through ``release.approval.collect_approvals``); every attempt gets an audit record, a log line
(refusals as warnings) and a row in the run's status artifact, and a refused one re-pauses the run
at once with the refusal on top of the form.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from prefect import get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import ConfigDict, Field

from govdeploy.release.approval_view import (
    TOKEN_MAX_CHARS,
    TOKEN_MIN_CHARS,
    TOKEN_PATTERN,
    ApproverView,
    Attempt,
    approval_markdown,
    form_problem,
)
from govdeploy.trust.approval_ledger import ApprovalLedger, Outcome
from govdeploy.trust.approvals import now_utc, parse_token
from tasks.artifacts import publish_approval_status
from tasks.audit import audit_event


class ApprovalInput(RunInput):
    """The pause form. A submission that names a ``decision`` (the UI form always does) must carry a
    token of the right shape, checked by the Prefect server before the run resumes, so that a
    mistyped token is refused while the form is still open. A bare ``{"token": ...}`` (the CLI, API
    scripts) reaches the approval ledger whatever it holds, and leaves an audit record."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"required": ["decision"]},
            "then": {
                "properties": {
                    "token": {
                        "minLength": TOKEN_MIN_CHARS,
                        "maxLength": TOKEN_MAX_CHARS,
                        "pattern": TOKEN_PATTERN,
                    }
                }
            },
        }
    )

    decision: Literal["approve", "reject"] = Field(
        default="approve", description="Your decision; it must be the one your token is signed for."
    )
    reason: str = Field(
        default="",
        max_length=2000,
        description="Why (required to reject). The reason signed in the token is the one recorded.",
    )
    token: str = Field(
        description="Signed token: govdeploy approval-token RUN_ID --approver ID --key KEYFILE "
        "[--reject --reason TEXT]"
    )


def record_attempt(outcome: Outcome, ledger: ApprovalLedger, retention_days: int) -> None:
    request = ledger.request
    statement = outcome.signed.statement if outcome.signed else None
    person = ledger.approvers.get(outcome.approver) if outcome.accepted and outcome.approver else None
    if not outcome.accepted:
        action = "approval.refused"
    else:
        action = "approval.rejected" if outcome.decision == "reject" else "approval.accepted"
    audit_event(
        action,
        {
            "reason": outcome.reason,
            "claimed_approver": statement.approver if statement else None,
            "decision": statement.decision if statement else None,
            "nonce": statement.nonce if statement else None,
            "flow_run_id": request.flow_run_id,
            "artifact_digest": request.artifact_digest,
        },
        model=request.model,
        version=request.version,
        policy_digest=request.policy_digest,
        actor=outcome.approver if outcome.accepted and outcome.approver else "unverified",
        retention_days=retention_days,
        sensitive={"name": person.name, "email": str(person.email)} if person else None,
    )


@dataclass
class ApprovalForm:
    """The pause form and the run page while a release waits: every attempt is recorded, logged and
    listed, and a refused one re-pauses at once with the refusal on top of the form."""

    view: ApproverView
    ledger: ApprovalLedger
    retention_days: int
    attempts: list[Attempt] = field(default_factory=list)
    pauses: int = 0

    def ask(self, attempt: int, remaining: int, last: str) -> str | None:
        """A token for the ledger within ``remaining`` seconds (None when the window closes); a form
        that contradicts its token is refused here and the form comes back."""
        deadline = time.monotonic() + remaining
        while (left := int(deadline - time.monotonic())) > 0:
            received = self._pause(left, last)
            if received is None:
                return None
            token = str(received.token)
            signed = parse_token(token)
            stated = received.decision if "decision" in received.model_fields_set else None
            problem = form_problem(stated, signed)
            if problem is None:
                return token
            statement = signed.statement if signed else None
            self.record(Outcome(False, problem, statement.approver if statement else None, None, signed))
            last = problem
        return None

    def _pause(self, remaining: int, last: str) -> ApprovalInput | None:
        request = self.view.request
        get_run_logger().info(
            "waiting %d s for approvals of %s v%s (%s); approve with: "
            "govdeploy approve %s --approver ID --key KEYFILE",
            remaining,
            request.model,
            request.version,
            self.ledger.approved_by or "none yet",
            request.flow_run_id,
        )
        now = now_utc()
        description = approval_markdown(
            self.view,
            self.ledger.approved_by,
            self.ledger.required,
            now + timedelta(seconds=remaining),
            now,
            last,
        )
        self.pauses += 1
        try:
            received: ApprovalInput = pause_flow_run(
                wait_for_input=ApprovalInput.with_initial_data(description=description),
                timeout=remaining,
                poll_interval=1,
                key=f"approval-{self.pauses}",
            )
        except FlowPauseTimeout:
            return None
        return received

    def record(self, outcome: Outcome) -> None:
        """Audit record, a log line on the run page (refusals as warnings), the status artifact."""
        record_attempt(outcome, self.ledger, self.retention_days)
        statement = outcome.signed.statement if outcome.signed else None
        if outcome.accepted:
            get_run_logger().info("approval attempt counted: %s", outcome.reason)
        else:
            get_run_logger().warning("approval attempt refused: %s", outcome.reason)
        self.attempts.append(
            Attempt(
                at=now_utc(),
                accepted=outcome.accepted,
                reason=outcome.reason,
                approver=statement.approver if statement else None,
                decision=statement.decision if statement else None,
            )
        )
        self.publish()

    def publish(self) -> None:
        publish_approval_status(self.view, self.ledger.approved_by, self.ledger.required, self.attempts)
