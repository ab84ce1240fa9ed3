"""Runs that a dead deployments process left behind: found when the next one starts, ended, recorded.

Every served deployment runs in the one deployments process of a machine (``flows/serve.py``). A
run of theirs that is still Pending, Running or Paused when that process starts was left by the
previous one: nothing executes it any more, and a release waiting for approvals kept its count of
accepted approvals in that process's memory. ``recover`` ends each such run Crashed, with a message
that says what happened and what to do, after writing an audit record (``release.abandoned`` for a
release, naming the approvals accepted so far and any approval sent to the run that it never read;
``run.abandoned`` for other flows), and posts an alert. An approval sent to the run afterwards is
refused: the run is not paused, and ``govdeploy approve`` prints the run's state and this message.
Runs without a deployment (flows called in-process, by the CLI or by tests) are never touched.

A process stopped by a signal (SIGTERM from ``down``, a service manager or a node drain) may end its
runs Crashed itself before it exits. ``recover`` also finds the release runs of the last week that
ended so without an outcome in the audit trail (promoted, rejected, timed out, abandoned) and
records and alerts them the same way, once.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from govdeploy.backends import flow_runs
from govdeploy.backends.flow_runs import RunSummary
from govdeploy.config.policy import load_policy
from govdeploy.config.settings import Settings
from govdeploy.monitoring.alerts import post_alert
from govdeploy.trust.approvals import parse_token
from govdeploy.trust.audit import AuditRecord
from govdeploy.trust.audit_trail import audit_log, records

log = logging.getLogger("govdeploy.recovery")

RELEASE = "release/release"
ABANDONED = ("release.abandoned", "run.abandoned")
# a release run ends with one of these records; a Crashed one with none of them stopped half-way
OUTCOMES = frozenset(
    {"model.promoted", "approval.rejected", "approval.timed_out", "approval.not_started", *ABANDONED}
)
CRASHED_LOOKBACK = timedelta(days=7)


@dataclass(frozen=True)
class Abandoned:
    """One run ended because its process was gone: its audit record and what it was told."""

    run: RunSummary
    record: AuditRecord
    message: str
    alert: str


def run_records(settings: Settings, run: RunSummary) -> list[AuditRecord]:
    """The audit records that name the run in their payload."""
    model = run.parameters.get("model")
    found = records(settings, str(model) if model is not None else None)
    return [r for r in found if r.payload.get("flow_run_id") == run.id]


def unread_approvals(inputs: list[str], trail: list[AuditRecord]) -> list[dict[str, Any]]:
    """Approvals sent to the run that it never recorded (claimed, unverified): the process was
    already gone when they arrived. Inputs that are not approval tokens are left out."""
    seen = {r.payload.get("nonce") for r in trail}
    unread = []
    for value in inputs:
        try:
            token = json.loads(value).get("token")
        except (ValueError, AttributeError):
            continue
        signed = parse_token(token) if isinstance(token, str) else None
        if signed is not None and signed.statement.nonce not in seen:
            statement = signed.statement
            unread.append(
                {
                    "claimed_approver": statement.approver,
                    "decision": statement.decision,
                    "nonce": statement.nonce,
                    "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
                }
            )
    return unread


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _what(run: RunSummary) -> str:
    model, version = run.parameters.get("model"), run.parameters.get("version")
    if run.deployment == RELEASE:
        return f"this release of {model} v{version}"
    return f"this {run.deployment} run" + (f" of {model}" if model else "")


def _doing(run: RunSummary, unread: list[dict[str, Any]]) -> str:
    """What the run was doing; a release resumed by an approval no process read was still waiting."""
    if run.deployment == RELEASE and (run.state_type == "PAUSED" or unread):
        return "waited for approvals"
    if run.state_type == "CRASHED":
        return "was running"
    return "was paused" if run.state_type == "PAUSED" else f"was {run.state_name.lower()}"


def abandon_message(
    run: RunSummary, accepted: list[AuditRecord], unread: list[dict[str, Any]], record_seq: int | None
) -> str:
    """What the ended run says in Prefect: what happened, what was kept, what to do."""
    where = f" (audit record {record_seq})" if record_seq is not None else ""
    if run.state_type == "CRASHED":
        ended = (
            f"Prefect ended it Crashed: {run.state_message[:300]!r}" if run.state_message else "it crashed"
        )
        text = f"the process running {_what(run)} stopped while it {_doing(run, unread)} ({ended}){where}"
    else:
        text = (
            f"the deployments process restarted while {_what(run)} {_doing(run, unread)}, "
            f"so nothing runs it any more; it was ended{where}"
        )
    if run.deployment != RELEASE:
        return text + "; start it again if it is still needed"
    model, version = run.parameters.get("model"), run.parameters.get("version")
    if accepted:
        where = (
            "audit record" + ("s " if len(accepted) > 1 else " ") + ", ".join(str(r.seq) for r in accepted)
        )
        who = ", ".join(r.actor for r in accepted)
        text += f". Approvals accepted so far: {len(accepted)} ({who}; {where}), they do not carry over"
    else:
        text += ". No approval was accepted so far"
    text += (
        f". Start the release again (govdeploy release --model {model} --version {version}) "
        "and approve the new run"
    )
    if unread:
        senders = ", ".join(str(u["claimed_approver"]) for u in unread)
        text += (
            f". Sent after the process stopped and never read: {_count(len(unread), 'approval')} "
            f"({senders}); send {'it' if len(unread) == 1 else 'them'} again to the new run"
        )
    return text


def _payload(
    run: RunSummary, accepted: list[AuditRecord], unread: list[dict[str, Any]], reason: str
) -> dict[str, Any]:
    return {
        "flow_run_id": run.id,
        "flow_run_name": run.name,
        "deployment": run.deployment,
        "state": run.state_name,
        "reason": reason,
        "approvals_accepted": [
            {"seq": r.seq, "approver": r.actor, "nonce": r.payload.get("nonce")} for r in accepted
        ],
        "approvers": [r.actor for r in accepted],
        "unread_approvals": unread,
    }


def _record(settings: Settings, run: RunSummary, trail: list[AuditRecord]) -> AuditRecord:
    """The run's abandonment record: the one an earlier start wrote, else a new one."""
    earlier = next((r for r in trail if r.action in ABANDONED), None)
    if earlier is not None:
        return earlier
    accepted = [r for r in trail if r.action == "approval.accepted"]
    unread = unread_approvals(flow_runs.received_inputs(run.id), trail)
    reason = abandon_message(run, accepted, unread, None)
    digests = [r.policy_digest for r in trail if r.policy_digest]
    version = run.parameters.get("version")
    return audit_log(settings, load_policy(settings.policy_path).retention.audit_days).append(
        "release.abandoned" if run.deployment == RELEASE else "run.abandoned",
        settings.user,
        _payload(run, accepted, unread, reason),
        model=str(run.parameters["model"]) if "model" in run.parameters else None,
        version=str(version) if version is not None else None,
        policy_digest=digests[-1] if digests else None,
    )


def abandon(settings: Settings, run: RunSummary, alert: bool = True) -> Abandoned:
    """Record the run as abandoned (first: a record is never lost), end it Crashed, alert (unless
    ``alert`` is False)."""
    trail = run_records(settings, run)
    record = _record(settings, run, trail)
    accepted = [r for r in trail if r.action == "approval.accepted"]
    message = abandon_message(run, accepted, record.payload.get("unread_approvals") or [], record.seq)
    if run.state_type != "CRASHED":  # Prefect ended a crashed run already, with its own message
        flow_runs.end_crashed(run.id, message)
    if not alert:
        return Abandoned(run, record, message, "not alerted: the deployment runs again on its own")
    payload = {
        "event": f"govdeploy.{record.action}",
        "model": record.model,
        "version": record.version,
        "flow_run_id": run.id,
        "deployment": run.deployment,
        "approvals_accepted": len(accepted),
        "audit_record": record.seq,
        "reason": message,
    }
    return Abandoned(run, record, message, post_alert(settings.alert_webhook, payload))


def recover(settings: Settings, deployments: list[str], quiet: Collection[str] = ()) -> list[Abandoned]:
    """End every unfinished run of ``deployments`` (``<flow>/<deployment>``); a run that cannot be
    ended is logged and left for the next start. Runs of the ``quiet`` deployments (they run again
    within minutes by themselves) are recorded but not alerted."""
    ended = []
    for run in flow_runs.unfinished_runs(deployments) + _crashed_releases(settings, deployments):
        try:
            done = abandon(settings, run, alert=run.deployment not in quiet)
        except Exception:  # one run's failure (audit, Prefect API) must not stop the others
            log.exception("could not end flow run %s (%s, %s)", run.id, run.deployment, run.state_name)
            continue
        log.warning(
            "ended flow run %s (%s) as Crashed: %s; alert: %s",
            run.id,
            run.deployment,
            done.message,
            done.alert,
        )
        ended.append(done)
    return ended


def _crashed_releases(settings: Settings, deployments: list[str]) -> list[RunSummary]:
    """Release runs of the last week that Prefect ended Crashed without an outcome in the trail."""
    if RELEASE not in deployments:
        return []
    try:
        crashed = flow_runs.crashed_runs([RELEASE], datetime.now(UTC) - CRASHED_LOOKBACK)
        return [run for run in crashed if not any(r.action in OUTCOMES for r in run_records(settings, run))]
    except Exception:  # the unfinished runs are ended regardless; the next start looks again
        log.exception("the release runs that ended Crashed could not be read")
        return []


def recover_before_serving(
    settings: Settings, deployments: list[str], timeout: float, quiet: Collection[str] = ()
) -> list[Abandoned] | None:
    """``recover`` within ``timeout`` seconds, never raising: the process must start regardless.
    None when it failed or did not finish in time (it goes on in the background then)."""
    result: list[list[Abandoned]] = []

    def sweep() -> None:
        try:
            result.append(recover(settings, deployments, quiet))
        except Exception:
            log.exception("the runs left by a previous deployments process could not be read")

    context = contextvars.copy_context()  # the caller's client settings hold in the thread too
    worker = threading.Thread(target=context.run, args=(sweep,), name="recover-orphaned-runs", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        log.error(
            "ending the runs left by a previous deployments process takes over %.0f s; serving anyway",
            timeout,
        )
        return None
    if result:
        log.info("runs left by a previous deployments process: %d ended", len(result[0]))
    return result[0] if result else None
