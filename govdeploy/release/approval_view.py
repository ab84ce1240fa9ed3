"""What an approver sees of a paused release: the form's text, the shape of a token, the checks on
what the form says.

Everything here is Prefect-free text. ``approval_markdown`` is the description of the pause form
(the refusal of the last attempt first, then the time left, what approval starts, links to MLflow
and a comparison with the version serving); ``status_markdown`` is the run page's artifact of the
attempts so far. Values that come from tags, parameters or tokens are written through ``md``, so
that nobody's text can add links, HTML or structure to what an approver reads.

The form's ``decision`` and ``reason`` are hints: the signed token carries the decision that counts.
``form_problem`` refuses a token whose signed decision the form contradicts, and a rejection
without a signed reason; the approval ledger judges the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from govdeploy.backends.registry import CHALLENGER
from govdeploy.config.policy import Policy
from govdeploy.release.approval import promotion_alias
from govdeploy.release.gate import GateReport
from govdeploy.trust.approvals import ApprovalRequest, SignedStatement
from govdeploy.trust.validity import MAX_TOKEN_CHARS, iso

# The shape of every token ``validity.read_token`` can read: base64 (standard or url-safe alphabet,
# at most two ``=`` of padding) with any whitespace in between. No signed statement is shorter than
# TOKEN_MIN_CHARS: its keys, 32-hex nonce and 88-character signature alone are longer.
TOKEN_PATTERN = r"^\s*(?:[A-Za-z0-9+/_-]\s*)*(?:=\s*){0,2}$"
TOKEN_MIN_CHARS = 200
TOKEN_MAX_CHARS = MAX_TOKEN_CHARS

_INLINE = re.compile(r"([\\`*_\[\]|~])")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")  # raw HTML and autolinks begin so; "<= 0.1" does not
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")
# a quote, or a heading or list marker followed by a space (so "-0.5" and "0.81" stay as they are)
_BLOCK_START = re.compile(r"^(\d{0,9})((?<!\d)>|(?<=\d)[.)](?=\s|$)|(?<!\d)[#+-](?=[\s#]|$))")
_CHAMPION_VALUE = re.compile(r"^\s*(\S+) \(champion (\S+)\)\s*$")


def md(value: object) -> str:
    """``value`` as one line of literal markdown text: emphasis, code, links, table pipes, HTML tags,
    entities and a leading quote, heading or list marker are escaped; line breaks become spaces."""
    text = " ".join(str(value).split())
    text = _INLINE.sub(r"\\\1", text)
    text = _TAG_START.sub("&lt;", _ENTITY.sub("&amp;", text))
    return _BLOCK_START.sub(r"\1\\\2", text)


def code(value: object) -> str:
    """``value`` as an inline code span (no backticks or line breaks inside)."""
    return "`" + " ".join(str(value).replace("`", "'").split()) + "`"


def version_url(mlflow_url: str, model: str, version: str) -> str:
    return f"{mlflow_url.rstrip('/')}/#/models/{model}/versions/{version}"


@dataclass(frozen=True)
class Serving:
    """The version the signed serving record names champion, and its digest as the registry tags it."""

    champion: str | None
    digest: str | None = None
    readable: bool = True  # False when the serving state could not be read: what serves is unknown


@dataclass(frozen=True)
class ApproverView:
    """What does not change while a release waits: the request, the gate, what approval starts."""

    request: ApprovalRequest
    report: GateReport
    policy: Policy
    serving: Serving
    canary: bool
    mlflow_url: str
    gate_run_url: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def alias(self) -> str:
        return promotion_alias(self.policy, self.serving.champion, self.request.version, self.canary)


@dataclass(frozen=True)
class Attempt:
    """One submission, as the run page lists it."""

    at: datetime
    accepted: bool
    reason: str
    approver: str | None = None
    decision: str | None = None


def rollout_sentence(view: ApproverView) -> str:
    """What approval starts: a canary on live traffic, or a champion directly."""
    version, champion = view.request.version, view.serving.champion
    if not view.serving.readable:
        return "a promotion whose kind is unknown here: the serving state could not be read (see the notes)"
    if view.alias == CHALLENGER:
        canary = view.policy.canary
        steps = ", ".join(f"{s}%" for s in canary.steps)
        return (
            f"**a canary on live traffic**: v{md(version)} becomes challenger beside champion "
            f"v{md(champion)} and gets {steps} of live traffic in steps of up to {canary.bake_seconds} s, "
            "each judged against the champion (a breach rolls all traffic back to the champion); "
            "after the last step it becomes champion"
        )
    if champion in (None, version):
        return f"v{md(version)} **becomes champion directly** (nothing else serves: no canary)"
    return (
        f"v{md(version)} **becomes champion directly**, replacing v{md(champion)} for all traffic "
        "(neither the policy nor this release asks for a canary)"
    )


def champion_deltas(report: GateReport) -> list[tuple[str, str, str, str]]:
    """(check, candidate, champion, difference) of each gate check against the champion."""
    rows = []
    for check in report.checks:
        found = _CHAMPION_VALUE.match(check.value) if check.gate == "champion" else None
        if not found:
            continue
        new, old = found.groups()
        try:
            delta = f"{float(new) - float(old):+.4f}"
        except ValueError:
            delta = "n/a"
        rows.append((check.name, new, old, delta))
    return rows


def _serving_lines(view: ApproverView) -> list[str]:
    serving = view.serving
    if not serving.readable:
        return ["- serving now: unknown (the signed serving record could not be read)"]
    if serving.champion is None:
        return ["- serving now: nothing (the signed serving record names no champion)"]
    link = version_url(view.mlflow_url, view.request.model, serving.champion)
    lines = [
        f"- serving now: [champion v{md(serving.champion)}]({link}) (signed serving record), "
        f"digest {code(serving.digest or 'not tagged')} (registry tag)"
    ]
    deltas = champion_deltas(view.report)
    if not deltas:
        return [*lines, "- the gate report has no metric of the champion to compare with"]
    lines += ["", "| compared with the champion | candidate | champion | difference |", "|---|---|---|---|"]
    lines += [f"| {md(name)} | {md(new)} | {md(old)} | {md(delta)} |" for name, new, old, delta in deltas]
    return lines


def _gate_lines(report: GateReport) -> list[str]:
    lines = ["| result | gate | check | value | threshold |", "|---|---|---|---|---|"]
    return lines + [
        f"| {'pass' if c.passed else '**FAIL**'} | {md(c.gate)} | {md(c.name)} | {md(c.value)} | "
        f"{md(c.threshold)} |"
        for c in report.checks
    ]


def _link_lines(view: ApproverView) -> list[str]:
    request = view.request
    page = version_url(view.mlflow_url, request.model, request.version)
    gate = f"[gate run]({view.gate_run_url})" if view.gate_run_url else "gate run: not found in MLflow"
    return [f"- MLflow: [{md(request.model)} v{md(request.version)}]({page}) · {gate}"]


def approval_markdown(
    view: ApproverView, approved_by: list[str], required: int, deadline: datetime, now: datetime, last: str
) -> str:
    """The pause form's description: the last refusal first, then what is asked and what follows."""
    request = view.request
    minutes = max(0, int((deadline - now).total_seconds() // 60))
    roles = ", ".join(view.policy.approval.required_roles) or "any"
    lines = [f"> ⚠️ **Last attempt refused:** {md(last)}", ""] if last else []
    lines += [
        f"## Approve release of {md(request.model)} v{md(request.version)}?",
        "",
        f"- **time left: {minutes} min** (the wait ends at {iso(deadline)} UTC, then the release fails)",
        f"- approval starts {rollout_sentence(view)}",
        *_link_lines(view),
        *_serving_lines(view),
        "",
        f"- artifact digest: {code(request.artifact_digest)}",
        f"- policy digest: {code(request.policy_digest)}",
        f"- submitted (trained) by: **{md(request.submitted_by)}** "
        + ("(signed submission)" if request.submission_proven else "(**claimed, not proven**)")
        + " — cannot approve it",
        f"- quorum: {required} distinct approvers with a role in {md(roles)}; "
        f"so far: {md(', '.join(approved_by) or 'none')}",
        *[f"- note: {md(problem)}" for problem in view.problems],
        "",
        *_gate_lines(view.report),
        "",
        _instructions(request.flow_run_id),
    ]
    return "\n".join(lines)


def _instructions(run: str) -> str:
    return (
        "Choose **approve** or **reject**, then paste the token printed by `govdeploy approval-token "
        f"{run} --approver ID --key KEYFILE` (add `--reject --reason TEXT` to reject): the token's "
        "signed decision and reason count, and a token signed for the other decision is refused. "
        f"Or approve from a terminal: `govdeploy approve {run} --approver ID --key KEYFILE`."
    )


def status_markdown(
    view: ApproverView, approved_by: list[str], required: int, attempts: list[Attempt]
) -> str:
    """The run page's artifact: where the approvals stand, every attempt so far (newest first)."""
    request = view.request
    lines = [
        f"## Approvals of {md(request.model)} v{md(request.version)}: {len(approved_by)} of {required}",
        "",
        f"Approved by: {md(', '.join(approved_by) or 'nobody yet')}",
        "",
        "| at (UTC) | result | claimed approver | decision | reason |",
        "|---|---|---|---|---|",
    ]
    for a in reversed(attempts):
        result = "counted" if a.accepted else "**refused**"
        lines.append(
            f"| {iso(a.at)} | {result} | {md(a.approver or '-')} | {md(a.decision or '-')} | {md(a.reason)} |"
        )
    return "\n".join(lines)


def form_problem(form_decision: str | None, signed: SignedStatement | None) -> str | None:
    """Why the form's submission is refused before the ledger judges the token, or None: the form
    names a decision the token was not signed for, or a rejection has no signed reason."""
    if signed is None:
        return None
    statement = signed.statement
    if form_decision is not None and form_decision != statement.decision:
        return (
            f"the form says {form_decision!r} but the token of {statement.approver} is signed "
            f"{statement.decision!r}: the signed decision counts, so choose {statement.decision!r} in the "
            "form or sign a new token"
        )
    if statement.decision == "reject" and not statement.reason.strip():
        return (
            f"the rejection of {statement.approver} has no signed reason; sign one with "
            "'govdeploy approval-token RUN_ID --approver ID --key KEYFILE --reject --reason TEXT'"
        )
    return None
