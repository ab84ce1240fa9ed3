"""Runs on the MLflow tracking server for gate and drift decisions: one finished run per decision,
then the version's tags.

A released version's gate evidence is never overwritten (``record_gate``, ``gate_version_tags``):
later gate runs are only in their own run and in ``govdeploy.gate.latest``. Through the server's own
``MlflowClient`` (``govdeploy.backends.registry.client``), never MLflow's fluent API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from govdeploy.backends import registry
from govdeploy.backends.registry import TAG, client, registry_call
from govdeploy.backends.tracking import experiment_id


@dataclass(frozen=True)
class GateRecord:
    """Where a gate decision was logged, and whether the version's gate evidence took it."""

    url: str
    run_id: str
    kept: str | None  # why the version's gate evidence was kept as it was (it is released), or None


def record_gate(
    *,
    name: str,
    version: str,
    report: dict[str, Any],
    metrics: dict[str, float],
    passed: bool,
    policy_digest: str,
    tracking_uri: str,
    experiment: str,
    flow_run_id: str | None = None,
) -> GateRecord:
    """Log a gate decision as its own run (tagged with the flow run that gated), then tag the version.

    ``govdeploy.gate.latest`` always points at the newest gate run. The version's gate evidence
    (``govdeploy.gate``, ``.run_id``, ``.policy_digest``, ``.summary``) follows each run until the
    version is released; after that it stays the gate result the release was promoted on, and a later
    gate run is only in its own run and in ``gate.latest`` (``GateRecord.kept`` says so)."""
    verdict = "passed" if passed else "failed"
    url, run_id = _log_decision_run(
        kind="gate",
        what="gate decision",
        name=name,
        version=version,
        policy_digest=policy_digest,
        run_tags={"gate": verdict, "flow_run_id": flow_run_id or ""},
        metrics=metrics,
        files={"governance/gate_report.json": report},
        tracking_uri=tracking_uri,
        experiment=experiment,
    )
    latest = {"gate": verdict, "run_id": run_id, "flow_run_id": flow_run_id, "policy_digest": policy_digest}
    evidence = {
        "gate": verdict,
        "gate.run_id": run_id,
        "gate.policy_digest": policy_digest,
        "gate.summary": json.dumps(report.get("summary", ""))[:4000],
    }
    tags, kept = gate_version_tags(
        registry.version_tags(name, version, tracking_uri), evidence, json.dumps(latest, sort_keys=True)
    )
    registry.set_version_tags(name, version, tags, tracking_uri)
    return GateRecord(url, run_id, kept)


def gate_version_tags(
    existing: dict[str, str], evidence: dict[str, str], latest: str
) -> tuple[dict[str, str], str | None]:
    """The version tags a gate run sets, given the version's tags now: ``gate.latest`` always, the gate
    evidence only while the version has no ``govdeploy.release``; and why the evidence was kept, if so."""
    tags = {f"{TAG}gate.latest": latest}
    if f"{TAG}release" not in existing:
        return {**tags, **{f"{TAG}{key}": value for key, value in evidence.items()}}, None
    released = existing.get(f"{TAG}gate", "not recorded")
    kept = (
        f"it is released, so its release evidence is kept (gate {released} in run "
        f"{existing.get(f'{TAG}gate.run_id', 'not recorded')}); this gate run ({evidence['gate']}) is "
        f"recorded in run {evidence['gate.run_id']} and in {TAG}gate.latest"
    )
    return tags, kept


def record_drift(
    *,
    name: str,
    version: str,
    summary: dict[str, Any],
    reports: dict[str, str],
    policy_digest: str,
    tracking_uri: str,
    experiment: str,
) -> str:
    """Log a drift check as its own run (HTML reports by file name, summary) and tag the version; return
    the run's URL."""
    action = summary["decision"]["action"]
    url, run_id = _log_decision_run(
        kind="drift",
        what="drift check",
        name=name,
        version=version,
        policy_digest=policy_digest,
        run_tags={"drift.action": action},
        metrics={"drifted_share": summary["decision"]["drifted_share"], "rows": summary["window"]["rows"]},
        files={"drift/summary.json": summary, **{f"drift/{n}": text for n, text in reports.items()}},
        tracking_uri=tracking_uri,
        experiment=experiment,
    )
    tags = {"drift.action": action, "drift.checked_at": summary["checked_at"], "drift.run_id": run_id}
    registry.set_version_tags(name, version, {f"{TAG}{k}": v for k, v in tags.items()}, tracking_uri)
    return url


def _log_decision_run(
    *,
    kind: str,
    what: str,
    name: str,
    version: str,
    policy_digest: str,
    run_tags: dict[str, str],
    metrics: dict[str, float],
    files: dict[str, dict[str, Any] | str],
    tracking_uri: str,
    experiment: str,
) -> tuple[str, str]:
    """One finished run per decision (tags, metrics, JSON or text files); returns its URL and id."""
    server = client(tracking_uri)
    base = {"kind": kind, "model": name, "version": version, "policy_digest": policy_digest}
    run_in = experiment_id(tracking_uri, experiment)
    with registry_call(f"record the {what} of {name!r} version {version}", tracking_uri):
        run = server.create_run(
            run_in,
            run_name=f"{kind}-{name}-v{version}",
            tags={f"{TAG}{key}": value for key, value in {**base, **run_tags}.items()},
        )
        run_id = run.info.run_id
        for metric, value in metrics.items():
            server.log_metric(run_id, metric, value)
        for path, content in files.items():
            if isinstance(content, str):
                server.log_text(run_id, content, path)
            else:
                server.log_dict(run_id, content, path)
        server.set_terminated(run_id)
    return f"{tracking_uri}/#/experiments/{run_in}/runs/{run_id}", run_id
