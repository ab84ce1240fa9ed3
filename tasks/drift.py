"""Drift tasks: the verified reference, the gateway's window, the measurement, its record, the reaction."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from govdeploy.backends import decisions
from govdeploy.backends.storage import s3_client
from govdeploy.config.catalog import ModelSpec
from govdeploy.config.governance import Governance
from govdeploy.config.settings import get_settings
from govdeploy.errors import DataError
from govdeploy.monitoring.alerts import post_alert
from govdeploy.monitoring.decision import DriftDecision, decide, performance
from govdeploy.monitoring.drift import DriftResult, compute_drift
from govdeploy.monitoring.reports import evidently_drift_report, evidently_performance_html
from govdeploy.monitoring.window import Window, require_rows
from govdeploy.monitoring.window_columns import read_window
from govdeploy.monitoring.window_source import batch_keys, bucket_source
from govdeploy.release.reference import PREDICTION, read_reference
from govdeploy.serving import rollout
from govdeploy.trust.keys import master_key
from govdeploy.trust.roots import load_roots
from govdeploy.trust.versions import verified_directory
from tasks.artifacts import artifact_key


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def serving_version(model: str) -> str:
    """The champion the signed serving record names; a drift check needs one."""
    version = rollout.serving_champion(get_settings(), model)
    if version is None:
        raise DataError(
            f"no champion of {model!r} serves, so there is no traffic to check; release one first"
        )
    return version


@task(cache_policy=NO_CACHE)
def load_reference(model: str, version: str, spec: ModelSpec) -> pd.DataFrame:
    """The training reference signed with the serving version (release level), verified before use."""
    settings = get_settings()
    with verified_directory(
        model,
        version,
        roots=load_roots(settings),
        level="release",
        tracking_uri=settings.mlflow_url,
    ) as (directory, _):
        reference = read_reference(directory, spec)
    get_run_logger().info("reference of %s v%s: %d rows, signature verified", model, version, len(reference))
    return reference


@task(cache_policy=NO_CACHE)
def load_window(
    model: str, version: str, spec: ModelSpec, start: datetime, end: datetime, min_rows: int
) -> Window:
    """The serving version's predictions of [start, end) from the bucket, with the ground truth so far."""
    settings = get_settings()
    client = s3_client(settings)
    keys = batch_keys(client, settings.bucket, start, max(end, datetime.now(UTC)))
    began = time.perf_counter()
    source, key = bucket_source(client, settings.bucket), master_key(settings.keys_dir)
    current = read_window(source, keys, key, spec, model, version, start, end)
    get_run_logger().info(
        "window %s to %s: %d batches read in %.1f s, %d rows of v%s, %d labels, %d answers of other versions",
        start.isoformat(timespec="seconds"),
        end.isoformat(timespec="seconds"),
        len(keys),
        time.perf_counter() - began,
        len(current.rows),
        version,
        len(current.labels),
        current.other_versions,
    )
    get_run_logger().info(
        "I/O log of %d writers, each a gap-free run of batches (writer first to last: %s), no record twice",
        len(current.writers),
        ", ".join(f"{writer} {first} to {last}" for writer, (first, last) in sorted(current.writers.items())),
    )
    require_rows(current, min_rows)
    return current


@task(cache_policy=NO_CACHE)
def measure_drift(reference: pd.DataFrame, window: Window, spec: ModelSpec) -> DriftResult:
    """Per-column drift of the features and the score (Evidently's default tests, computed once)."""
    numerical = [*spec.numeric_features, PREDICTION]
    return compute_drift(
        reference[[*numerical, *spec.categorical_features]],
        window.rows[[*numerical, *spec.categorical_features]],
        numerical=numerical,
        categorical=spec.categorical_features,
    )


@task(cache_policy=NO_CACHE)
def decide_drift(
    reference: pd.DataFrame, window: Window, drift: DriftResult, config: Governance
) -> DriftDecision:
    """The policy's decision: record, retrain, or rollback and retrain."""
    policy = config.policy.drift
    labelled = window.labelled(config.spec.label)
    perf = performance(reference, labelled, config.spec.label, policy.min_labelled_rows)
    decision = decide(policy, drift, perf)
    get_run_logger().info("drift decision %s: %s", decision.action, "; ".join(decision.reasons))
    return decision


def drift_summary(
    window: Window, drift: DriftResult, decision: DriftDecision, shift: float
) -> dict[str, Any]:
    return {
        "model": window.model,
        "version": window.version,
        "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "window": {
            "start": window.start.isoformat(timespec="seconds"),
            "end": window.end.isoformat(timespec="seconds"),
            "rows": len(window.rows),
            "labels": len(window.labels),
            "other_versions": window.other_versions,
        },
        "reference_rows": drift.reference_rows,
        "drift": drift.to_dict(),
        "decision": decision.model_dump(mode="json"),
        "shift_estimate": shift,
    }


def drift_reports(
    reference: pd.DataFrame, window: Window, summary: dict[str, Any], spec: ModelSpec
) -> tuple[dict[str, str], dict[str, Any]]:
    """The Evidently HTML reports of a drift check by file name (data drift, built with the drift share
    the decision used; classification quality once ground truth arrived), and the data drift report's
    headline (recorded in the summary beside the decision)."""
    numerical = [*spec.numeric_features, PREDICTION]
    columns = [*numerical, *spec.categorical_features]
    report = evidently_drift_report(
        reference[columns],
        window.rows[columns],
        numerical=numerical,
        categorical=spec.categorical_features,
        drift_share=summary["decision"]["max_drifted_share"],
    )
    reports = {"report.html": report.html}
    if summary["decision"]["performance"] is not None:  # ground truth arrived: classification quality too
        reports["performance.html"] = evidently_performance_html(
            reference, window.labelled(spec.label), target=spec.label, score=PREDICTION
        )
    headline = {
        "dataset_drift": report.dataset_drift,
        "drift_share": report.drift_share,
        "drifted_share": report.drifted_share,
    }
    return reports, headline


@task(cache_policy=NO_CACHE)
def record_drift_check(
    reference: pd.DataFrame, window: Window, summary: dict[str, Any], spec: ModelSpec, policy_digest: str
) -> str:
    """Evidently reports and summary on the serving version in MLflow; Prefect link and table. The
    data drift report uses the policy's drift share, so its headline agrees with the decision; a
    disagreement left (the report runs on a sample of a very large window) is logged as a warning."""
    settings = get_settings()
    reports, headline = drift_reports(reference, window, summary, spec)
    if headline["dataset_drift"] != summary["decision"]["data_drift"]:
        get_run_logger().warning(
            "the Evidently report (on a sample) says dataset drift %s at share %.2f, the decision %s at %.2f",
            "detected" if headline["dataset_drift"] else "not detected",
            headline["drifted_share"],
            "detected" if summary["decision"]["data_drift"] else "not detected",
            summary["decision"]["drifted_share"],
        )
    url = decisions.record_drift(
        name=window.model,
        version=window.version,
        summary={**summary, "evidently": headline},
        reports=reports,
        policy_digest=policy_digest,
        tracking_uri=settings.mlflow_url,
        experiment=settings.experiment,
    )
    decision = summary["decision"]
    create_link_artifact(
        key=artifact_key("drift-report", window.model),
        link=url,
        link_text=f"Evidently drift report of {window.model} v{window.version} (MLflow run)",
        description=f"Drift check: {decision['action']}",
    )
    create_table_artifact(
        key=artifact_key("drift", window.model, f"v{window.version}"),
        table=[
            {
                "column": c["column"],
                "method": c["method"],
                "score": c["score"],
                "threshold": c["threshold"],
                "drifted": c["drifted"],
            }
            for c in summary["drift"]["columns"]
        ],
        description=f"Drift decision **{decision['action']}**: " + "; ".join(decision["reasons"]),
    )
    return url


@task(cache_policy=NO_CACHE)
def announce(summary: dict[str, Any]) -> list[str]:
    """Events the automations react to: drift detected (retrain), rollback requested (rollback)."""
    decision = summary["decision"]
    if decision["action"] == "record":
        return []
    model = summary["model"]
    resource = {"prefect.resource.id": f"govdeploy.model.{model}", "prefect.resource.name": model}
    payload = {
        "model": model,
        "version": summary["version"],
        "action": decision["action"],
        "reasons": decision["reasons"],
        "summary": "; ".join(decision["reasons"])[:500],
        "shift_estimate": summary["shift_estimate"],
    }
    events = ["govdeploy.drift.detected"]
    if decision["action"] == "rollback_and_retrain":
        events.append("govdeploy.rollback.requested")
    for name in events:
        emit_event(event=name, resource=resource, payload=payload)
    get_run_logger().warning("emitted %s for %s v%s", events, model, summary["version"])
    return events


@task(cache_policy=NO_CACHE)
def drift_failed(model: str, reason: str) -> str:
    """A drift check that could not decide: alert (webhook and Prefect event); returns the delivery."""
    alert = {"kind": "drift.failed", "model": model, "reason": reason}
    emit_event(
        event="govdeploy.drift.failed",
        resource={"prefect.resource.id": f"govdeploy.model.{model}", "prefect.resource.name": model},
        payload=alert,
    )
    delivery = post_alert(get_settings().alert_webhook, alert)
    get_run_logger().error("drift check of %s failed, nothing reacts: %s; alert %s", model, reason, delivery)
    return delivery
