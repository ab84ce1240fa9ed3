"""What the worker processes of the tests in ``test_workers`` do (a light module: each child
process imports it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from govdeploy.serving.gateway.metrics import GatewayMetrics
from govdeploy.trust.seen_records import SeenRecords
from govdeploy.trust.serving_content import ServingRecord


def count_requests(directory: str, version: str, times: int) -> None:
    """A worker process: its gateway metrics count ``times`` predictions of ``version``."""
    metrics = GatewayMetrics(multiprocess=Path(directory))
    for _ in range(times):
        metrics.requests.labels("m", version, "200").inc()
        metrics.latency.labels("m", version).observe(0.004)
        metrics.scores.labels("m", version).observe(0.3)


def render(directory: str, out: Any) -> None:
    out.put(GatewayMetrics(multiprocess=Path(directory)).render().decode())


def remember(path: str, start: int, count: int) -> None:
    seen = SeenRecords(Path(path))
    for sequence in range(start, start + count):
        seen.remember(record(sequence))


def record(sequence: int) -> ServingRecord:
    return ServingRecord(
        model="m",
        champion="1",
        challenger=None,
        challenger_weight=0,
        issued_at="2026-01-01T00:00:00+00:00",
        issuer="test",
        sequence=sequence,
    )
