"""Ground truth only from whom it belongs to, across gateway processes that share only the keys.

A prediction answered by the stack's gateway is labelled through a second gateway process with a
state directory of its own (a copy of the keys directory, nothing in memory shared): accepted from
the principal it answered, refused with 403 — and recorded — from any other.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from govdeploy.config.settings import Settings
from govdeploy.monitoring.iorecords import read_batches
from govdeploy.trust.keys import master_key
from tests.flows.conftest import MODEL, promote_now, train_as
from tests.flows.test_gateway import ROW, extra_gateway, key

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def champion(stack: Settings) -> dict[str, Any]:
    promoted = train_as("dana", model=MODEL, rows=2000, seed=48)
    promote_now(stack, promoted)
    info = httpx.post(
        f"{stack.gateway_url}/v1/models/{MODEL}/reload", headers=key(stack, "deployer"), timeout=60
    )
    assert info.status_code == 200 and info.json()["champion"] == promoted["version"], info.text
    return promoted


def test_a_label_is_taken_on_any_replica_but_only_from_the_client_the_prediction_answered(
    stack: Settings, champion: dict[str, Any], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    shutil.copytree(stack.keys_dir, state / "keys")
    answered = httpx.post(
        f"{stack.gateway_url}/v1/models/{MODEL}/predict",
        json={"inputs": ROW},
        headers=key(stack, "demo-client"),
        timeout=30,
    )
    assert answered.status_code == 200, answered.text
    request_id = answered.json()["request_id"]
    label = {"request_id": request_id, "label": 1}
    with extra_gateway(tmp_path, {"GOVDEPLOY_STATE_DIR": str(state)}) as replica:
        url = f"{replica.url}/v1/models/{MODEL}/feedback"
        stolen = httpx.post(url, json=label, headers=key(stack, "bench"), timeout=30)
        own = httpx.post(url, json=label, headers=key(stack, "demo-client"), timeout=30)
    assert stolen.status_code == 403 and request_id in stolen.json()["detail"]
    assert own.status_code == 202 and own.json()["accepted"] == 1
    records = {
        r.id: r for r in read_batches(state / "iolog", master_key(stack.keys_dir))
    }  # flushed on SIGTERM
    refused = records[stolen.headers["x-request-id"]]
    assert (refused.kind, refused.status, refused.principal, refused.labels) == (
        "feedback",
        403,
        "bench",
        None,
    )
    assert records[own.headers["x-request-id"]].labels == [label]
