"""The approval step of a release: how long it waits, when it stops, and where an approved version
goes.

``collect_approvals`` is the wait loop, free of any orchestrator: it asks for input through ``ask``
(the release flow pauses its run there; approvers resume it with a signed token), lets the
``ApprovalLedger`` judge each token, reports every attempt through ``record`` and ends on the
quorum (the approved statements), an authorised rejection (``ApprovalError``) or the end of the
window (``ApprovalTimeoutError``). Nothing is promoted in any of the error cases.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from govdeploy.backends.registry import CHALLENGER, CHAMPION
from govdeploy.config.policy import ApprovalPolicy, Policy
from govdeploy.errors import ApprovalError, ApprovalTimeoutError
from govdeploy.trust.approval_ledger import ApprovalLedger, Outcome, require_proven_submitter
from govdeploy.trust.approvals import SignedStatement

# ask(attempt, remaining_seconds, last_reason): one token within remaining_seconds, None when the
# window closed first
Ask = Callable[[int, int, str], str | None]


def window_seconds(policy: ApprovalPolicy, requested: int | None = None) -> int:
    """How long a release waits for its quorum: the policy's timeout, or a shorter one asked for."""
    limit = policy.timeout_minutes * 60
    return min(limit, requested) if requested else limit


def timeout_reason(ledger: ApprovalLedger, seconds: int) -> str:
    request = ledger.request
    return (
        f"{request.model} v{request.version} got {len(ledger.approved)} of {ledger.required} approvals "
        f"({ledger.approved_by or 'none'}) within {seconds} s; nothing was promoted"
    )


def collect_approvals(
    ledger: ApprovalLedger, seconds: int, ask: Ask, record: Callable[[Outcome], None]
) -> list[SignedStatement]:
    """Attempts until the quorum; ApprovalError on an authorised rejection, ApprovalTimeoutError when
    the window of ``seconds`` closes first."""
    require_proven_submitter(ledger.request, ledger.policy)
    deadline = time.monotonic() + seconds
    last, attempt = "", 0
    while not ledger.quorum_reached:
        remaining = int(deadline - time.monotonic())
        token = ask(attempt, remaining, last) if remaining > 0 else None
        if token is None:
            raise ApprovalTimeoutError(timeout_reason(ledger, seconds))
        attempt += 1
        outcome = ledger.consider(token)
        record(outcome)
        if outcome.accepted and outcome.decision == "reject":
            request = ledger.request
            raise ApprovalError(f"{request.model} v{request.version} {outcome.reason}; nothing was promoted")
        last = outcome.reason
    return ledger.approved


def promotion_alias(policy: Policy, champion: str | None, version: str, canary: bool) -> str:
    """``challenger`` when a canary is asked for (by the policy or the release) and another version is
    champion; else ``champion`` (a first release, or no canary)."""
    replaces = champion not in (None, version)
    return CHALLENGER if (policy.canary.enabled or canary) and replaces else CHAMPION
