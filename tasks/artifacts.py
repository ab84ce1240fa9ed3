"""Prefect UI artifacts that show an ML engineer what the gates decided."""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from govdeploy.expectations import ValidationReport
from govdeploy.gate import GateReport


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def publish_validation(report: ValidationReport, model: str, purpose: str) -> None:
    create_table_artifact(
        key=artifact_key("validation", model, purpose),
        table=[r.model_dump() for r in report.results],
        description=f"Great Expectations suite `{report.suite}` on {report.rows} rows ({purpose}): "
        + ("**passed**" if report.passed else "**failed**: " + "; ".join(report.problems)),
    )


def publish_gate(report: GateReport, mlflow_url: str, gate_run_id: str) -> None:
    create_table_artifact(
        key=artifact_key("gate", report.model, f"v{report.version}"),
        table=[c.model_dump() for c in report.checks],
        description=f"Release gate of {report.model} v{report.version}: "
        + ("passed" if report.passed else "FAILED"),
    )
    create_markdown_artifact(
        key=artifact_key("gate-summary", report.model, f"v{report.version}"),
        markdown=gate_markdown(report, mlflow_url, gate_run_id),
        description="Release gate decision",
    )


def gate_markdown(report: GateReport, mlflow_url: str, gate_run_id: str) -> str:
    verdict = "✅ passed" if report.passed else "❌ failed"
    lines = [
        f"# Release gate: {report.model} v{report.version} — {verdict}",
        "",
        f"- policy digest: `{report.policy_digest}`",
        f"- decided at: {report.decided_at}",
        f"- evidence in MLflow: [{gate_run_id}]({mlflow_url}/#/experiments/0/runs/{gate_run_id})"
        if gate_run_id
        else "- evidence in MLflow: not recorded",
        "",
        "| gate | check | value | threshold | result |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {c.gate} | {c.name} | {c.value} | {c.threshold} | {'pass' if c.passed else '**FAIL**'} |"
        for c in report.checks
    ]
    if not report.passed:
        lines += ["", "## Why it failed", ""] + [f"- {c.reason}" for c in report.failures]
    return "\n".join(lines)
