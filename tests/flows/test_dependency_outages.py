"""S3 and MLflow hang under a serving gateway (their processes stopped with SIGSTOP: connections
open, no answer, the worst case for clients): the verified champion keeps answering, every answer
keeps its record, a registry call fails within seconds, /healthz says what is wrong, and all of it
recovers once the server answers again (SIGCONT), the backlog of I/O batches shipped."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from govdeploy.backends import registry
from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import Settings
from govdeploy.errors import GovdeployError
from govdeploy.monitoring.iorecords import read_batches
from govdeploy.polling import poll
from govdeploy.serving import rollout
from govdeploy.stack import manager
from govdeploy.trust.keys import master_key
from tests.flows.conftest import MODEL
from tests.flows.test_gateway import ROW, key, served  # noqa: F401 (served: a fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.disruptive]


@contextmanager
def hung(stack: Settings, name: str) -> Iterator[None]:
    """Every process of the stack's component ``name`` stopped (SIGSTOP), continued after."""
    component = next(c for c in manager.all_components(stack) if c.name == name)
    found = manager._presence(stack, component)
    assert found is not None and found.groups, f"{name} is not running"
    for group in found.groups:
        os.killpg(group, signal.SIGSTOP)
    try:
        yield
    finally:
        for group in found.groups:
            os.killpg(group, signal.SIGCONT)


def _health(stack: Settings) -> dict[str, Any]:
    answer = httpx.get(f"{stack.gateway_url}/healthz", headers=key(stack, "deployer"), timeout=30)
    return {"code": answer.status_code, **answer.json()}


def test_a_hung_s3_and_a_hung_mlflow_stop_nothing_served_and_lose_no_record(
    stack: Settings,
    served: dict[str, Any],  # noqa: F811
) -> None:
    champion = served["version"]
    headers = key(stack, "bench")
    answered: dict[str, int] = {}

    def ask() -> None:
        answer = httpx.post(
            f"{stack.gateway_url}/v1/models/{MODEL}/predict",
            json={"inputs": ROW},
            headers=headers,
            timeout=30,
        )
        answered[answer.headers["x-request-id"]] = answer.status_code
        assert answer.status_code == 200 and answer.json()["version"] == champion, answer.text

    assert poll(lambda: _health(stack)["code"] == 200, timeout=60)
    with hung(stack, "s3"):
        failing: list[dict[str, Any]] = []

        def refresh_failed() -> bool:
            ask()
            failing[:] = [_health(stack)]
            return failing[0]["code"] == 503

        assert poll(refresh_failed, timeout=120, interval=1.0), failing
        assert any("refresh" in problem for problem in failing[0]["problems"]), failing
        for _ in range(10):
            ask()
    assert poll(lambda: _health(stack)["code"] == 200, timeout=120, interval=1.0), _health(stack)
    drained = poll(lambda: _health(stack)["io_backlog_batches"] == 0, timeout=120, interval=1.0)
    assert drained, _health(stack)

    with hung(stack, "mlflow"):
        started = time.monotonic()
        with pytest.raises(GovdeployError):
            registry.alias_version(MODEL, "champion", stack.mlflow_url)
        assert time.monotonic() - started < 90  # bounded timeouts and retries, not minutes
        assert rollout.serving_champion(stack, MODEL) == champion  # the record lives in S3
        for _ in range(10):
            ask()
    assert poll(lambda: _health(stack)["code"] == 200, timeout=120, interval=1.0), _health(stack)

    def shipped() -> bool:
        ask()  # the writer flushes its open batch on the next record or its interval
        return _health(stack)["io_records_pending"] == 0 and _health(stack)["io_backlog_batches"] == 0

    assert poll(shipped, timeout=60, interval=1.0), _health(stack)
    iolog = stack.state_dir / "iolog"
    records = {r.id: r.status for r in read_batches(iolog, master_key(stack.keys_dir))}
    missing = [request_id for request_id in answered if request_id not in records]
    assert not missing, f"{len(missing)} of {len(answered)} answers have no I/O record"
    local = {p.relative_to(iolog).as_posix() for p in iolog.rglob("*.enc")}
    listed = s3_client(stack).get_paginator("list_objects_v2").paginate(Bucket=stack.bucket, Prefix="iolog/")
    in_bucket = {item["Key"].removeprefix("iolog/") for page in listed for item in page.get("Contents", [])}
    assert local <= in_bucket, sorted(local - in_bucket)[:5]
