"""What the gateway cannot handle gets a 4xx naming the problem, with its request id, and is recorded."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from govdeploy.serving.gateway.state import ServedModel
from govdeploy.trust.request_ids import REQUEST_ID
from tests.govdeploy.serving.gateway.stub_gateway import ROW, StubGateway, call, key, stub_gateway

PREDICT, FEEDBACK, KILL = "/v1/models/m/predict", "/v1/models/m/feedback", "/v1/models/spare/kill"


@pytest.fixture
def stub(tmp_path: Path) -> StubGateway:
    return stub_gateway(tmp_path)


def refused(response: Any, status: int, detail: str) -> None:
    """``response`` has ``status``, a detail holding ``detail`` and its request id in header and body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert detail in body["detail"]
    assert REQUEST_ID.fullmatch(response.headers["x-request-id"])
    assert body["request_id"] == response.headers["x-request-id"]


def row_with(field: str, raw_value: str) -> bytes:
    """A predict body whose ``field`` is the raw JSON text ``raw_value``."""
    rest = "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in ROW.items() if k != field)
    return f'{{"inputs": {{"{field}": {raw_value}{rest}}}}}'.encode()


@pytest.mark.parametrize(
    ("field", "raw", "detail"),
    [
        ("income", "1" + "0" * 400, "number is infinity when parsed as double"),
        ("income", "1" + "0" * 5000, "number is infinity when parsed as double"),
        ("term", "1" + "0" * 25, "term: must be an integer, got float"),
        ("term", "18446744073709551615", "term: is out of the range of a 64-bit integer"),
        ("income", "NaN", "income: must be finite"),
        ("income", "-Infinity", "income: must be finite"),
        ("income", "-" + "9" * 5000, "number is infinity when parsed as double"),
        ("region", '"\\ud800"', "no low surrogate in string"),
        ("region", '"\\udc00x"', "surrogate"),
        ("email", '"\\ud800@example.org"', "lone surrogates such as \\ud800 are not text"),
        ("email", '[{"deep": 1}]', "email: must be a string, a number or null, got list"),
    ],
)
def test_odd_values_get_422_naming_the_problem(stub: StubGateway, field: str, raw: str, detail: str) -> None:
    refused(stub.client.post(PREDICT, content=row_with(field, raw), headers=key("alice")), 422, detail)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"[" * 100_000, "depth limit exceeded"),
        (b'{"inputs": {"region": "\xed\xa0\x80"}}', "is not valid UTF-8 JSON"),
        (b"\xff\xfe\x00{", "is not valid UTF-8 JSON"),
        (b'{"inputs": {"income": NaN, "term": 1, "region": "\\ud800"}}', "is not valid UTF-8 JSON"),
        (b"[" * 5000 + b"NaN" + b"]" * 5000, "depth limit exceeded"),
        (b'{"request_id": "\\ud800", "label": 1}', "no low surrogate"),
        (b'{"labels": [{"request_id": "%s", "label": 1%s}]}' % (b"a" * 32, b"0" * 5000), "infinity"),
    ],
)
@pytest.mark.parametrize("route", [PREDICT, FEEDBACK])
def test_odd_bodies_get_422_on_every_body_route(
    stub: StubGateway, route: str, body: bytes, detail: str
) -> None:
    refused(stub.client.post(route, content=body, headers=key("alice")), 422, detail)


def test_every_odd_request_is_recorded_and_loggable(stub: StubGateway) -> None:
    responses = [
        stub.client.post(PREDICT, content=row_with("region", '"\\ud800"'), headers=key("alice")),
        stub.client.post(PREDICT, content=b"[" * 5000, headers=key("alice")),
        stub.client.post(PREDICT, content=row_with("x" * 10_000, "1"), headers=key("alice")),
        stub.client.post(FEEDBACK, content=b"\xed\xa0\x80", headers=key("alice")),
        stub.client.post(PREDICT, json={"inputs": ROW}, headers=key("alice")),
    ]
    assert [r.status_code for r in responses] == [422, 422, 422, 422, 200]
    assert "x" * 65 not in responses[2].json()["detail"]  # a long field name is echoed shortened
    records = {r.id: r for r in stub.records()}
    assert len(records) == stub.writer.submitted == 5
    assert [records[r.headers["x-request-id"]].status for r in responses] == [422, 422, 422, 422, 200]


def test_a_declared_oversized_body_gets_413_before_authentication(stub: StubGateway) -> None:
    for route in (PREDICT, KILL, "/v1/models/m", "/metrics"):
        answer = call(stub, "POST", route, [b"x"], {"content-length": str(10**9)})
        assert answer.status == 413 and answer.receives == 0, route
        assert b"exceeds the limit" in answer.body and REQUEST_ID.fullmatch(answer.headers["x-request-id"])


def test_an_unauthenticated_chunked_upload_is_never_read(stub: StubGateway) -> None:
    chunks = [b"x" * 65_536] * 3200  # 200 MB, if anyone read it
    answer = call(stub, "POST", KILL, chunks)
    assert (answer.status, answer.receives) == (401, 0)
    invalid = call(stub, "POST", KILL, [b'{"reason": 1}'])
    assert invalid.status == 401  # authentication is decided before the body is parsed


def test_an_authenticated_chunked_upload_stops_at_the_limit(stub: StubGateway) -> None:
    limit = stub.gateway.settings.max_control_body_bytes
    answer = call(stub, "POST", KILL, [b"x" * 4096] * 3200, key("deployer"))
    assert answer.status == 413 and b"exceeds the limit" in answer.body
    assert answer.receives == limit // 4096 + 1
    big = call(stub, "POST", PREDICT, [b"x" * 65_536] * 3200, key("alice"))
    assert big.status == 413 and big.receives == stub.gateway.settings.max_body_bytes // 65_536 + 1


def test_a_body_that_trickles_in_gets_408(tmp_path: Path) -> None:
    stub = stub_gateway(tmp_path, body_timeout_seconds=0.05)
    answer = call(stub, "POST", PREDICT, [b"{", b"}"], key("alice"), delay=0.2)
    assert answer.status == 408 and b"not received within 0.05 s" in answer.body


def test_kill_checks_its_body_after_the_role(stub: StubGateway) -> None:
    refused(stub.client.post(KILL, content=b"[" * 3000), 401, "missing or invalid API key")
    refused(stub.client.post(KILL, json={"reason": 1}, headers=key("alice")), 403, "lacks role deployer")
    refused(
        stub.client.post(KILL, json={"reason": 1}, headers=key("deployer")), 422, "reason: Input should be"
    )
    refused(stub.client.post(KILL, content=b"\xff", headers=key("deployer")), 422, "not valid UTF-8 JSON")
    refused(stub.client.post(KILL, json={"reason": "x" * 501}, headers=key("deployer")), 422, "reason:")
    killed = stub.client.post(KILL, json={"reason": "incident 9"}, headers=key("deployer"))
    assert killed.status_code == 200 and killed.json()["available"] is False
    assert stub.audits == [
        ("deployment.killed", "deployer", "spare", {"reason": "incident 9", "durable": True, "problem": None})
    ]
    assert stub.switches == [("spare", "incident 9")]


def test_a_kill_that_cannot_be_recorded_holds_here_and_a_revive_must_be_recorded(stub: StubGateway) -> None:
    stub.durable = False
    killed = stub.client.post(KILL, json={"reason": "incident 10"}, headers=key("deployer"))
    assert killed.status_code == 200 and killed.json()["available"] is False
    assert "the kill holds on this gateway only" in killed.json()["problems"][-1]
    assert stub.audits[-1][3]["durable"] is False
    predict = stub.client.post("/v1/models/spare/predict", json={"inputs": ROW}, headers=key("alice"))
    refused(predict, 503, "shut down by a deployer: incident 10")
    revive = stub.client.post("/v1/models/spare/revive", headers=key("deployer"))
    refused(revive, 503, "stays shut down: the revive could not be recorded")
    stub.durable = True
    assert stub.client.post("/v1/models/spare/revive", headers=key("deployer")).status_code == 200
    ok = stub.client.post("/v1/models/spare/predict", json={"inputs": ROW}, headers=key("alice"))
    assert ok.status_code == 200


def test_unexpected_failures_are_answered_with_the_request_id_and_recorded(stub: StubGateway) -> None:
    def broken(_key: Any) -> None:
        raise RuntimeError("key ring crashed")

    stub.gateway.keys.authenticate = broken  # type: ignore[method-assign]
    response = stub.client.post(PREDICT, json={"inputs": ROW}, headers=key("alice"))
    refused(response, 500, "internal error")
    [record] = stub.records()
    assert (record.id, record.status, record.error) == (response.headers["x-request-id"], 500, "RuntimeError")


def test_unknown_fields_never_become_metric_labels(stub: StubGateway) -> None:
    for i in range(40):
        body = {"inputs": {**ROW, f"field-{i}": 1}}
        assert stub.client.post(PREDICT, json=body, headers=key("alice")).status_code == 422
    stub.client.post(PREDICT, json={"inputs": {"term": 1, "region": "n"}}, headers=key("alice"))
    stub.client.post(PREDICT, json={"inputs": [ROW, {**ROW, "income": "a"}]}, headers=key("alice"))
    stub.client.post("/v1/models/" + "z" * 300 + "/predict", json={}, headers=key("alice"))
    text = stub.metrics()
    assert "field-" not in text and "zzz" not in text
    assert 'govdeploy_input_anomalies_total{field="other",model="m"} 40.0' in text
    assert 'govdeploy_input_anomalies_total{field="income",model="m"} 2.0' in text


def test_refusals_are_counted_by_route_kind_and_status(tmp_path: Path) -> None:
    stub = stub_gateway(tmp_path, anonymous_rate_limit_per_minute=6)  # one at once
    client = stub.client
    client.post(PREDICT, json={"inputs": ROW})  # 401
    client.post(PREDICT, json={"inputs": ROW})  # 429: the address's one token is spent
    client.post(KILL, json={"reason": "abc"}, headers=key("alice"))  # 403
    client.post("/v1/models/nope/predict", json={"inputs": ROW}, headers=key("alice"))  # 404
    client.post(PREDICT, content=b"x" * 2_000_000, headers=key("alice"))  # 413
    client.post(PREDICT, json={"inputs": {}}, headers=key("alice"))  # 422
    client.get("/v1/models/m/what/ever", headers=key("alice"))  # 404, an unknown route
    text = stub.metrics()
    for route, status in [
        ("predict", 401),
        ("predict", 429),
        ("kill", 403),
        ("predict", 404),
        ("predict", 413),
        ("predict", 422),
        ("other", 404),
    ]:
        assert f'govdeploy_responses_total{{route="{route}",status="{status}"}} 1.0' in text


def test_requests_without_a_valid_key_are_rate_limited_per_address(stub: StubGateway) -> None:
    statuses = [call(stub, "POST", PREDICT, [b"{}"], {"x-api-key": f"guess-{i}"}).status for i in range(12)]
    assert statuses == [401] * 10 + [429] * 2  # 60/min, a burst of 10 s
    limited = call(stub, "POST", PREDICT, [b"{}"])
    assert limited.status == 429 and limited.headers["retry-after"] == "1"
    assert b"too many requests without a valid API key from 10.0.0.1" in limited.body
    assert call(stub, "POST", PREDICT, [b"{}"], client="10.0.0.2").status == 401
    assert call(stub, "POST", PREDICT, [b'{"inputs": {}}'], key("alice")).status == 422  # keys unaffected


def test_a_batch_costs_the_rate_limit_by_its_rows(tmp_path: Path) -> None:
    stub = stub_gateway(tmp_path, rows_per_rate_limit_request=100)
    one, batch = {"inputs": ROW}, {"inputs": [ROW] * 1000}
    assert stub.client.post(PREDICT, json=one, headers=key("slow")).status_code == 200
    after_one = stub.client.post(PREDICT, json=one, headers=key("slow"))
    assert after_one.status_code == 429 and after_one.headers["retry-after"] == "1"
    other = stub_gateway(tmp_path / "b", rows_per_rate_limit_request=100)
    assert other.client.post(PREDICT, json=batch, headers=key("slow")).status_code == 200
    after_batch = other.client.post(PREDICT, json=one, headers=key("slow"))
    assert after_batch.status_code == 429 and int(after_batch.headers["retry-after"]) == 10
    refused(after_batch, 429, "rate limit of 60/min exceeded")


def test_docs_are_off_unless_turned_on(stub: StubGateway, tmp_path: Path) -> None:
    for path in ("/docs", "/openapi.json", "/redoc"):
        refused(stub.client.get(path), 404, "Not Found")
    on = stub_gateway(tmp_path / "on", gateway_docs=True)
    assert "/v1/models/{name}/kill" in on.client.get("/openapi.json").json()["paths"]
    assert on.client.get("/docs").status_code == 200


def test_prediction_clients_get_a_short_reason_and_auditors_the_details(stub: StubGateway) -> None:
    secret = "champion v3 refused: model.skops digest 9f86d08 does not verify under /keys/release.pub"
    stub.gateway.state.models["m"] = ServedModel("m", frozenset(), problems=[secret])
    response = stub.client.post(PREDICT, json={"inputs": ROW}, headers=key("alice"))
    refused(response, 503, "model m has no verified version to serve")
    assert "skops" not in response.text and "keys" not in response.text
    public = stub.client.get("/v1/models/m", headers=key("alice")).json()
    assert public["problems"] == [] and public["reason"] == "model m has no verified version to serve"
    audited = stub.client.get("/v1/models/m", headers=key("auditor")).json()
    assert audited["problems"] == [secret] and secret in audited["reason"]
    stub.gateway.state.models["spare"].killed = "incident 12"
    killed = stub.client.post("/v1/models/spare/predict", json={"inputs": ROW}, headers=key("alice"))
    refused(killed, 503, "model spare is shut down by a deployer: incident 12")


def test_an_unknown_model_name_is_echoed_shortened(stub: StubGateway) -> None:
    response = stub.client.post("/v1/models/" + "n" * 5000 + "/predict", json={}, headers=key("alice"))
    refused(response, 404, "unknown model 'nnnn")
    assert len(response.json()["detail"]) < 120
    assert re.fullmatch(r"unknown model 'n{64}\.\.\.'", response.json()["detail"])
