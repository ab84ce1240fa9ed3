"""Fuzzing every route of the gateway: whatever the bytes and headers, never a 5xx, always the
request id, and exactly one I/O record per response (the health check aside), each of which can be
written and read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govdeploy.trust.request_ids import REQUEST_ID
from tests.govdeploy.serving.gateway.stub_gateway import PRINCIPALS, ROW, StubGateway, stub_gateway

ROUTES = [
    ("POST", "/v1/models/m/predict"),
    ("POST", "/v1/models/m/feedback"),
    ("POST", "/v1/models/spare/kill"),  # only "spare" may be killed: "m" must keep answering
    ("POST", "/v1/models/spare/revive"),
    ("POST", "/v1/models/spare/reload"),
    ("GET", "/v1/models/m"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
]

json_scalars = st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _row_variant(draw: st.DrawFn) -> Any:
    row: dict[str, Any] = dict(ROW)
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.sampled_from([*ROW, "email", "other"]) | st.text(max_size=10))
        row[field] = draw(json_values)
    if draw(st.booleans()):
        row.pop(draw(st.sampled_from(list(ROW))), None)
    return row


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    """Bodies shaped like the routes' with odd values: wrong types, unknown fields, odd rows."""
    kind = draw(st.sampled_from(["predict", "batch", "feedback", "kill", "any"]))
    if kind == "predict":
        body: Any = {"inputs": _row_variant(draw)}
    elif kind == "batch":
        body = {"inputs": [_row_variant(draw) for _ in range(draw(st.integers(0, 5)))]}
    elif kind == "feedback":
        rid = draw(st.sampled_from(["a" * 32, "0" * 31]) | st.text(max_size=40))
        body = {"labels": [{"request_id": rid, "label": draw(json_values)}]}
    elif kind == "kill":
        body = {"reason": draw(json_values)}
    else:
        body = draw(json_values)
    return json.dumps(body).encode()


@st.composite
def poisoned_json(draw: st.DrawFn) -> bytes:
    """A valid body with one value replaced by raw JSON text no Python parser should trust."""
    poison = draw(
        st.sampled_from(
            [
                '"\\ud800"',
                '"a\\udfffb"',
                '"\\ud83d"',
                "1" + "0" * 400,
                "-" + "9" * 5000,
                "1e999",
                "NaN",
                "-Infinity",
                "[" * 2000 + "]" * 2000,
                '"' + "x" * 300_000 + '"',
                "18446744073709551616",
                "0.1e-999999",
            ]
        )
    )
    template = draw(
        st.sampled_from(
            [
                '{"inputs": {"income": %s, "term": 36, "region": "n"}}',
                '{"inputs": {"income": 1.0, "term": %s, "region": "n"}}',
                '{"inputs": {"income": 1.0, "term": 36, "region": %s}}',
                '{"inputs": {"income": 1.0, "term": 36, "region": "n", "email": %s}}',
                '{"inputs": [{"income": 1.0, "term": 36, "region": "n"}, %s]}',
                '{"labels": [{"request_id": %s, "label": 1}]}',
                '{"request_id": "' + "a" * 32 + '", "label": %s}',
                '{"reason": %s}',
                "{%s: 1}",
                "%s",
            ]
        )
    )
    return (template % poison).encode("utf-8", errors="surrogatepass")


nested = st.integers(1, 120_000).map(lambda n: b"[" * n) | st.integers(1, 3000).map(
    lambda n: b'{"inputs": ' * n + b"1" + b"}" * n
)
raw_bytes = st.binary(max_size=300) | st.sampled_from([b"\xed\xa0\x80", b"\xff", b"\xc3", b"\xef\xbb\xbf{}"])
huge = st.integers(900_000, 1_200_000).map(lambda n: b'{"inputs": "' + b"y" * n + b'"}')
bodies = json_bodies() | poisoned_json() | nested | raw_bytes | huge | st.just(b"")

header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=60)
api_keys = st.sampled_from([f"key-{p}" for p in PRINCIPALS]) | header_text
headers = st.fixed_dictionaries(
    {},
    optional={
        "x-api-key": api_keys,
        "content-type": st.sampled_from(["application/json", "text/plain", "multipart/form-data"])
        | header_text,
        "x-request-id": header_text,
        "accept-encoding": header_text,
        "x-forwarded-for": header_text,
        "transfer-encoding": st.just("chunked"),
    },
)


def check(stub: StubGateway, answered: list[str], method: str, path: str, body: bytes, sent: Any) -> None:
    """Send one request: never a 5xx; the request id in the header and any error body; noted as
    ``<status> <request id>``."""
    raw = {name: value.encode("latin-1") for name, value in sent.items()}  # any byte a header may hold
    response = stub.client.request(method, path, content=body, headers=raw)
    assert response.status_code < 500, (method, path, response.status_code, response.text[:300])
    if path == "/healthz":
        return
    request_id = response.headers["x-request-id"]
    assert REQUEST_ID.fullmatch(request_id)
    if response.status_code >= 400 and method != "HEAD":  # a HEAD answer has no body
        assert response.json()["request_id"] == request_id
    answered.append(f"{response.status_code} {request_id}")


odd_paths = st.text(max_size=30).map(lambda s: "/v1/models/" + quote(s, safe="") + "/predict") | st.text(
    max_size=30
).map(lambda s: "/" + quote(s, safe="/"))
fuzzing = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def test_fuzz_every_route(tmp_path: Path) -> None:
    # a body limit under the huge bodies; a generous anonymous limit keeps some 401s among the 429s
    stub = stub_gateway(tmp_path, max_body_bytes=1_000_000, anonymous_rate_limit_per_minute=6000)
    answered: list[str] = []  # "<status> <request id>" of the recorded responses, in order

    @fuzzing
    @given(route=st.sampled_from(ROUTES), body=bodies, sent=headers)
    def odd_bodies(route: tuple[str, str], body: bytes, sent: Any) -> None:
        check(stub, answered, route[0], route[1], body, sent)

    @settings(fuzzing, max_examples=400)
    @given(
        method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
        path=odd_paths | st.sampled_from([path for _, path in ROUTES]),
        body=json_bodies() | raw_bytes,
        sent=headers,
    )
    def odd_methods_and_paths(method: str, path: str, body: bytes, sent: Any) -> None:
        check(stub, answered, method, path, body, sent)

    odd_bodies()
    odd_methods_and_paths()
    assert len(answered) >= 1500
    assert stub.writer.submitted == len(answered)
    records = stub.records()  # every record was written and reads back
    assert [f"{r.status} {r.id}" for r in records] == answered
    # the fuzzing reached every outcome, the answers included
    assert {200, 401, 403, 404, 405, 413, 422, 429} <= {int(a.split()[0]) for a in answered}
    assert stub.gateway.state.models["m"].killed is None
