"""The drift loop on the real stack: gateway traffic → drift flow → policy decision → automations.

Each scenario checks its own slice of time (``start``/``end``) of the serving version's traffic, so
the scenarios do not see each other's requests.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import mlflow
import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.states import Cancelled

from demo.traffic import send_feedback, send_rows, wait_until_logged
from flows.drift import drift
from govdeploy.backends import flow_runs
from govdeploy.backends.storage import s3_client
from govdeploy.config.catalog import load_catalog
from govdeploy.config.settings import Settings
from govdeploy.errors import DataError, SignatureError
from govdeploy.release.data import generate_credit_data
from govdeploy.trust.audit_trail import records
from tests.flows.conftest import MODEL, promote_now, train_as
from tests.flows.test_gateway import key
from tests.flows.test_tampering_and_faults import prefix

pytestmark = pytest.mark.e2e


def now() -> str:
    return datetime.now(UTC).isoformat()


def traffic(stack: Settings, rows: int, seed: int, shift: float = 0.0) -> tuple[list[Any], list[int]]:
    """Send ``rows`` synthetic requests; returns the answers and the rows' true labels."""
    frame = generate_credit_data(rows, seed=seed, shift=shift)
    answers = send_rows(
        stack.gateway_url,
        key(stack, "bench")["X-API-Key"],
        MODEL,
        frame[load_catalog(stack.models_path).models[MODEL].features].to_dict("records"),
    )
    assert {a.status for a in answers} == {200}
    return answers, frame["default"].tolist()


def shipped(stack: Settings, since: str, predictions: int, labels: int = 0) -> None:
    """Wait until the gateway has shipped these records to the bucket (it flushes every 0.2 s)."""
    wait_until_logged(stack, since, predictions, labels)


def runs_of(deployment: str, since: float) -> list[FlowRun]:
    return flow_runs.runs_since(deployment, since)


def final_state(deployment: str, since: float) -> FlowRun:
    return flow_runs.wait_for_run(deployment, since, timeout=240)


@pytest.fixture(scope="module")
def serving(stack: Settings) -> dict[str, Any]:
    """Two promotions: the second serves, with the first as its verified rollback target."""
    first = train_as("dana", model=MODEL, rows=2000, seed=61)
    promote_now(stack, first)
    second = train_as("dana", model=MODEL, rows=2000, seed=62)
    promote_now(stack, second)
    httpx.post(f"{stack.gateway_url}/v1/models/{MODEL}/reload", headers=key(stack, "deployer"), timeout=60)
    return {"first": first["version"], "second": second["version"]}


def test_too_few_rows_fails_and_starts_nothing(stack: Settings, serving: dict[str, Any]) -> None:
    since, start = time.time(), now()
    traffic(stack, 50, seed=70)
    shipped(stack, start, 50)
    with pytest.raises(DataError, match=r"has 50 predictions .* fewer than the 500 drift.min_rows"):
        drift(model=MODEL, start=start, end=now())
    failed = [r for r in records(stack, MODEL) if r.action == "drift.failed"][-1]
    assert "fewer than the 500 drift.min_rows" in failed.payload["reason"]
    time.sleep(3)
    assert runs_of("retrain/retrain", since) == [] and runs_of("rollback/rollback", since) == []


def test_no_drift_is_recorded_only(stack: Settings, serving: dict[str, Any]) -> None:
    since, start = time.time(), now()
    traffic(stack, 600, seed=71)
    shipped(stack, start, 600)
    result = drift(model=MODEL, start=start, end=now())
    assert result["version"] == serving["second"]
    assert result["decision"]["action"] == "record", result["decision"]
    assert result["window"]["rows"] == 600 and result["events"] == []
    run = mlflow.get_run(
        mlflow.MlflowClient().get_model_version(MODEL, serving["second"]).tags["govdeploy.drift.run_id"]
    )
    assert {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "drift")} == {
        "drift/report.html",
        "drift/summary.json",
    }
    assert mlflow.get_experiment(run.info.experiment_id).name == stack.experiment
    checks = [r for r in records(stack, MODEL) if r.action == "drift.checked"]
    assert checks[-1].payload["decision"]["action"] == "record"
    time.sleep(3)
    assert runs_of("retrain/retrain", since) == []


def test_data_drift_starts_retrain_and_a_release_waiting_for_approval(
    stack: Settings, serving: dict[str, Any]
) -> None:
    since, start = time.time(), now()
    traffic(stack, 600, seed=72, shift=0.5)
    shipped(stack, start, 600)
    result = drift(model=MODEL, start=start, end=now())
    decision = result["decision"]
    assert decision["action"] == "retrain", decision
    assert {"income", "debt_to_income"} <= set(decision["drifted_columns"])
    assert result["events"] == ["govdeploy.drift.detected"]
    assert 0.4 < result["shift_estimate"] < 0.6

    retrain = final_state("retrain/retrain", since)  # the automation ran the retrain deployment
    assert retrain.state is not None and retrain.state.is_completed(), retrain.state
    assert float(retrain.parameters["shift"]) == result["shift_estimate"]
    release = flow_runs.wait_for_run("release/release", since, "Paused", timeout=240)
    candidate = str(release.parameters["version"])
    assert release.parameters["canary"] is True
    assert mlflow.MlflowClient().get_model_version_by_alias(MODEL, "champion").version == serving["second"]
    assert candidate not in {serving["first"], serving["second"]}  # a new candidate, never promoted by itself
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(release.id, Cancelled(message="test: not approved"), force=True)


def test_performance_drop_rolls_back_at_once_then_retrains(stack: Settings, serving: dict[str, Any]) -> None:
    since, start = time.time(), now()
    answers, truth = traffic(stack, 600, seed=73)
    # the world changed: what the model calls risky no longer defaults, and the reverse
    send_feedback(
        stack.gateway_url,
        key(stack, "bench")["X-API-Key"],
        MODEL,
        [(a.request_id, 1 - label) for a, label in zip(answers, truth, strict=True)],
    )
    shipped(stack, start, 600, labels=600)
    result = drift(model=MODEL, start=start, end=now())
    decision = result["decision"]
    assert decision["action"] == "rollback_and_retrain", decision
    assert decision["performance"]["labelled_rows"] == 600
    assert result["events"] == ["govdeploy.drift.detected", "govdeploy.rollback.requested"]
    run_id = mlflow.MlflowClient().get_model_version(MODEL, serving["second"]).tags["govdeploy.drift.run_id"]
    assert {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "drift")} == {
        "drift/report.html",
        "drift/performance.html",  # Evidently's classification report, now that labels arrived
        "drift/summary.json",
    }

    rollback = final_state("rollback/rollback", since)
    assert rollback.state is not None and rollback.state.is_completed(), rollback.state
    champion = mlflow.MlflowClient().get_model_version_by_alias(MODEL, "champion").version
    assert champion == serving["first"]
    assert runs_of("retrain/retrain", since)  # and a retrain was started too


def test_a_malformed_window_fails_and_starts_nothing(stack: Settings, serving: dict[str, Any]) -> None:
    since, start = time.time(), now()
    traffic(stack, 600, seed=74)
    shipped(stack, start, 600)
    day = datetime.now(UTC).strftime("%Y%m%d")
    bad = f"iolog/{day}/{datetime.now(UTC):%H%M%S%f}-badbatch.jsonl.enc"
    client = s3_client(stack)
    client.put_object(Bucket=stack.bucket, Key=bad, Body=b'{"not": "a sealed batch"}')
    try:
        with pytest.raises(DataError, match=r"badbatch.jsonl.enc is unreadable .* no drift decision"):
            drift(model=MODEL, start=start, end=now())
    finally:
        client.delete_object(Bucket=stack.bucket, Key=bad)
    time.sleep(3)
    assert runs_of("retrain/retrain", since) == [] and runs_of("rollback/rollback", since) == []


def test_a_reference_that_does_not_verify_fails_and_starts_nothing(
    stack: Settings, serving: dict[str, Any]
) -> None:
    since = time.time()
    version = mlflow.MlflowClient().get_model_version_by_alias(MODEL, "champion").version
    client, key_name = s3_client(stack), prefix(version) + "reference.parquet"
    original = client.get_object(Bucket=stack.bucket, Key=key_name)["Body"].read()
    forged = pd.read_parquet(io.BytesIO(original)).assign(income=lambda f: f["income"] * 2)
    client.put_object(Bucket=stack.bucket, Key=key_name, Body=forged.to_parquet(index=False))
    try:
        with pytest.raises(
            SignatureError, match=r"does not verify against its release\.sig.*reference\.parquet"
        ):
            drift(model=MODEL, window_hours=1)
    finally:
        client.put_object(Bucket=stack.bucket, Key=key_name, Body=original)
    time.sleep(3)
    assert runs_of("retrain/retrain", since) == [] and runs_of("rollback/rollback", since) == []


def test_the_nightly_drift_schedule_is_served(stack: Settings) -> None:
    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name(f"drift/nightly-{MODEL}")
    crons = [s.schedule.cron for s in nightly.schedules if hasattr(s.schedule, "cron")]
    assert crons == ["0 2 * * *"] and nightly.parameters == {"model": MODEL}
