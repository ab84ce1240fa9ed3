"""Several worker processes of one gateway: shared metrics, refresh requests, local kills, the run
directory, the remembered serving record under concurrent writers."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import values

from govdeploy.config.settings import Settings
from govdeploy.errors import ConfigError
from govdeploy.monitoring.iolog import IOLogWriter
from govdeploy.monitoring.iorecords import IORecord, batch_files, read_batches
from govdeploy.serving.canary import parse_metrics
from govdeploy.serving.gateway import workers
from govdeploy.serving.gateway.access import Principal, load_access
from govdeploy.serving.gateway.metrics import GatewayMetrics
from govdeploy.serving.gateway.parts import build_gateway
from govdeploy.serving.gateway.workers import MULTIPROC_ENV, Siblings, prepare_run, worker_processes
from govdeploy.trust.keys import init_api_keys, init_keys
from govdeploy.trust.seen_records import SeenRecords
from tests.conftest import CONFIG_DIR
from tests.govdeploy.serving.gateway import worker_children as children
from tests.govdeploy.serving.gateway.stub_gateway import MASTER, ROW, StubGateway, key, stub_gateway

SPAWN = multiprocessing.get_context("spawn")


def _in_process(target: Any, *args: Any) -> None:
    child = SPAWN.Process(target=target, args=args)
    child.start()
    child.join(60)
    assert child.exitcode == 0


def test_metrics_of_every_worker_process_add_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))  # what the launcher gives its workers
    _in_process(children.count_requests, str(tmp_path), "1", 3)
    _in_process(children.count_requests, str(tmp_path), "1", 4)
    _in_process(children.count_requests, str(tmp_path), "2", 5)
    out = SPAWN.Queue()
    _in_process(children.render, str(tmp_path), out)  # whichever worker answers /metrics sees them all
    stats = parse_metrics(out.get(timeout=10), "m")
    assert (stats["1"].requests, stats["2"].requests) == (7, 5)
    assert stats["1"].score_count == 7 and stats["1"].latency_buckets[0.005] == 7


def test_multiprocess_metrics_need_the_directory_before_prometheus_is_imported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR must be set before"):
        GatewayMetrics(multiprocess=tmp_path)  # this process imported prometheus_client without it


def test_a_process_counts_as_its_workers(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    settings = Settings(config_dir=CONFIG_DIR, gateway_workers=3)
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    assert worker_processes(settings) == 1  # one process started another way
    assert "runs as one process" in caplog.text
    monkeypatch.setattr(workers.multiprocessing, "parent_process", lambda: object())
    with pytest.raises(ConfigError, match="uvicorn --workers or --reload"):
        worker_processes(settings)  # a worker uvicorn started without the launcher's directory
    monkeypatch.setenv(MULTIPROC_ENV, "/somewhere/metrics")
    assert worker_processes(settings) == 3


def test_the_run_directory_is_fresh_and_old_ones_go(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, config_dir=CONFIG_DIR)
    root = tmp_path / "gateway"
    gone = SPAWN.Process(target=int)
    gone.start()
    gone.join()
    for pid in (gone.pid, os.getppid()):
        (root / f"run-{pid}" / "metrics").mkdir(parents=True)
        (root / f"run-{pid}" / "metrics" / "counter_1.db").write_bytes(b"x")
    run = prepare_run(settings, os.getpid())
    assert run == root / f"run-{os.getpid()}"
    assert sorted(p.name for p in run.iterdir()) == ["metrics", "siblings"]
    assert not (root / f"run-{gone.pid}").exists()  # its launcher is gone
    assert (root / f"run-{os.getppid()}").exists()  # its launcher runs
    assert prepare_run(settings, os.getpid()) == run and not any((run / "metrics").iterdir())


def test_a_refresh_request_is_confirmed_by_every_worker(tmp_path: Path) -> None:
    first, second = Siblings(tmp_path, 2, name="a"), Siblings(tmp_path, 2, name="b")
    assert first.requested() == 0
    number = first.request()
    assert second.requested() == number and first.request() > number  # always increasing
    assert first.confirmed(number) == 0
    first.confirm(number)
    second.confirm(number - 1)
    assert first.confirmed(number) == 1
    second.confirm(number + 1)
    assert first.confirmed(number) == 2


def test_a_worker_that_does_not_confirm_is_named_not_waited_for_forever(tmp_path: Path) -> None:
    clock = iter(range(0, 1000, 10))
    alone = Siblings(tmp_path, 2, name="a", clock=lambda: float(next(clock)))
    alone.confirm(2**62)  # this worker, at any request; the other never answers
    assert asyncio.run(alone.everywhere(timeout=25)) == (
        "1 of 2 worker processes confirmed the change within 25 s; the others apply it at their next refresh"
    )


def test_local_kills_are_shared(tmp_path: Path) -> None:
    first, second = Siblings(tmp_path, 2, name="a"), Siblings(tmp_path, 2, name="b")
    first.set_local_kill("m", "incident 7")
    second.set_local_kill("spare", "incident 8")
    assert first.local_kills() == {"m": "incident 7", "spare": "incident 8"}
    second.set_local_kill("m", None)
    assert first.local_kills() == {"spare": "incident 8"}
    first.kills_path.write_text("not json")
    assert second.local_kills() == {}


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[StubGateway, StubGateway]]:
    """Two worker processes' apps (stub models) polling one siblings directory; each counts its
    serving-state refreshes."""
    shared = tmp_path / "siblings"
    shared.mkdir()
    pair = [stub_gateway(tmp_path / name) for name in ("a", "b")]
    for name, stub in zip("ab", pair, strict=True):
        gateway = stub.gateway
        gateway.workers, gateway.siblings = 2, Siblings(shared, 2, name=name)
        gateway.state = SimpleNamespace(models=gateway.state.models, refresh=Counter())  # type: ignore[assignment]
        threading.Thread(target=gateway._poll, args=(0,), daemon=True).start()
    yield pair[0], pair[1]
    for stub in pair:
        stub.gateway.stopping.set()
        stub.writer.close()


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def test_a_local_kill_holds_on_every_worker_before_the_answer(
    two_workers: tuple[StubGateway, StubGateway],
) -> None:
    here, there = two_workers
    here.durable = False  # the kill cannot be written to the serving record
    killed = here.client.post("/v1/models/spare/kill", json={"reason": "incident 9"}, headers=key("deployer"))
    assert killed.status_code == 200 and killed.json()["available"] is False
    assert there.gateway.state.models["spare"].local_kill == "incident 9"
    refused = there.client.post("/v1/models/spare/predict", json={"inputs": ROW}, headers=key("alice"))
    assert refused.status_code == 503 and "incident 9" in refused.json()["detail"]
    here.durable = True
    revived = here.client.post("/v1/models/spare/revive", headers=key("deployer"))
    assert revived.status_code == 200 and revived.json()["problems"] == []
    assert there.gateway.state.models["spare"].local_kill is None
    assert (
        there.client.post("/v1/models/spare/predict", json={"inputs": ROW}, headers=key("alice")).status_code
        == 200
    )


def test_a_reload_here_refreshes_every_worker_before_the_answer(
    two_workers: tuple[StubGateway, StubGateway],
) -> None:
    here, there = two_workers
    before = there.gateway.state.refresh.calls  # type: ignore[attr-defined]
    reloaded = here.client.post("/v1/models/m/reload", headers=key("deployer"))
    assert reloaded.status_code == 200 and reloaded.json()["problems"] == []
    assert there.gateway.state.refresh.calls > before  # type: ignore[attr-defined]


def test_a_worker_that_does_not_confirm_is_listed_in_the_answer(
    two_workers: tuple[StubGateway, StubGateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    here, there = two_workers
    there.gateway.stopping.set()  # it no longer polls
    monkeypatch.setattr(Siblings.everywhere, "__defaults__", (0.3,))
    reloaded = here.client.post("/v1/models/m/reload", headers=key("deployer"))
    assert reloaded.status_code == 200
    assert reloaded.json()["problems"] == [
        "1 of 2 worker processes confirmed the change within 0.3 s; the others apply it at their next refresh"
    ]


def test_workers_remembering_serving_records_at_once_keep_the_file_whole_and_the_newest(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gateway" / "serving-seq.json"
    writers = [SPAWN.Process(target=children.remember, args=(str(path), 1 + n * 7, 40)) for n in range(4)]
    for child in writers:
        child.start()
    for child in writers:
        child.join(60)
        assert child.exitcode == 0
    assert json.loads(path.read_text())["m"]["sequence"] == 1 + 3 * 7 + 39
    assert SeenRecords(path).get("m") is not None
    assert not list(path.parent.glob("*.partial"))


def test_a_worker_admits_its_share_and_counts_into_the_shared_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker of two, of one of three replicas: 1/6 of every limit; metrics in the run's directory."""
    settings = Settings(state_dir=tmp_path, config_dir=CONFIG_DIR, gateway_workers=2, gateway_replica_count=3)
    init_keys(settings.keys_dir, [])
    init_api_keys(settings.keys_dir, sorted(load_access(settings.access_path).principals))
    run = prepare_run(settings, os.getpid())
    monkeypatch.setenv(MULTIPROC_ENV, str(run / "metrics"))
    monkeypatch.setattr(workers.multiprocessing, "parent_process", lambda: object())
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())  # as if imported with the variable
    gateway = build_gateway(settings)
    assert gateway.workers == 2 and gateway.siblings is not None
    assert gateway.siblings.directory == run / "siblings"
    auditor = Principal("auditor", frozenset({"auditor"}), 600)
    assert gateway.limiter.capacity(auditor) == pytest.approx(100 / 60)  # 600/min over 6
    gateway.metrics.requests.labels("credit-risk", "1", "200").inc()
    assert list((run / "metrics").glob(f"counter_{os.getpid()}.db"))
    assert 'govdeploy_requests_total{model="credit-risk",status="200",version="1"} 1.0' in (
        gateway.metrics.render().decode()
    )
    values.close_all_multiprocess_files()


def test_the_workers_writers_share_one_spool(tmp_path: Path) -> None:
    """Idle writers of several workers probe the spool they share without tripping over each other's
    probe; each names its batches with its own writer id; a new writer leaves alone the marker of a
    batch another one is writing now."""
    day = tmp_path / datetime.now(UTC).strftime("%Y%m%d")
    day.mkdir()
    in_flight = day / f"{datetime.now(UTC):%H%M%S%f}-{'b' * 16}-00000001-00000000.jsonl.enc.unshipped"
    in_flight.touch()
    writers = [
        IOLogWriter(tmp_path, MASTER, flush_interval=0.001, probe_interval=0.001, shipper=lambda path: None)
        for _ in range(3)
    ]
    for writer in writers:
        writer.start()
    time.sleep(1.0)  # hundreds of probes each
    assert all(writer.problems() == [] for writer in writers), [w.problems() for w in writers]
    assert in_flight.exists()
    for n, writer in enumerate(writers):
        writer.submit(
            IORecord(
                id=f"{n:032x}",
                time="t",
                kind="access",
                model=None,
                version=None,
                principal=None,
                route="GET /",
                status=200,
                latency_ms=1,
            )
        )
        writer.close()
    names = {path.name.split("-")[1] for path in batch_files(tmp_path)}
    assert names == {writer.writer_id for writer in writers} and len(read_batches(tmp_path, MASTER)) == 3
