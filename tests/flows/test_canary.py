"""Canary through the stack's gateway under live traffic: a good challenger becomes champion, a
worse one is rolled back automatically; rollback returns to the previous verified champion."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import mlflow
import pytest

from demo.traffic import Traffic
from flows.canary import canary
from flows.rollback import rollback
from govdeploy.config.settings import Settings
from govdeploy.errors import RolloutError
from govdeploy.serving import rollout
from govdeploy.trust.audit_trail import records
from tests.flows.conftest import (
    MODEL,
    approve,
    promote_now,
    start_release,
    train_as,
    version_tags,
    wait_for_state,
)
from tests.flows.test_gateway import ROW, key

pytestmark = pytest.mark.e2e


@pytest.fixture
def traffic(stack: Settings) -> Iterator[Traffic]:
    """Four clients sending predictions until the test ends."""
    with Traffic(stack.gateway_url, key(stack, "bench")["X-API-Key"], MODEL, [ROW]) as clients:
        yield clients


@pytest.fixture(scope="module")
def champion(stack: Settings) -> dict[str, Any]:
    first = train_as("dana", model=MODEL, rows=2000, seed=51)
    promote_now(stack, first)
    httpx.post(f"{stack.gateway_url}/v1/models/{MODEL}/reload", headers=key(stack, "deployer"), timeout=60)
    return first


def served_versions(stack: Settings) -> set[str]:
    answers = [
        httpx.post(
            f"{stack.gateway_url}/v1/models/{MODEL}/predict",
            json={"inputs": ROW},
            headers=key(stack, "bench"),
        ).json()["version"]
        for _ in range(40)
    ]
    return set(answers)


def test_a_worse_challenger_is_rolled_back_automatically(
    stack: Settings, champion: dict[str, Any], traffic: Traffic
) -> None:
    worse = train_as("dana", model=MODEL, rows=2000, seed=52, label_bias=0.8)  # predicts far more defaults
    promote_now(stack, worse, alias="challenger")
    with pytest.raises(RolloutError, match=r"rolled back at 5%: mean prediction .* over the limit 0.1"):
        canary(model=MODEL, version=worse["version"], bake_seconds=2)
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion["version"]
    assert "challenger" not in {a for a in client.get_registered_model(MODEL).aliases}
    assert served_versions(stack) == {champion["version"]}
    actions = [r.action for r in records(stack, MODEL) if r.version == worse["version"]]
    assert actions[-2:] == ["canary.step", "canary.rolled_back"]
    assert traffic.statuses() == {200}


def test_a_good_challenger_becomes_champion_and_rollback_returns(
    stack: Settings, champion: dict[str, Any], traffic: Traffic
) -> None:
    better = train_as("dana", model=MODEL, rows=2000, seed=53)
    promote_now(stack, better, alias="challenger")
    result = canary(model=MODEL, version=better["version"], bake_seconds=2)
    assert [s["weight"] for s in result["steps"]] == [5, 25, 50, 100]
    assert result["previous"] == champion["version"]
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(MODEL, "champion").version == better["version"]
    record = rollout.serving_now(stack, MODEL)
    assert record is not None and (record.champion, record.action) == (better["version"], "canary-complete")
    assert served_versions(stack) == {better["version"]}

    moved = rollback(model=MODEL, reason="test")
    assert moved == {"model": MODEL, "from": better["version"], "to": champion["version"]}
    httpx.post(f"{stack.gateway_url}/v1/models/{MODEL}/reload", headers=key(stack, "deployer"), timeout=60)
    assert served_versions(stack) == {champion["version"]}
    assert traffic.statuses() == {200}


def test_a_release_with_a_canary_promotes_through_the_steps(
    stack: Settings, champion: dict[str, Any], traffic: Traffic
) -> None:
    candidate = train_as("dana", model=MODEL, rows=2000, seed=54)
    before = mlflow.MlflowClient().get_model_version_by_alias(MODEL, "champion").version
    run_id = start_release(candidate["version"], canary=True, canary_bake_seconds=1)
    wait_for_state(run_id, "Paused")
    for approver in ("alice", "bob"):
        approve(stack, run_id, approver)
    wait_for_state(run_id, "Completed")
    release = json.loads(version_tags(candidate["version"])["govdeploy.release"])
    assert release["alias"] == "challenger"  # promotion went to the canary, not straight to champion
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias(MODEL, "champion").version == candidate["version"]
    record = rollout.serving_now(stack, MODEL)
    assert record is not None and (record.champion, record.action) == (
        candidate["version"],
        "canary-complete",
    )
    assert rollout.rollback_target(rollout.history(stack, MODEL), MODEL) == (candidate["version"], before)
    steps = [r.payload["weight"] for r in records(stack, MODEL) if r.action == "canary.step"]
    assert steps[-4:] == [5, 25, 50, 100]
    assert traffic.statuses() == {200}
