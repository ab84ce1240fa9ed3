"""What an approver reads: escaped text, the form's description, the run page's status, the checks on
what the form says, and the release summary a version's MLflow description carries."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.config.policy import CanaryPolicy, Policy, load_policy
from govdeploy.release.approval_view import (
    ApproverView,
    Attempt,
    Serving,
    approval_markdown,
    champion_deltas,
    form_problem,
    md,
    rollout_sentence,
    status_markdown,
)
from govdeploy.release.gate import Check, GateReport
from govdeploy.release.promotion import Promotion, release_description
from govdeploy.trust.approvals import (
    ApprovalRequest,
    Decision,
    SignedStatement,
    make_statement,
    read_approval_token,
    sign_statement,
)
from tests.conftest import CONFIG_DIR

REQUEST = ApprovalRequest(
    flow_run_id="run-1",
    model="credit-risk",
    version="7",
    artifact_digest="a" * 64,
    submitted_by="dana",
    policy_digest="p" * 64,
)
REPORT = GateReport(
    model="credit-risk",
    version="7",
    policy_digest="p" * 64,
    decided_at="2026-11-30T10:00:00+00:00",
    checks=[
        Check(
            gate="performance",
            name="roc_auc minimum",
            value="0.8100",
            threshold=">= 0.75",
            passed=True,
            reason="ok",
        ),
        Check(
            gate="champion",
            name="roc_auc vs champion v5",
            value="0.8100 (champion 0.8000)",
            threshold="drop <= 0.02",
            passed=True,
            reason="ok",
        ),
        Check(
            gate="fairness", name="gender dpd", value="0.0400", threshold="<= 0.1", passed=True, reason="ok"
        ),
    ],
)
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


def policy(canary: bool = False) -> Policy:
    canary_policy = CanaryPolicy(enabled=canary, steps=[5, 25, 100], bake_seconds=60)
    return load_policy(CONFIG_DIR / "policy.yaml").model_copy(update={"canary": canary_policy})


def view(champion: str | None = "5", policy_canary: bool = False, **changes: object) -> ApproverView:
    serving = Serving(champion, "c" * 64 if champion else None)
    fields: dict[str, object] = {
        "request": REQUEST,
        "report": REPORT,
        "policy": policy(policy_canary),
        "serving": serving,
        "canary": False,
        "mlflow_url": "http://127.0.0.1:5000",
        "gate_run_url": "http://127.0.0.1:5000/#/experiments/1/runs/abc",
        **changes,
    }
    return ApproverView(**fields)  # type: ignore[arg-type]


def signed(decision: Decision = "approve", reason: str = "checked") -> SignedStatement:
    key = ed25519.Ed25519PrivateKey.generate()
    token = sign_statement(make_statement(REQUEST, "alice", decision, reason, 30), key)
    return read_approval_token(token)


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        (">= 0.75", "\\>= 0.75"),
        ("<= 0.1", "<= 0.1"),
        ("0.8100", "0.8100"),
        ("-0.5", "-0.5"),
        ("a | b", "a \\| b"),
        ("*bold* _it_ `code`", "\\*bold\\* \\_it\\_ \\`code\\`"),
        ("[click](http://evil.example)", "\\[click\\](http://evil.example)"),
        ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)>"),
        ("&gt; kept", "&amp;gt; kept"),
        ("# heading", "\\# heading"),
        ("- item", "\\- item"),
        ("1. item", "1\\. item"),
        ("two\nlines\r\n| x |", "two lines \\| x \\|"),
    ],
)
def test_md_shows_text_as_written(text: str, escaped: str) -> None:
    assert md(text) == escaped


def test_the_description_leads_with_the_refusal_then_time_links_and_serving() -> None:
    text = approval_markdown(
        view(), ["alice"], 2, NOW + timedelta(minutes=42, seconds=30), NOW, "bad | <b>sig</b>"
    )
    first = text.splitlines()[0]
    assert first == "> ⚠️ **Last attempt refused:** bad \\| &lt;b>sig&lt;/b>"
    assert "**time left: 42 min** (the wait ends at 2026-11-30T10:42:30+00:00 UTC" in text
    assert "[credit-risk v7](http://127.0.0.1:5000/#/models/credit-risk/versions/7)" in text
    assert "[gate run](http://127.0.0.1:5000/#/experiments/1/runs/abc)" in text
    assert "[champion v5](http://127.0.0.1:5000/#/models/credit-risk/versions/5)" in text
    assert f"`{'c' * 64}` (registry tag)" in text
    assert "| roc\\_auc vs champion v5 | 0.8100 | 0.8000 | +0.0100 |" in text
    assert "| pass | performance | roc\\_auc minimum | 0.8100 | \\>= 0.75 |" in text
    assert "so far: alice" in text and "becomes champion directly**, replacing v5" in text


def test_without_a_refusal_the_question_comes_first() -> None:
    text = approval_markdown(view(champion=None), [], 2, NOW + timedelta(minutes=5), NOW, "")
    assert text.startswith("## Approve release of credit-risk v7?")
    assert "serving now: nothing" in text and "becomes champion directly** (nothing else serves" in text


def test_hostile_names_cannot_add_links_or_html() -> None:
    hostile = REQUEST.model_copy(update={"submitted_by": "[me](http://evil)<script>"})
    text = approval_markdown(view(request=hostile), [], 2, NOW, NOW, "")
    assert "](http://evil)" not in text.replace("\\](http://evil)", "")
    assert "<script>" not in text


def test_the_canary_sentence_names_the_steps() -> None:
    sentence = rollout_sentence(view(policy_canary=True))
    assert sentence.startswith("**a canary on live traffic**")
    assert "5%, 25%, 100% of live traffic" in sentence and "champion v5" in sentence
    asked = view(canary=True)  # the release asks, the policy does not
    assert "canary" in rollout_sentence(asked)
    assert "unknown" in rollout_sentence(view(serving=Serving(None, readable=False)))


def test_champion_deltas_come_from_the_gate_report() -> None:
    assert champion_deltas(REPORT) == [("roc_auc vs champion v5", "0.8100", "0.8000", "+0.0100")]


def test_the_status_lists_attempts_newest_first() -> None:
    attempts = [
        Attempt(NOW, False, "the signature does not verify", "alice", "approve"),
        Attempt(NOW + timedelta(seconds=5), True, "approval 1 of 2 by bob", "bob", "approve"),
    ]
    text = status_markdown(view(), ["bob"], 2, attempts)
    assert text.startswith("## Approvals of credit-risk v7: 1 of 2")
    rows = [line for line in text.splitlines() if line.startswith("| 2026")]
    assert "counted" in rows[0] and "**refused**" in rows[1]


def test_the_form_cannot_contradict_the_signed_decision() -> None:
    assert form_problem("approve", signed("approve")) is None
    assert form_problem(None, signed("reject", "fairness evidence incomplete")) is None
    problem = form_problem("approve", signed("reject", "no"))
    assert problem is not None and "signed 'reject'" in problem and "choose 'reject'" in problem
    blank = form_problem("reject", signed("reject", "  "))
    assert blank is not None and "no signed reason" in blank
    assert form_problem("approve", None) is None  # the ledger refuses what is not a token


def test_the_release_description_is_a_readable_summary() -> None:
    approvals = [signed("approve", "checked the *gate*")]
    gate = {
        "passed": True,
        "checks": [c.model_dump() for c in REPORT.checks],
        "decided_at": REPORT.decided_at,
    }
    promoted = Promotion(
        model="credit-risk",
        version="7",
        alias="champion",
        previous=None,
        artifact_digest="a" * 64,
        signature_sha256="s" * 64,
        approvers=["alice"],
        promoted_at="2026-11-30T10:05:00+00:00",
    )
    text = release_description(promoted, REQUEST, approvals, gate)
    assert text.startswith("### Released 2026-11-30T10:05:00+00:00 as champion")
    assert re.search(r"- \*\*alice\*\* at \S+: checked the \\\*gate\\\*", text)
    assert "Gates: 3 of 3 checks passed" in text
    assert "| performance | roc\\_auc minimum | 0.8100 | \\>= 0.75 | pass |" in text
    assert f"artifact digest: `{'a' * 64}`" in text and f"policy digest: `{'p' * 64}`" in text
    assert "{" not in text  # no JSON for people to read
    assert "Gates: 0 of 0" in release_description(promoted, REQUEST, approvals, {"passed": True})
