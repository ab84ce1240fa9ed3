"""Runs on the MLflow tracking server: the training run that registers a candidate, and one run per
gate or drift decision.

Through the server's own ``MlflowClient`` (``govdeploy.backends.registry.client``); logging a model
exists only in MLflow's fluent API, so that one call runs inside ``_fluent``, which points the
fluent API at the same server for the call and restores MLflow's state (and the environment
variables it sets) afterwards.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from pydantic import BaseModel

from govdeploy.backends.registry import TAG, client, registry_call, set_version_tags


class CandidateVersion(BaseModel):
    model: str
    version: str
    run_id: str
    model_uri: str


_FLUENT = threading.Lock()
_FLUENT_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextmanager
def _fluent(tracking_uri: str) -> Iterator[None]:
    """MLflow's fluent API pointed at ``tracking_uri`` for the duration of the block, then restored
    (its module state and the environment variables it sets as a side effect)."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_state
    from mlflow.tracking._tracking_service import utils as tracking_state

    with _FLUENT:
        saved = (tracking_state._tracking_uri, registry_state._registry_uri)
        saved_env = {name: os.environ.get(name) for name in _FLUENT_ENV}
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        try:
            yield
        finally:
            tracking_state._tracking_uri, registry_state._registry_uri = saved
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def experiment_id(tracking_uri: str, experiment: str) -> str:
    """The id of the experiment on the server, created if missing."""
    with registry_call(f"open experiment {experiment!r}", tracking_uri):
        found = client(tracking_uri).get_experiment_by_name(experiment)
        return str(found.experiment_id if found else client(tracking_uri).create_experiment(experiment))


def log_candidate(
    *,
    model: Any,
    name: str,
    input_example: pd.DataFrame,
    pip_requirements: list[str],
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifacts: dict[str, Any],
    files: list[str],
    tracking_uri: str,
    experiment: str,
) -> CandidateVersion:
    """Log a fitted model and its evidence in one run and register it as a new version."""
    import mlflow
    from mlflow.models import infer_signature

    run_in = experiment_id(tracking_uri, experiment)
    with registry_call(f"log and register model {name!r}", tracking_uri), _fluent(tracking_uri):
        with mlflow.start_run(run_name=f"train-{name}", experiment_id=run_in) as run:
            mlflow.log_params(params)
            mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items()})
            mlflow.set_tags(tags)
            for artifact_name, content in artifacts.items():
                mlflow.log_dict(content, f"governance/{artifact_name}")
            for path in files:
                mlflow.log_artifact(path, "governance")
            signature = infer_signature(input_example, model.predict_proba(input_example)[:, 1])
            info = mlflow.sklearn.log_model(
                sk_model=model,
                name="model",
                signature=signature,
                input_example=input_example,
                pip_requirements=pip_requirements,
                serialization_format="skops",
                registered_model_name=name,
                await_registration_for=60,
            )
        version = str(info.registered_model_version)
    set_version_tags(name, version, {**tags, f"{TAG}stage": "candidate"}, tracking_uri)
    return CandidateVersion(model=name, version=version, run_id=run.info.run_id, model_uri=info.model_uri)


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
) -> str:
    """Log a gate decision as its own run and tag the version with it; return the run's URL."""
    verdict = "passed" if passed else "failed"
    return _record_decision(
        kind="gate",
        what="gate decision",
        name=name,
        version=version,
        policy_digest=policy_digest,
        run_tags={"gate": verdict},
        metrics=metrics,
        files={"governance/gate_report.json": report},
        version_tags={
            "gate": verdict,
            "gate.policy_digest": policy_digest,
            "gate.summary": json.dumps(report.get("summary", ""))[:4000],
        },
        tracking_uri=tracking_uri,
        experiment=experiment,
    )


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
    return _record_decision(
        kind="drift",
        what="drift check",
        name=name,
        version=version,
        policy_digest=policy_digest,
        run_tags={"drift.action": action},
        metrics={"drifted_share": summary["decision"]["drifted_share"], "rows": summary["window"]["rows"]},
        files={"drift/summary.json": summary, **{f"drift/{n}": html for n, html in reports.items()}},
        version_tags={"drift.action": action, "drift.checked_at": summary["checked_at"]},
        tracking_uri=tracking_uri,
        experiment=experiment,
    )


def _record_decision(
    *,
    kind: str,
    what: str,
    name: str,
    version: str,
    policy_digest: str,
    run_tags: dict[str, str],
    metrics: dict[str, float],
    files: dict[str, dict[str, Any] | str],
    version_tags: dict[str, str],
    tracking_uri: str,
    experiment: str,
) -> str:
    """One run per decision (tags, metrics, JSON or text files), then ``<kind>.run_id`` and
    ``version_tags`` on the version; returns the run's URL."""
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
        for key, value in {**version_tags, f"{kind}.run_id": run_id}.items():
            server.set_model_version_tag(name, version, f"{TAG}{key}", value)
    return f"{tracking_uri}/#/experiments/{run_in}/runs/{run_id}"
