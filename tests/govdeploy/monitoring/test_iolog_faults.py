"""The I/O log under faults: poisoned records, an unwritable spool, a full queue, a bucket outage."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from govdeploy.errors import GovdeployError
from govdeploy.monitoring import iolog, ioqueue, iospool
from govdeploy.monitoring.completeness import writer_runs
from govdeploy.monitoring.iolog import IOLogWriter
from govdeploy.monitoring.iorecords import (
    IORecord,
    batch_files,
    decode_batch_bytes,
    parse_batch_key,
    read_batches,
    record_line,
)
from govdeploy.polling import poll

MASTER = os.urandom(32)
WILD_TEXT = st.text(st.characters(categories=["Cs", "L", "N", "P", "S", "Z", "Cc"]), max_size=12)


def record(inputs: list[dict[str, Any]] | None = None, status: int = 200, **fields: Any) -> IORecord:
    values: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "time": datetime.now(UTC).isoformat(),
        "kind": "predict",
        "model": "credit-risk",
        "version": "3",
        "principal": "key-1",
        "route": "POST /v1/models/credit-risk/predict",
        "status": status,
        "latency_ms": 1.5,
        "inputs": inputs if inputs is not None else [{"income": 1.0}],
        "outputs": [0.25],
        **fields,
    }
    return IORecord(**values)


class Bucket:
    """A fake bucket: the shipper of a writer, failing its first ``failures`` uploads."""

    def __init__(self, root: Path, failures: int = 0) -> None:
        self.root, self.failures = root, failures
        self.objects: dict[str, bytes] = {}
        self.tries = 0
        self.lock = threading.Lock()

    def ship(self, path: Path) -> None:
        with self.lock:
            self.tries += 1
            if self.failures > 0:
                self.failures -= 1
                raise ConnectionError("bucket unreachable")
            self.objects["iolog/" + path.relative_to(self.root).as_posix()] = path.read_bytes()

    def records(self) -> list[IORecord]:
        return [
            item
            for key, data in sorted(self.objects.items())
            for item in decode_batch_bytes(data, key, MASTER, key)
        ]


# --- records that cannot be serialised ---


def test_an_unserialisable_record_becomes_an_error_record_and_later_records_flow(tmp_path: Path) -> None:
    writer = IOLogWriter(tmp_path, MASTER, batch_size=2, flush_interval=0.01)
    writer.start()
    poisoned = record([{"region": "\ud800", "income": 1.0}], principal="key-\udfff")
    before, after = [record() for _ in range(3)], [record() for _ in range(5)]
    for item in [*before, poisoned, *after]:
        writer.submit(item)
    poll(lambda: writer.written == 9, timeout=5, interval=0.01)
    assert writer.pending == 0 and writer.refusal() is None
    writer.close()
    records = read_batches(tmp_path, MASTER)
    assert [r.id for r in records] == [r.id for r in [*before, poisoned, *after]]
    written = records[3]
    assert (written.time, written.route, written.status) == (poisoned.time, poisoned.route, 200)
    assert written.principal == "key-\\udfff" and written.inputs == [{"region": "\\ud800", "income": 1.0}]
    assert written.error is not None and "not serialisable" in written.error and "surrogates" in written.error
    assert all(r.error is None for r in records if r.id != poisoned.id)


def test_a_payload_that_cannot_even_be_escaped_is_dropped_and_the_record_kept() -> None:
    broken = IORecord.model_construct(
        **record().model_dump(exclude={"inputs", "status"}), status=200, inputs=[{"x": object()}]
    )
    line = IORecord.model_validate_json(record_line(broken))
    assert line.id == broken.id and line.status == 200 and line.inputs is None and line.outputs is None
    assert line.error is not None and "payload was dropped" in line.error


@settings(max_examples=200, deadline=None)
@given(
    value=WILD_TEXT,
    key=WILD_TEXT,
    principal=st.none() | WILD_TEXT,
    error=st.none() | WILD_TEXT,
)
def test_every_record_gives_one_line_that_reads_back(
    value: str, key: str, principal: str | None, error: str | None
) -> None:
    item = record([{key: value, "n": 1}], principal=principal, error=error)
    line = record_line(item)
    assert line.endswith("\n") and line.count("\n") == 1
    back = IORecord.model_validate_json(line.encode("utf-8"))
    assert (back.id, back.time, back.status, back.route) == (item.id, item.time, item.status, item.route)
    clean = all(not 0xD800 <= ord(c) <= 0xDFFF for c in key + value + (principal or "") + (error or ""))
    assert (back == item) is clean  # a record changes only when it cannot be written as it is
    if not clean:
        assert back.error is not None and back.error.startswith("I/O record not serialisable")


# --- the queue's bound ---


def test_the_queue_is_bounded_predictions_refused_when_full_then_records_lost_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alerts: list[str] = []
    writer = IOLogWriter(tmp_path, MASTER, max_queued=5, alert=alerts.append)
    for _ in range(4):
        writer.submit(record())
    assert writer.refusal() is None
    writer.submit(record())
    refusal = writer.refusal()
    assert refusal is not None and "queue is full: 5 records" in refusal
    with caplog.at_level(logging.ERROR, logger=ioqueue.__name__):
        for _ in range(5):  # the reserve: records of refusals and other responses
            writer.submit(record(status=503))
        assert writer.lost == 0 and writer.pending == 10
        writer.submit(record(status=503))
        writer.submit(record(status=503))
    assert writer.lost == 2 and writer.pending == 10
    assert len(alerts) == 1 and "being lost" in alerts[0] and "lost: 10 records wait" in caplog.text
    assert any("2 I/O records were lost" in p for p in writer.problems())
    writer.flush()
    assert writer.refusal() is None and writer.written == 10
    writer.close()


def test_a_stalled_writer_refuses(tmp_path: Path) -> None:
    writer = IOLogWriter(tmp_path, MASTER, stall_seconds=0.05)  # never started: nothing writes
    writer.submit(record())
    assert writer.refusal() is None
    poll(lambda: writer.refusal() is not None, timeout=5, interval=0.01)
    assert "stalled" in str(writer.refusal()) and writer.problems() == [writer.refusal()]
    writer.close()
    assert writer.written == 1


# --- an unwritable spool ---


def test_an_unwritable_spool_refuses_then_recovers_and_keeps_every_record(
    tmp_path: Path, freeze: Any
) -> None:
    alerts: list[str] = []
    spool = tmp_path / "iolog"
    writer = IOLogWriter(spool, MASTER, batch_size=3, flush_interval=0.01, alert=alerts.append)
    writer.start()
    writer.submit(record())
    poll(lambda: writer.written == 1, timeout=5, interval=0.01)
    freeze(spool)
    submitted = [record() for _ in range(7)]
    for item in submitted:
        writer.submit(item)
    poll(lambda: writer.refusal() is not None, timeout=5, interval=0.01)
    assert f"cannot be written to {spool}" in str(writer.refusal())
    assert writer.problems()[0] == writer.refusal() and writer.written == 1
    assert len(alerts) == 1 and "predictions are refused" in alerts[0]
    freeze.thaw()
    poll(lambda: writer.written == 8, timeout=5, interval=0.01)
    assert writer.refusal() is None and writer.problems() == []
    writer.close()
    assert [r.id for r in read_batches(spool, MASTER)][1:] == [r.id for r in submitted]


def test_an_idle_writer_probes_its_spool(tmp_path: Path, freeze: Any) -> None:
    spool = tmp_path / "iolog"
    spool.mkdir()
    writer = IOLogWriter(spool, MASTER, flush_interval=0.01, probe_interval=0.05)
    writer.start()
    freeze(spool)
    poll(lambda: writer.refusal() is not None, timeout=5, interval=0.01)  # no record was submitted
    assert "probe failed" in str(writer.refusal())
    freeze.thaw()
    poll(lambda: writer.refusal() is None, timeout=5, interval=0.01)
    writer.close()
    assert not (spool / iospool.PROBE_NAME).exists()


def test_degrade_policy_serves_but_reports_and_alerts(tmp_path: Path, freeze: Any) -> None:
    alerts: list[str] = []
    spool = tmp_path / "iolog"
    writer = IOLogWriter(spool, MASTER, flush_interval=0.01, on_failure="degrade", alert=alerts.append)
    writer.start()
    freeze(spool)
    writer.submit(record())
    poll(lambda: bool(writer.problems()), timeout=5, interval=0.01)
    assert writer.refusal() is None
    assert any("cannot be written" in p for p in writer.problems())
    assert any("degrade" in p for p in writer.problems())
    assert len(alerts) == 1 and "degrade" in alerts[0]
    freeze.thaw()
    writer.close()
    assert writer.written == 1


def test_close_on_an_unwritable_spool_says_how_many_records_are_lost(
    tmp_path: Path, freeze: Any, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "iolog"
    writer = IOLogWriter(spool, MASTER)
    for _ in range(50):
        writer.submit(record())
    freeze(spool)
    with (
        caplog.at_level(logging.CRITICAL, logger=iolog.__name__),
        pytest.raises(GovdeployError, match="50 I/O"),
    ):
        writer.close(timeout=0.2)
    assert "50 I/O log records could not be written" in caplog.text and "lost" in caplog.text
    freeze.thaw()
    writer.close()
    assert len(read_batches(spool, MASTER)) == 50


# --- the shipping backlog ---


def test_failed_uploads_are_retried_with_backoff_until_the_bucket_has_them(tmp_path: Path) -> None:
    bucket = Bucket(tmp_path, failures=3)
    writer = IOLogWriter(
        tmp_path, MASTER, batch_size=2, flush_interval=0.01, shipper=bucket.ship, ship_retry_min=0.02
    )
    assert writer.backlog is not None
    submitted = [record() for _ in range(6)]
    for item in submitted:
        writer.submit(item)
    writer.start()  # after the records were queued: three full batches
    poll(lambda: len(bucket.objects) == 3, timeout=10, interval=0.01)
    assert bucket.tries == 6 and writer.backlog.size == 0 and writer.backlog.last_error is None
    assert not list(tmp_path.glob("*/*.unshipped"))
    local = {f"iolog/{p.relative_to(tmp_path).as_posix()}": p.read_bytes() for p in batch_files(tmp_path)}
    assert bucket.objects == local  # the same sealed bytes under the same keys
    assert [r.id for r in bucket.records()] == [r.id for r in submitted]
    writer.close()


def test_batches_not_shipped_before_a_restart_are_shipped_by_the_next_writer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outage = Bucket(tmp_path, failures=10**6)
    first = IOLogWriter(tmp_path, MASTER, batch_size=2, shipper=outage.ship, backlog_max=1)
    before = [record() for _ in range(5)]
    for item in before:
        first.submit(item)
    first.flush()
    assert first.backlog is not None and first.backlog.size == 3
    assert any("3 I/O log batches wait to be shipped" in p for p in first.problems())
    with caplog.at_level(logging.ERROR, logger=iolog.__name__):
        first.close()
    assert "3 I/O log batches" in caplog.text and outage.objects == {}

    bucket = Bucket(tmp_path)
    second = IOLogWriter(tmp_path, MASTER, batch_size=2, flush_interval=0.01, shipper=bucket.ship)
    after = [record() for _ in range(2)]
    for item in after:
        second.submit(item)
    second.start()  # one batch of its own, behind those of the first writer
    poll(lambda: len(bucket.objects) == 4, timeout=10, interval=0.01)
    second.close()
    local = {f"iolog/{p.relative_to(tmp_path).as_posix()}": p.read_bytes() for p in batch_files(tmp_path)}
    assert bucket.objects == local
    assert {r.id for r in bucket.records()} == {r.id for r in before + after}
    ids = [parse_batch_key(key) for key in bucket.objects]
    runs = writer_runs([i for i in ids if i is not None], datetime.now(UTC).date())
    assert runs == {first.writer_id: (1, 3), second.writer_id: (1, 1)}  # no gap: completeness holds


def test_a_marker_whose_batch_was_never_written_is_dropped(tmp_path: Path) -> None:
    day = tmp_path / "20260101"
    day.mkdir()
    stray = day / f"000000000000-{'a' * 16}-00000001-00000000.jsonl.enc.unshipped"
    stray.touch()
    bucket = Bucket(tmp_path)
    writer = IOLogWriter(tmp_path, MASTER, shipper=bucket.ship)
    writer.submit(record())
    writer.close()
    assert not stray.exists() and len(bucket.objects) == 1


def test_an_old_backlog_is_a_problem(tmp_path: Path) -> None:
    outage = Bucket(tmp_path, failures=10**6)
    writer = IOLogWriter(tmp_path, MASTER, shipper=outage.ship, backlog_max_age=0.05)
    writer.submit(record())
    writer.flush()
    assert writer.backlog is not None and writer.backlog.size == 1
    poll(lambda: bool(writer.problems()), timeout=5, interval=0.01)
    assert "waited" in writer.problems()[0] and "bucket unreachable" in writer.problems()[0]
    assert writer.refusal() is None  # the records are durable locally: predictions go on
    writer.close()
