"""Prefect UI artifacts that show an ML engineer what the gates decided, and an approver where a
waiting release stands.

The UI renders every cell of a table artifact as markdown (a threshold ">= 0.75" became a quote):
text cells go through ``approval_view.md``, so they show as written.
"""

from __future__ import annotations

import json
import re
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from govdeploy.backends import registry, tracking
from govdeploy.config.policy import Policy
from govdeploy.config.settings import get_settings
from govdeploy.errors import GovdeployError
from govdeploy.release.approval_view import ApproverView, Attempt, Serving, md, status_markdown
from govdeploy.release.gate import GateReport
from govdeploy.release.validation import ValidationReport
from govdeploy.serving import rollout
from govdeploy.trust.approvals import ApprovalRequest


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def table_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a table artifact with their text escaped, so that each cell shows as written."""
    return [{k: md(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows]


def publish_validation(report: ValidationReport, model: str, purpose: str) -> None:
    create_table_artifact(
        key=artifact_key("validation", model, purpose),
        table=table_rows([r.model_dump() for r in report.results]),
        description=f"Great Expectations suite `{report.suite}` on {report.rows} rows ({purpose}): "
        + ("**passed**" if report.passed else "**failed**: " + "; ".join(report.problems)),
    )


def publish_gate(report: GateReport, gate_run_url: str) -> None:
    create_table_artifact(
        key=artifact_key("gate", report.model, f"v{report.version}"),
        table=table_rows([c.model_dump() for c in report.checks]),
        description=f"Release gate of {report.model} v{report.version}: "
        + ("passed" if report.passed else "FAILED"),
    )
    create_markdown_artifact(
        key=artifact_key("gate-summary", report.model, f"v{report.version}"),
        markdown=gate_markdown(report, gate_run_url),
        description="Release gate decision",
    )


def gate_markdown(report: GateReport, gate_run_url: str) -> str:
    verdict = "✅ passed" if report.passed else "❌ failed"
    lines = [
        f"# Release gate: {md(report.model)} v{md(report.version)} — {verdict}",
        "",
        f"- policy digest: `{report.policy_digest}`",
        f"- decided at: {md(report.decided_at)}",
        f"- evidence in MLflow: [gate run]({gate_run_url})",
        "",
        "| gate | check | value | threshold | result |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {md(c.gate)} | {md(c.name)} | {md(c.value)} | {md(c.threshold)} | "
        f"{'pass' if c.passed else '**FAIL**'} |"
        for c in report.checks
    ]
    if not report.passed:
        lines += ["", "## Why it failed", ""] + [f"- {md(c.reason)}" for c in report.failures]
    return "\n".join(lines)


def approver_view(request: ApprovalRequest, report: GateReport, policy: Policy, canary: bool) -> ApproverView:
    """What the approval form shows besides the request: the version serving now (from the signed
    serving record; its digest from the registry), the gate run of this release. What cannot be read
    is named in the view's notes, never a reason to fail the release."""
    settings = get_settings()
    problems: list[str] = []
    try:
        champion = rollout.serving_champion(settings, request.model)
        serving = Serving(champion, _tag(request.model, champion, f"{registry.TAG}artifact_digest"))
    except GovdeployError as exc:
        serving = Serving(None, readable=False)
        problems.append(f"the serving state could not be read: {exc}")
    try:
        gate_run = _gate_run_url(request)
    except GovdeployError as exc:
        gate_run = None
        problems.append(f"the gate run could not be found: {exc}")
    return ApproverView(request, report, policy, serving, canary, settings.mlflow_url, gate_run, problems)


def _tag(model: str, version: str | None, key: str) -> str | None:
    if version is None:
        return None
    return registry.version_tags(model, version, get_settings().mlflow_url).get(key)


def _gate_run_url(request: ApprovalRequest) -> str | None:
    """The MLflow run of this release's gate decision (``govdeploy.gate.latest`` names it)."""
    settings = get_settings()
    latest = json.loads(_tag(request.model, request.version, f"{registry.TAG}gate.latest") or "{}")
    if not isinstance(latest, dict) or latest.get("flow_run_id") != request.flow_run_id:
        return None
    experiment = tracking.experiment_id(settings.mlflow_url, settings.experiment)
    return f"{settings.mlflow_url}/#/experiments/{experiment}/runs/{latest.get('run_id')}"


def publish_approval_status(
    view: ApproverView, approved_by: list[str], required: int, attempts: list[Attempt]
) -> None:
    """The run page's live view of the approvals: one artifact version per attempt."""
    request = view.request
    create_markdown_artifact(
        key=artifact_key("approval-status", request.model, f"v{request.version}"),
        markdown=status_markdown(view, approved_by, required, attempts),
        description=f"Approvals of {request.model} v{request.version}",
    )
