"""Prefect UI artifacts that show an ML engineer what the gates decided."""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from govdeploy.release.gate import GateReport
from govdeploy.release.validation import ValidationReport


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


def publish_gate(report: GateReport, gate_run_url: str) -> None:
    create_table_artifact(
        key=artifact_key("gate", report.model, f"v{report.version}"),
        table=[c.model_dump() for c in report.checks],
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
        f"# Release gate: {report.model} v{report.version} — {verdict}",
        "",
        f"- policy digest: `{report.policy_digest}`",
        f"- decided at: {report.decided_at}",
        f"- evidence in MLflow: [gate run]({gate_run_url})",
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
