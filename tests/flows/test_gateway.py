"""The gateway process of the real stack: verified serving, access control, inputs, I/O records."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest

from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import Settings
from govdeploy.monitoring.iorecords import read_batches
from govdeploy.polling import poll
from govdeploy.serving import gateway_client
from govdeploy.serving.rollout import publish, serving_now
from govdeploy.stack import process
from govdeploy.trust.keys import master_key
from govdeploy.trust.serving_content import ServingRecord
from tests.conftest import free_port
from tests.flows.conftest import MODEL, promote_now, train_as

pytestmark = pytest.mark.e2e

ROW = {
    "income": 52000.0,
    "loan_amount": 9000.0,
    "loan_term_months": 36,
    "credit_history_years": 4.5,
    "num_late_payments": 1,
    "debt_to_income": 0.31,
    "employment_type": "salaried",
    "purpose": "car",
    "region": "north",
}


def key(stack: Settings, principal: str) -> dict[str, str]:
    return {"X-API-Key": (stack.keys_dir / "api" / f"{principal}.key").read_text()}


@pytest.fixture(scope="module")
def served(stack: Settings) -> dict[str, Any]:
    """A promoted champion, picked up by the stack's gateway."""
    champion = train_as("dana", model=MODEL, rows=2000, seed=41)
    promote_now(stack, champion)
    info = httpx.post(
        f"{stack.gateway_url}/v1/models/{MODEL}/reload", headers=key(stack, "deployer"), timeout=60
    )
    assert info.status_code == 200 and info.json()["champion"] == champion["version"], info.text
    return champion


def predict(stack: Settings, body: Any, principal: str = "demo-client", **kwargs: Any) -> httpx.Response:
    return httpx.post(
        f"{stack.gateway_url}/v1/models/{MODEL}/predict",
        json=body,
        headers=key(stack, principal) if principal else {},
        timeout=30,
        **kwargs,
    )


def test_one_row_and_a_batch_are_answered_by_the_verified_champion(
    stack: Settings, served: dict[str, Any]
) -> None:
    one = predict(stack, {"inputs": {**ROW, "email": "ana@example.com"}})
    assert one.status_code == 200, one.text
    assert one.json()["version"] == served["version"]
    assert 0 <= one.json()["predictions"][0] <= 1
    batch = predict(stack, {"inputs": [ROW, {**ROW, "income": 20000.0}, ROW]})
    assert batch.status_code == 200 and len(batch.json()["predictions"]) == 3


@pytest.mark.parametrize(
    ("principal", "status"), [("", 401), ("nobody", 401), ("auditor", 403), ("deployer", 403)]
)
def test_predict_needs_a_valid_key_with_the_predict_role(
    stack: Settings, served: dict[str, Any], principal: str, status: int
) -> None:
    headers = (
        {"X-API-Key": "gd_not-a-key"}
        if principal == "nobody"
        else (key(stack, principal) if principal else {})
    )
    response = httpx.post(
        f"{stack.gateway_url}/v1/models/{MODEL}/predict", json={"inputs": ROW}, headers=headers
    )
    assert response.status_code == status


def test_deployer_controls_need_the_deployer_role_and_rate_limits_apply(
    stack: Settings, served: dict[str, Any]
) -> None:
    denied = httpx.post(
        f"{stack.gateway_url}/v1/models/{MODEL}/kill",
        json={"reason": "x" * 5},
        headers=key(stack, "demo-client"),
    )
    assert denied.status_code == 403
    with httpx.Client(base_url=stack.gateway_url, headers=key(stack, "auditor")) as client:
        first = client.get(f"/v1/models/{MODEL}").status_code
        # a burst well over the auditor's bucket (600/min: 10 at once), sent concurrently so that the
        # refill cannot keep up however slow each request is on a busy machine
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda _: client.get(f"/v1/models/{MODEL}").status_code, range(60)))
    assert first == 200 and 429 in statuses


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"inputs": {k: v for k, v in ROW.items() if k != "purpose"}}, "purpose: is missing"),
        ({"inputs": {**ROW, "ssn": "123-45-6789"}}, "ssn: is not an input of this model"),
        ({"inputs": {**ROW, "income": "a lot"}}, "income: must be a number, got str"),
        ({"inputs": {**ROW, "region": 3}}, "region: must be a string, got int"),
        ({"inputs": [ROW, {**ROW, "debt_to_income": None}]}, "inputs[1].debt_to_income: is null"),
        ({"rows": [ROW]}, "inputs: the body must be"),
    ],
)
def test_bad_inputs_get_422_naming_the_field(
    stack: Settings, served: dict[str, Any], body: Any, field: str
) -> None:
    response = predict(stack, body)
    assert response.status_code == 422
    assert field in response.json()["detail"]


def test_nan_oversized_and_unknown_are_refused(stack: Settings, served: dict[str, Any]) -> None:
    nan = json.dumps({"inputs": ROW}).replace("52000.0", "NaN")
    response = httpx.post(
        f"{stack.gateway_url}/v1/models/{MODEL}/predict", content=nan, headers=key(stack, "demo-client")
    )
    assert response.status_code == 422 and "income: must be finite" in response.json()["detail"]
    huge = predict(stack, {"inputs": [ROW] * 20000})
    assert huge.status_code == 413
    unknown = httpx.post(
        f"{stack.gateway_url}/v1/models/fraud/predict",
        json={"inputs": ROW},
        headers=key(stack, "demo-client"),
    )
    assert unknown.status_code == 404


def test_kill_switch_answers_503_until_revived(stack: Settings, served: dict[str, Any]) -> None:
    deployer = key(stack, "deployer")
    killed = httpx.post(
        f"{stack.gateway_url}/v1/models/{MODEL}/kill", json={"reason": "incident 42"}, headers=deployer
    )
    assert killed.status_code == 200 and killed.json()["available"] is False
    record = serve_state(stack)
    assert (record.killed, record.action, record.issuer) == ("incident 42", "kill", "deployer")
    response = predict(stack, {"inputs": ROW})
    assert response.status_code == 503 and "incident 42" in response.json()["detail"]
    assert httpx.post(f"{stack.gateway_url}/v1/models/{MODEL}/revive", headers=deployer).status_code == 200
    assert serve_state(stack).killed is None
    assert predict(stack, {"inputs": ROW}).status_code == 200


def test_an_alias_moved_without_record_or_to_an_unsigned_version_keeps_the_verified_one(
    stack: Settings, served: dict[str, Any]
) -> None:
    unsigned_release = train_as("dana", model=MODEL, rows=2000, seed=42)  # candidate-signed only
    client = mlflow.MlflowClient()

    def reload() -> dict[str, Any]:
        return httpx.post(
            f"{stack.gateway_url}/v1/models/{MODEL}/reload", headers=key(stack, "deployer"), timeout=60
        ).json()

    client.set_registered_model_alias(MODEL, "champion", unsigned_release["version"])  # by hand, no record
    try:
        info = reload()
        assert info["champion"] == served["version"]
        assert any(f"names v{served['version']}; the record decides" in p for p in info["problems"])
        assert predict(stack, {"inputs": ROW}).json()["version"] == served["version"]
        serve(stack, unsigned_release["version"])  # a record for it, but it has no release signature
        info = reload()
        assert info["champion"] == served["version"]
        assert any("has no release.sig" in p for p in info["problems"])
        assert predict(stack, {"inputs": ROW}).json()["version"] == served["version"]
    finally:
        client.set_registered_model_alias(MODEL, "champion", served["version"])
        serve(stack, served["version"])
    assert reload()["problems"] == []


def test_metrics_per_model_and_version(stack: Settings, served: dict[str, Any]) -> None:
    predict(stack, {"inputs": ROW})
    text = httpx.get(f"{stack.gateway_url}/metrics", headers=key(stack, "auditor")).text
    assert f'govdeploy_requests_total{{model="{MODEL}",status="200",version="{served["version"]}"}}' in text
    assert "govdeploy_prediction_score_bucket" in text
    assert 'govdeploy_input_anomalies_total{field="purpose"' in text
    assert httpx.get(f"{stack.gateway_url}/metrics", headers=key(stack, "demo-client")).status_code == 403


def test_records_equal_responses_after_a_burst_and_sigterm(
    stack: Settings, served: dict[str, Any], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    shutil.copytree(stack.keys_dir, state / "keys")
    headers = key(stack, "bench")  # a principal whose rate limit a burst of 200 stays under
    bodies = [{"inputs": ROW}, {"inputs": [ROW, ROW]}, {"inputs": {**ROW, "income": "bad"}}, {"nope": 1}]
    with (
        extra_gateway(tmp_path, {"GOVDEPLOY_STATE_DIR": str(state)}) as gateway,
        httpx.Client(base_url=gateway.url, timeout=30) as client,
    ):
        statuses = [
            client.post(f"/v1/models/{MODEL}/predict", json=bodies[i % 4], headers=headers).status_code
            for i in range(200)
        ]
    assert gateway.exit_code in (0, -15)  # uvicorn re-raises SIGTERM after its graceful shutdown
    assert statuses.count(200) == 100 and statuses.count(422) == 100
    assert "Traceback" not in gateway.log.read_text()
    records = read_batches(state / "iolog", master_key(stack.keys_dir))
    assert len(records) == len(statuses)
    assert sorted(r.status for r in records) == sorted(statuses)
    assert all(r.version == served["version"] for r in records if r.status == 200)
    local = sorted(p.relative_to(state / "iolog").as_posix() for p in (state / "iolog").rglob("*.enc"))
    assert b"52000.0" not in b"".join(p.read_bytes() for p in (state / "iolog").rglob("*.enc"))
    shipped = s3_client(stack).list_objects_v2(Bucket=stack.bucket, Prefix="iolog/").get("Contents", [])
    assert set(local) <= {item["Key"].removeprefix("iolog/") for item in shipped}


def test_two_workers_add_up_their_metrics_and_lose_no_record_on_sigterm(
    stack: Settings, served: dict[str, Any], tmp_path: Path
) -> None:
    """One gateway of two worker processes on one port: a burst over many connections reaches both,
    /metrics (whichever worker answers) counts every response, and after SIGTERM every response,
    answered or refused, has its I/O record, written by both workers' writers."""
    state = tmp_path / "state"
    shutil.copytree(stack.keys_dir, state / "keys")
    headers = {**key(stack, "bench"), "Connection": "close"}  # a new connection, any worker, each time
    auditor = key(stack, "auditor")
    bodies = [{"inputs": ROW}, {"inputs": [ROW, ROW]}, {"inputs": {**ROW, "income": "bad"}}, {"nope": 1}]
    with extra_gateway(tmp_path, {"GOVDEPLOY_STATE_DIR": str(state)}, workers=2) as gateway:

        def ask(i: int) -> int:
            url = f"{gateway.url}/v1/models/{MODEL}/predict"
            return httpx.post(url, json=bodies[i % 4], headers=headers, timeout=30).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(ask, range(240)))
        pids: set[int] = set()

        def worker_pid() -> int:
            answer = httpx.get(f"{gateway.url}/healthz", headers={**auditor, "Connection": "close"})
            return int(answer.json()["worker"]["pid"])

        # both workers answer on the one port (whichever accepts a new connection first)
        assert poll(lambda: pids.add(worker_pid()) or len(pids) == 2, timeout=30, interval=0.01)

        def predictions_counted() -> float:
            text = httpx.get(f"{gateway.url}/metrics", headers=auditor).text
            return sum(
                float(value)
                for value in re.findall(
                    r'^govdeploy_responses_total\{route="predict",[^}]*\} ([\d.e+]+)$', text, re.M
                )
            )

        counted = [predictions_counted()]
        assert poll(lambda: counted.append(predictions_counted()) or counted[-1] == len(statuses), timeout=10)
    assert gateway.exit_code in (0, -15)
    assert statuses.count(200) == 120 and statuses.count(422) == 120
    assert "Traceback" not in gateway.log.read_text()
    records = read_batches(state / "iolog", master_key(stack.keys_dir))
    predictions = [r for r in records if r.kind == "predict"]
    assert sorted(r.status for r in predictions) == sorted(statuses)
    assert len(records) == len(statuses) + len(counted)  # the /metrics reads are recorded too (not /healthz)
    writers = {p.name.split("-")[1] for p in (state / "iolog").rglob("*.enc")}
    assert len(writers) >= 2  # each worker wrote its own batches
    assert not list((state / "gateway").glob("run-*"))  # the launcher removed its run directory


def test_a_kill_sent_to_one_worker_holds_on_both_before_the_answer(
    stack: Settings, served: dict[str, Any], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    shutil.copytree(stack.keys_dir, state / "keys")
    deployer, bench = key(stack, "deployer"), {**key(stack, "bench"), "Connection": "close"}
    env = {"GOVDEPLOY_STATE_DIR": str(state), "GOVDEPLOY_REFRESH_SECONDS": "3600"}  # no help from polling
    with extra_gateway(tmp_path, env, workers=2) as gateway:

        def statuses() -> set[int]:
            url = f"{gateway.url}/v1/models/{MODEL}/predict"
            with ThreadPoolExecutor(4) as pool:
                return set(
                    pool.map(
                        lambda _: httpx.post(url, json={"inputs": ROW}, headers=bench).status_code, range(16)
                    )
                )

        assert statuses() == {200}
        killed = httpx.post(
            f"{gateway.url}/v1/models/{MODEL}/kill", json={"reason": "workers"}, headers=deployer
        )
        try:
            assert killed.status_code == 200 and killed.json()["problems"] == [], killed.text
            assert statuses() == {503}
        finally:
            revived = httpx.post(f"{gateway.url}/v1/models/{MODEL}/revive", headers=deployer, timeout=60)
        assert revived.status_code == 200 and revived.json()["problems"] == [], revived.text
        assert statuses() == {200}
    assert gateway_client.reload(stack, MODEL) is None  # the session's gateway follows the revive


def test_a_read_only_io_log_refuses_predictions_and_loses_no_record(
    stack: Settings, served: dict[str, Any], tmp_path: Path, freeze: Any
) -> None:
    """The I/O log directory of a gateway process turns read-only: predictions get 503 naming it
    (none is answered without its record), /healthz says so; once writable again it serves, and
    after SIGTERM every response, answered or refused, has its record."""
    state = tmp_path / "state"
    shutil.copytree(stack.keys_dir, state / "keys")
    headers = key(stack, "bench")
    statuses: list[int] = []
    with (
        extra_gateway(tmp_path, {"GOVDEPLOY_STATE_DIR": str(state)}) as gateway,
        httpx.Client(base_url=gateway.url, timeout=30) as client,
    ):

        def ask() -> httpx.Response:
            answer = client.post(f"/v1/models/{MODEL}/predict", json={"inputs": ROW}, headers=headers)
            statuses.append(answer.status_code)
            return answer

        assert ask().status_code == 200
        freeze(state / "iolog")
        assert poll(lambda: ask().status_code == 503, timeout=30, interval=0.2)
        refused = ask()
        assert refused.status_code == 503 and "cannot be written" in refused.json()["detail"]
        health = client.get("/healthz", headers=key(stack, "deployer"))
        assert health.status_code == 503 and "cannot be written" in " ".join(health.json()["problems"])
        freeze.thaw()
        assert poll(lambda: ask().status_code == 200, timeout=30, interval=0.2)
        assert poll(lambda: client.get("/healthz").status_code == 200, timeout=30, interval=0.2)
    assert gateway.exit_code in (0, -15)
    assert statuses.count(503) >= 2 and statuses[0] == statuses[-1] == 200
    records = read_batches(state / "iolog", master_key(stack.keys_dir))
    # every answer of the predict route, also a 429 refused before it was known as a prediction
    predictions = sorted(r.status for r in records if r.route.endswith(f"/v1/models/{MODEL}/predict"))
    assert predictions == sorted(statuses)


def test_two_gateway_processes_agree_on_the_serving_state(
    stack: Settings, served: dict[str, Any], tmp_path: Path
) -> None:
    with extra_gateway(tmp_path, {"GOVDEPLOY_REFRESH_SECONDS": "0.5"}) as second:
        url = second.url
        newer = train_as("dana", model=MODEL, rows=2000, seed=43)
        promote_now(stack, newer)
        httpx.post(
            f"{stack.gateway_url}/v1/models/{MODEL}/reload", headers=key(stack, "deployer"), timeout=60
        )

        def answers() -> set[str]:
            return {
                httpx.post(
                    f"{base}/v1/models/{MODEL}/predict",
                    json={"inputs": ROW},
                    headers=key(stack, "bench"),
                    timeout=30,
                ).json()["version"]
                for base in (stack.gateway_url, url)
            }

        # the second one picks it up by polling
        poll(lambda: answers() == {newer["version"]}, timeout=30)
        assert answers() == {newer["version"]}


def test_three_replicas_converge_share_the_kill_switch_and_add_up_their_metrics(
    stack: Settings, served: dict[str, Any], tmp_path: Path
) -> None:
    """Three gateway processes, each with a state directory of its own: a kill sent to one holds on
    all within one refresh (it is in the signed serving record), a revive sent to another ends it
    everywhere, a reload fans out to all, and a canary reads their metrics summed."""
    refresh = 0.5
    with ExitStack() as running:
        urls = []
        for n in range(3):
            state = tmp_path / f"replica-{n}"
            shutil.copytree(stack.keys_dir, state / "keys")
            env = {"GOVDEPLOY_STATE_DIR": str(state), "GOVDEPLOY_REFRESH_SECONDS": str(refresh)}
            urls.append(running.enter_context(extra_gateway(tmp_path, env)).url)
        replicas = stack.model_copy(update={"gateway_replicas": urls})
        deployer, bench = key(stack, "deployer"), key(stack, "bench")

        def statuses() -> list[int]:
            return [
                httpx.post(
                    f"{url}/v1/models/{MODEL}/predict", json={"inputs": ROW}, headers=bench
                ).status_code
                for url in urls
            ]

        assert poll(lambda: statuses() == [200, 200, 200], timeout=30)
        champion = httpx.post(f"{urls[0]}/v1/models/{MODEL}/predict", json={"inputs": ROW}, headers=bench)
        version = champion.json()["version"]  # the serving champion (earlier tests may have promoted)
        before = gateway_client.model_metrics(replicas, MODEL)[version].requests
        for n, url in enumerate(urls):
            for _ in range(n + 2):
                httpx.post(f"{url}/v1/models/{MODEL}/predict", json={"inputs": ROW}, headers=bench)
        after = gateway_client.model_metrics(replicas, MODEL)[version].requests
        assert after - before == 2 + 3 + 4

        killed = httpx.post(
            f"{urls[0]}/v1/models/{MODEL}/kill", json={"reason": "replicas"}, headers=deployer
        )
        try:
            assert killed.status_code == 200, killed.text
            started = time.monotonic()
            assert poll(lambda: statuses() == [503, 503, 503], timeout=10, interval=0.1)
            assert time.monotonic() - started < 2 * refresh + 2  # within one refresh (and some slack)
        finally:
            revived = httpx.post(f"{urls[2]}/v1/models/{MODEL}/revive", headers=deployer)
        assert revived.status_code == 200, revived.text
        assert poll(lambda: statuses() == [200, 200, 200], timeout=10, interval=0.1)
        assert gateway_client.reload(replicas, MODEL) is None
    assert gateway_client.reload(stack, MODEL) is None  # the session's gateway saw the kill too


@dataclass
class GatewayProcess:
    url: str
    log: Path
    exit_code: int | None = None


@contextmanager
def extra_gateway(tmp_path: Path, env: dict[str, str], workers: int = 1) -> Iterator[GatewayProcess]:
    """A gateway process of its own on a free port; stopped with SIGTERM (its exit code recorded).
    With ``workers`` above 1, the launcher and that many worker processes (as ``govdeploy up`` runs it)."""
    port = free_port()
    handle = GatewayProcess(f"http://127.0.0.1:{port}", tmp_path / f"gateway-{port}.log")
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "govdeploy.serving.gateway.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    if workers > 1:
        command = [sys.executable, "-m", "govdeploy.serving.gateway.run", "--log-level", "warning"]
    environment = {
        **os.environ,
        **env,
        "GOVDEPLOY_GATEWAY_PORT": str(port),
        "GOVDEPLOY_GATEWAY_WORKERS": str(workers),
    }
    child = process.spawn("gateway", command, environment, handle.log, tmp_path)
    try:
        process.wait_healthy("gateway", child, lambda: _healthy(handle.url), 60, handle.log)
        yield handle
    finally:
        child.send_signal(signal.SIGTERM)
        handle.exit_code = child.wait(timeout=30)


def serve_state(stack: Settings) -> ServingRecord:
    record = serving_now(stack, MODEL)
    assert record is not None
    return record


def serve(stack: Settings, champion: str) -> ServingRecord:
    """A signed serving record naming ``champion``, written by hand (aliases untouched)."""
    return publish(stack, MODEL, champion=champion, challenger=None, weight=0, action="test", issuer="test")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_replayed_older_serving_record_changes_nothing(stack: Settings, served: dict[str, Any]) -> None:
    """An insider re-puts an older, validly signed record and moves the alias back: refused, listed."""
    bucket, record_key = s3_client(stack), f"serving/{MODEL}.json"
    registry = mlflow.MlflowClient()
    deployer = key(stack, "deployer")

    def reload() -> dict[str, Any]:
        url = f"{stack.gateway_url}/v1/models/{MODEL}/reload"
        return httpx.post(url, headers=deployer, timeout=60).json()

    before = registry.get_model_version_by_alias(MODEL, "champion").version
    older = serve(stack, before)
    older_bytes = bucket.get_object(Bucket=stack.bucket, Key=record_key)["Body"].read()
    newer = train_as("dana", model=MODEL, rows=2000, seed=44)
    promote_now(stack, newer)  # publishes the newer record
    assert reload()["champion"] == newer["version"]
    bucket.put_object(Bucket=stack.bucket, Key=record_key, Body=older_bytes)
    registry.set_registered_model_alias(MODEL, "champion", before)
    try:
        for _ in range(2):  # refused at every look, not only the first
            info = reload()
            assert info["champion"] == newer["version"], info
            assert any(
                f"(#{older.sequence}, champion v{before}) was re-put over record #" in p
                and "a replay, ignored" in p
                for p in info["problems"]
            )
            assert predict(stack, {"inputs": ROW}).json()["version"] == newer["version"]
        seen = json.loads((stack.state_dir / "gateway" / "serving-seq.json").read_text())
        assert seen[MODEL]["sequence"] > older.sequence
    finally:
        registry.set_registered_model_alias(MODEL, "champion", newer["version"])
        healed = serve(stack, newer["version"])
    assert healed.sequence == seen[MODEL]["sequence"] + 1  # numbered above the replay's history
    assert reload()["problems"] == []
