"""The maturity-model controls (levels 1-3, streams A and B) mapped to the files of an evidence pack.

A control is evidenced when at least one of the pack paths it names (a file or a directory prefix)
is present; otherwise it is a gap, with the reason: most stream-B controls are runtime properties
of the serving path that one version's pack can only point at.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Control:
    id: str
    level: int
    stream: str  # "A" process, "B" technical
    name: str
    evidence: tuple[str, ...]  # pack paths (a trailing "/" means any file below)
    where: str  # where the control lives in govdeploy
    gap: str = "no file of this pack evidences it"


CONTROLS: tuple[Control, ...] = (
    Control(
        "L1-A1",
        1,
        "A",
        "environment capture",
        ("artifacts/governance/environment.json",),
        "release/environment.py, tasks/training.py",
    ),
    Control(
        "L1-A2",
        1,
        "A",
        "dependency logging (versions, SBOM)",
        ("artifacts/governance/sbom.cdx.json", "artifacts/governance/environment.json"),
        "release/environment.py",
    ),
    Control(
        "L1-A3",
        1,
        "A",
        "tracking of every release",
        ("registry/version.json", "gate/decision_run.json", "audit/records.jsonl"),
        "backends/registry.py, backends/decisions.py, trust/audit.py",
    ),
    Control(
        "L1-B1",
        1,
        "B",
        "performance monitoring over time",
        ("gate/decision_run.json", "drift/"),
        "monitoring/decision.py, serving/gateway/metrics.py",
        "runtime metrics live in the gateway's /metrics, not in a version's pack",
    ),
    Control(
        "L1-B2",
        1,
        "B",
        "input/output logging (with PII masking)",
        (),
        "monitoring/iolog.py, monitoring/iorecords.py",
        "runtime control: the I/O log batches are in the bucket, not in this pack",
    ),
    Control(
        "L1-B3",
        1,
        "B",
        "usage metrics (invocations, latency)",
        (),
        "serving/gateway/metrics.py",
        "runtime control: the gateway's /metrics endpoint",
    ),
    Control(
        "L2-A1",
        2,
        "A",
        "approval workflows with sign-off",
        ("artifacts/approvals.json", "approvals/statements.json", "artifacts/release.sig"),
        "trust/approvals.py, trust/approval_ledger.py",
    ),
    Control(
        "L2-A2",
        2,
        "A",
        "rollback plans that work",
        ("serving/periods.json", "serving/records/"),
        "serving/rollout.py, flows/rollback.py",
    ),
    Control(
        "L2-A3",
        2,
        "A",
        "audit trail of deployment decisions",
        ("audit/records.jsonl", "audit/anchors.json"),
        "trust/audit.py, trust/audit_verify.py",
    ),
    Control(
        "L2-B1",
        2,
        "B",
        "role-based access to deployed models",
        (),
        "serving/gateway/access.py",
        "runtime control: config/access.yaml and the gateway",
    ),
    Control(
        "L2-B2",
        2,
        "B",
        "access logging",
        (),
        "serving/gateway/main.py, monitoring/iolog.py",
        "runtime control: every gateway response is an I/O record in the bucket",
    ),
    Control(
        "L2-B3",
        2,
        "B",
        "encryption of artifacts and sensitive data at rest",
        ("audit/records.jsonl",),
        "trust/encryption.py",
        "no sealed audit payload in this pack; the I/O log's encryption is a runtime property",
    ),
    Control(
        "L3-A1",
        3,
        "A",
        "compliance checks as code in CI",
        ("gate/gate_report.json",),
        "config/policy.py, release/gate.py",
    ),
    Control(
        "L3-A2",
        3,
        "A",
        "automation of those checks in the pipelines",
        ("gate/decision_run.json",),
        "flows/release.py",
    ),
    Control(
        "L3-A3",
        3,
        "A",
        "audit readiness (evidence on demand)",
        ("manifest.json", "verification.json"),
        "govdeploy evidence export/verify (evidence/)",
    ),
    Control(
        "L3-B1",
        3,
        "B",
        "fallbacks and safe shutdown",
        ("serving/records/",),
        "serving/gateway/state.py, serving/rollout.py (kill switch)",
    ),
    Control(
        "L3-B2",
        3,
        "B",
        "drift detection",
        ("drift/",),
        "monitoring/drift.py, flows/drift.py",
        "no drift check of this version was recorded",
    ),
    Control(
        "L3-B3",
        3,
        "B",
        "real-time alerts for anomalies",
        (),
        "monitoring/anomalies.py, monitoring/alerts.py",
        "runtime control: alerts go to the webhook and Prefect events",
    ),
)


def _present(pattern: str, files: set[str]) -> list[str]:
    if pattern.endswith("/"):
        return sorted(f for f in files if f.startswith(pattern))
    return [pattern] if pattern in files else []


def control_matrix(files: Iterable[str], facts: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every control with the pack files that evidence it, or ``gap`` and why."""
    present = set(files)
    sealed = bool((facts or {}).get("audit", {}).get("sealed_records"))
    rows = []
    for control in CONTROLS:
        found = [f for pattern in control.evidence for f in _present(pattern, present)]
        if control.id == "L2-B3" and not sealed:
            found = []
        rows.append(
            {
                "id": control.id,
                "level": control.level,
                "stream": control.stream,
                "control": control.name,
                "where": control.where,
                "evidence": found,
                "status": "evidenced" if found else "gap",
                "gap": None if found else control.gap,
            }
        )
    return rows
