"""Real-time anomaly alerts and label feedback of a gateway process on the real stack.

One extra gateway runs with its own state directory and a copy of config/ whose ``alerts:`` policy
judges after 20 requests and counts every score strictly between 0 and 1 as low-confidence (rows
far outside the training ranges score exactly 0 or 1); a webhook receiver on loopback records what
it is sent.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from govdeploy.config.settings import Settings
from govdeploy.monitoring.anomalies import ANOMALY_EVENT
from govdeploy.monitoring.iorecords import IORecord, read_batches
from govdeploy.polling import poll
from govdeploy.trust.keys import master_key
from govdeploy.trust.roots import load_roots
from govdeploy.trust.versions import load_verified_model
from tests.conftest import CONFIG_DIR
from tests.flows.conftest import MODEL, promote_now, train_as
from tests.flows.test_gateway import ROW, GatewayProcess, extra_gateway, key

pytestmark = pytest.mark.e2e

MIN_REQUESTS = 20
ALERTS_POLICY = {
    "  min_requests: 50 ": f"  min_requests: {MIN_REQUESTS} ",
    "  low_confidence_margin: 0.10": "  low_confidence_margin: 0.50",  # every score strictly in (0, 1)
    "  max_low_confidence_rate: 0.50": "  max_low_confidence_rate: 0.30",
}


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        _Receiver.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class AlertingGateway:
    gateway: GatewayProcess
    version: str
    state: Path
    alerts: list[dict[str, Any]]

    def post(self, stack: Settings, route: str, body: Any, principal: str = "bench") -> httpx.Response:
        return httpx.post(
            f"{self.gateway.url}/v1/models/{MODEL}/{route}",
            json=body,
            headers=key(stack, principal),
            timeout=30,
        )

    def records(self, stack: Settings) -> list[IORecord]:
        return read_batches(self.state / "iolog", master_key(stack.keys_dir))


def wait_until(check: Callable[[], Any], timeout: float = 30) -> Any:
    return poll(check, timeout=timeout, interval=0.2)


@pytest.fixture(scope="module")
def alerting(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertingGateway]:
    """A fresh champion (with its signed training profile) served by a gateway with a strict policy."""
    champion = train_as("dana", model=MODEL, rows=2000, seed=47)
    promote_now(stack, champion)
    root = tmp_path_factory.mktemp("alerting")
    config = root / "config"
    shutil.copytree(CONFIG_DIR, config)
    policy = (config / "policy.yaml").read_text()
    for old, new in ALERTS_POLICY.items():
        assert old in policy, old
        policy = policy.replace(old, new)
    (config / "policy.yaml").write_text(policy)
    shutil.copytree(stack.keys_dir, root / "state" / "keys")
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.received = []
    env = {
        "GOVDEPLOY_STATE_DIR": str(root / "state"),
        "GOVDEPLOY_CONFIG_DIR": str(config),
        "GOVDEPLOY_ALERT_WEBHOOK": f"http://127.0.0.1:{server.server_port}/alerts",
    }
    try:
        with extra_gateway(root, env) as gateway:
            yield AlertingGateway(gateway, str(champion["version"]), root / "state", _Receiver.received)
        assert "Traceback" not in gateway.log.read_text()
    finally:
        server.shutdown()


def prefect_anomaly_events(stack: Settings, version: str) -> list[dict[str, Any]]:
    body = {
        "filter": {
            "event": {"name": [ANOMALY_EVENT]},
            "resource": {"id": [f"govdeploy.model.{MODEL}"]},
        },
        "limit": 50,
    }
    user, password = os.environ["PREFECT_API_AUTH_STRING"].split(":", 1)  # set by the stack fixture
    answer = httpx.post(
        f"{stack.prefect_api_url}/events/filter", json=body, auth=(user, password), timeout=10
    )
    events = answer.json()["events"]
    return [e for e in events if e["payload"].get("version") == version]


def test_the_served_version_has_a_training_profile(stack: Settings, alerting: AlertingGateway) -> None:
    verified = load_verified_model(
        MODEL,
        alerting.version,
        roots=load_roots(stack),
        level="release",
        tracking_uri=stack.mlflow_url,
    )
    assert verified.profile is not None and "income" in verified.profile["numeric"]
    assert "car" in verified.profile["categorical"]["purpose"]


def test_anomalous_traffic_alerts_once_per_kind_by_webhook_and_prefect_event(
    stack: Settings, alerting: AlertingGateway
) -> None:
    odd = {**ROW, "income": 1e9, "purpose": "spaceship"}
    for _ in range(3 * MIN_REQUESTS):
        assert alerting.post(stack, "predict", {"inputs": [odd, ROW]}).status_code == 200

    def kinds() -> list[str]:
        return sorted(a["kind"] for a in alerting.alerts)

    assert wait_until(lambda: kinds() == ["low_confidence", "out_of_range"]), alerting.alerts
    for _ in range(2 * MIN_REQUESTS):  # still anomalous, within dedup_seconds: no new alert
        alerting.post(stack, "predict", {"inputs": odd})
    time.sleep(1)
    assert kinds() == ["low_confidence", "out_of_range"]
    out = next(a for a in alerting.alerts if a["kind"] == "out_of_range")
    assert out["event"] == ANOMALY_EVENT and out["model"] == MODEL and out["version"] == alerting.version
    assert out["limit"] == 0.05 and 0.5 <= out["rate"] <= 1 and out["total"] >= 2 * MIN_REQUESTS
    assert {"income", "purpose"} <= set(out["fields"])

    events = wait_until(lambda: len(prefect_anomaly_events(stack, alerting.version)) == 2 or None)
    assert events, "no govdeploy.gateway.anomaly events reached Prefect"
    events = prefect_anomaly_events(stack, alerting.version)
    assert sorted(e["payload"]["kind"] for e in events) == ["low_confidence", "out_of_range"]
    assert all(e["resource"]["govdeploy.version"] == alerting.version for e in events)

    text = httpx.get(f"{alerting.gateway.url}/metrics", headers=key(stack, "auditor")).text
    labels = f'model="{MODEL}",version="{alerting.version}"'
    assert f'govdeploy_gateway_alerts_total{{kind="out_of_range",{labels}}} 1.0' in text
    assert f'govdeploy_gateway_alerts_total{{kind="low_confidence",{labels}}} 1.0' in text
    assert f'govdeploy_out_of_range_inputs_total{{field="income",{labels}}}' in text


def test_feedback_is_accepted_and_logged_with_its_labels(stack: Settings, alerting: AlertingGateway) -> None:
    # ground truth is taken only from the principal the prediction answered
    first = alerting.post(stack, "predict", {"inputs": ROW}, principal="demo-client").json()["request_id"]
    second = alerting.post(stack, "predict", {"inputs": ROW}, principal="demo-client").json()["request_id"]
    many = alerting.post(
        stack,
        "feedback",
        {"labels": [{"request_id": first, "label": 1}, {"request_id": second, "label": 0}]},
        principal="demo-client",
    )
    assert many.status_code == 202, many.text
    assert many.json()["model"] == MODEL and many.json()["accepted"] == 2
    one = alerting.post(stack, "feedback", {"request_id": first, "label": 0}, principal="demo-client")
    assert one.status_code == 202 and one.json()["accepted"] == 1

    def feedback() -> dict[str, IORecord]:
        return {r.id: r for r in alerting.records(stack) if r.kind == "feedback" and r.status == 202}

    logged = wait_until(lambda: {many.json()["request_id"], one.json()["request_id"]} <= set(feedback()))
    assert logged
    record = feedback()[many.json()["request_id"]]
    assert record.model == MODEL and record.principal == "demo-client" and record.inputs is None
    assert record.labels == [{"request_id": first, "label": 1}, {"request_id": second, "label": 0}]
    predictions = {r.id: r for r in alerting.records(stack) if r.kind == "predict"}
    assert predictions[first].version == alerting.version  # the join the drift flow makes


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"labels": [{"label": 1}]}, 422, "labels[0].request_id: is missing"),
        ({"request_id": "a" * 32, "label": 3}, 422, "label: must be 0 or 1, got 3"),
        ({"labels": [{"request_id": "a" * 32, "label": "yes"}]}, 422, "labels[0].label: must be 0 or 1"),
        ({"labels": [{"request_id": f"{i:032x}", "label": 1} for i in range(1001)]}, 422, "exceed the limit"),
        (
            {"labels": [{"request_id": f"{i:032x}", "label": 1} for i in range(30000)]},
            413,
            "exceeds the limit",
        ),
    ],
)
def test_bad_feedback_is_refused_naming_the_item(
    stack: Settings, alerting: AlertingGateway, body: Any, status: int, detail: str
) -> None:
    response = alerting.post(stack, "feedback", body)
    assert response.status_code == status and detail in response.json()["detail"]


def test_feedback_needs_the_predict_role_and_a_known_model(
    stack: Settings, alerting: AlertingGateway
) -> None:
    label = {"request_id": "a" * 32, "label": 1}
    assert alerting.post(stack, "feedback", label, principal="auditor").status_code == 403
    unknown = httpx.post(
        f"{alerting.gateway.url}/v1/models/fraud/feedback", json=label, headers=key(stack, "bench")
    )
    assert unknown.status_code == 404
