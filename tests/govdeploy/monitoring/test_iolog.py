from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from govdeploy.errors import CryptoError, GovdeployError
from govdeploy.monitoring import iolog, iospool
from govdeploy.monitoring.iolog import IOLogWriter
from govdeploy.monitoring.iorecords import (
    BatchId,
    IORecord,
    batch_files,
    mask_pii,
    parse_batch_key,
    read_batches,
)
from govdeploy.polling import poll

MASTER = os.urandom(32)
SECRET = b"pii-secret"


def record(inputs: list[dict[str, object]] | None = None, status: int = 200) -> IORecord:
    return IORecord(
        id=uuid.uuid4().hex,
        time=datetime.now(UTC).isoformat(),
        kind="predict",
        model="credit-risk",
        version="3",
        principal="key-1",
        route="/v1/models/credit-risk/predict",
        status=status,
        latency_ms=1.5,
        inputs=inputs if inputs is not None else [{"income": 1.0}],
        outputs=[0.25],
    )


def test_mask_pii_is_deterministic_and_leaves_other_fields_alone() -> None:
    row = {"email": "alice@example.com", "name": None, "income": 52000.0, "phone": 5551234}
    masked = mask_pii(row, ["email", "name", "phone", "absent"], SECRET)
    assert masked == mask_pii(dict(row), iter(["email", "name", "phone"]), SECRET)
    assert masked["email"].startswith("tok_") and len(masked["email"]) == 4 + 32
    assert masked["email"] != row["email"] and masked["phone"] != masked["email"]
    assert masked["name"] is None and masked["income"] == 52000.0 and "absent" not in masked
    assert row["email"] == "alice@example.com"  # the original is not modified
    assert mask_pii(row, ["email"], b"other-secret")["email"] != masked["email"]


def test_concurrent_submits_are_all_written(tmp_path: Path) -> None:
    writer = IOLogWriter(tmp_path, MASTER, batch_size=300, flush_interval=0.01)
    writer.start()

    def submit_many() -> None:
        for _ in range(500):
            writer.submit(record())

    threads = [threading.Thread(target=submit_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()

    records = read_batches(tmp_path, MASTER)
    assert len(records) == 4000 and len({r.id for r in records}) == 4000
    assert writer.written == 4000
    files = list(tmp_path.glob("*/*.jsonl.enc"))
    assert len(files) >= 4000 // 300 and not list(tmp_path.glob("**/*.partial"))


def test_background_thread_flushes_without_close(tmp_path: Path) -> None:
    writer = IOLogWriter(tmp_path, MASTER, flush_interval=0.01)
    writer.start()
    writer.submit(record())
    poll(lambda: writer.written >= 1, timeout=5, interval=0.01)
    assert writer.written == 1
    writer.close()
    writer.close()  # idempotent
    assert len(read_batches(tmp_path, MASTER)) == 1


def test_batches_hold_no_plaintext(tmp_path: Path) -> None:
    writer = IOLogWriter(tmp_path, MASTER)
    inputs = [{"note": "secret-value-123", **mask_pii({"email": "alice@example.com"}, ["email"], SECRET)}]
    writer.submit(record(inputs))
    writer.close()
    files = list(tmp_path.glob("*/*.jsonl.enc"))
    assert len(files) == 1
    for path in files:
        data = path.read_bytes()
        assert b"secret-value-123" not in data and b"alice@example.com" not in data
    assert read_batches(tmp_path, MASTER)[0].inputs == inputs
    with pytest.raises(CryptoError, match="does not open"):
        read_batches(tmp_path, os.urandom(32))


def test_renamed_batch_does_not_open(tmp_path: Path) -> None:
    writer = IOLogWriter(tmp_path, MASTER)
    writer.submit(record())
    writer.flush()
    (path,) = tmp_path.glob("*/*.jsonl.enc")
    path.rename(path.with_name("000000000000-00000000.jsonl.enc"))
    with pytest.raises(CryptoError, match="does not open"):
        read_batches(tmp_path, MASTER)


def test_failing_shipper_loses_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shipped: list[Path] = []

    def shipper(path: Path) -> None:
        shipped.append(path)
        raise RuntimeError("s3 is down")

    writer = IOLogWriter(tmp_path, MASTER, batch_size=10, flush_interval=0.01, shipper=shipper)
    writer.start()
    with caplog.at_level(logging.WARNING, logger=iolog.__name__):
        for _ in range(25):
            writer.submit(record())
        writer.close()
    assert writer.written == 25 and len(read_batches(tmp_path, MASTER)) == 25
    batches = batch_files(tmp_path)
    assert shipped and set(shipped) == {batches[0]}  # oldest first, retried with backoff
    assert writer.backlog is not None and writer.backlog.size == len(batches) >= 3
    assert len(list(tmp_path.glob("*/*.unshipped"))) == len(batches)  # durable: a restart ships them
    assert "s3 is down" in caplog.text


def test_submit_after_close_raises(tmp_path: Path) -> None:
    writer = IOLogWriter(tmp_path, MASTER)
    writer.start()
    writer.close()
    with pytest.raises(GovdeployError, match="closed"):
        writer.submit(record())
    with pytest.raises(GovdeployError, match="closed"):
        writer.start()


def test_failed_write_keeps_records_for_the_next_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = iospool.write_atomic
    calls = {"n": 0}

    def fail_once(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk full")
        real_write(path, data)

    monkeypatch.setattr(iospool, "write_atomic", fail_once)
    writer = IOLogWriter(tmp_path, MASTER)
    submitted = [record(status=200 + i) for i in range(3)]
    for item in submitted:
        writer.submit(item)
    with pytest.raises(GovdeployError, match="disk full"):
        writer.flush()
    assert writer.written == 0 and writer.pending == 3
    assert not list(tmp_path.glob("**/*.jsonl.enc*"))
    writer.flush()
    assert writer.written == 3 and writer.pending == 0
    assert [r.id for r in read_batches(tmp_path, MASTER)] == [r.id for r in submitted]
    assert [ids(tmp_path)[0].sequence, writer.sequence] == [1, 1]  # the failed write took no sequence
    writer.close()


def test_background_thread_survives_a_failed_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = iospool.write_atomic
    calls = {"n": 0}

    def fail_twice(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OSError("disk full")
        real_write(path, data)

    monkeypatch.setattr(iospool, "write_atomic", fail_twice)
    writer = IOLogWriter(tmp_path, MASTER, batch_size=5, flush_interval=0.01)
    writer.start()
    for _ in range(20):
        writer.submit(record())
    writer.close()
    assert writer.written == 20 and len({r.id for r in read_batches(tmp_path, MASTER)}) == 20
    assert calls["n"] >= 6


def ids(directory: Path) -> list[BatchId]:
    """What the keys of the batch files under ``directory`` say, oldest first."""
    found = [parse_batch_key(f"iolog/{p.relative_to(directory).as_posix()}") for p in batch_files(directory)]
    assert None not in found
    return [batch for batch in found if batch is not None]


def test_batches_are_named_by_writer_and_sequence_with_the_previous_day(tmp_path: Path) -> None:
    writer, other = IOLogWriter(tmp_path, MASTER, batch_size=2), IOLogWriter(tmp_path, MASTER)
    assert re.fullmatch("[0-9a-f]{16}", writer.writer_id) and writer.writer_id != other.writer_id
    assert writer.sequence == 0
    for _ in range(5):
        writer.submit(record())
    writer.close()
    batches = ids(tmp_path)
    assert [b.sequence for b in batches] == [1, 2, 3] == list(range(1, writer.sequence + 1))
    assert {b.writer for b in batches} == {writer.writer_id}
    assert batches[0].previous_day is None
    assert [b.previous_day for b in batches[1:]] == [b.day for b in batches[:-1]]
    name = batch_files(tmp_path)[1].name
    assert re.fullmatch(rf"\d{{12}}-{writer.writer_id}-00000002-{batches[0].day}\.jsonl\.enc", name)


def test_keys_a_writer_does_not_give_do_not_parse() -> None:
    writer = "0123456789abcdef"
    assert parse_batch_key(f"iolog/20261122/010203040506-{writer}-00000001-00000000.jsonl.enc") == BatchId(
        f"iolog/20261122/010203040506-{writer}-00000001-00000000.jsonl.enc", "20261122", writer, 1, None
    )
    for bad in (
        f"iolog/20261122/010203040506-{writer}-00000002-00000000.jsonl.enc",  # only a first has no previous
        f"iolog/20261122/010203040506-{writer}-00000001-20261121.jsonl.enc",  # a first has no previous
        f"iolog/20261122/010203040506-{writer}-00000000-20261121.jsonl.enc",  # sequences start at 1
        f"iolog/20261122/010203040506-{writer[:8]}-00000002-20261121.jsonl.enc",
        f"other/20261122/010203040506-{writer}-00000002-20261121.jsonl.enc",
        "iolog/20261122/010203040506-0a1b2c3d.jsonl.enc",  # before writer ids
        f"iolog/20261122/010203040506-{writer}-00000002-20261121.jsonl.enc.partial",
    ):
        assert parse_batch_key(bad) is None, bad


def test_a_batch_copied_to_another_day_does_not_open(tmp_path: Path) -> None:
    writer = IOLogWriter(tmp_path, MASTER)
    writer.submit(record())
    writer.close()
    (path,) = batch_files(tmp_path)
    (tmp_path / "20200101").mkdir()
    shutil.move(path, tmp_path / "20200101" / path.name)
    with pytest.raises(CryptoError, match=f"iolog/20200101/{path.name} does not open"):
        read_batches(tmp_path, MASTER)


def test_batches_that_could_not_be_shipped_are_shipped_in_order_later(tmp_path: Path) -> None:
    shipped: list[str] = []
    failures = iter([True, True])

    def shipper(path: Path) -> None:
        if next(failures, False):
            raise RuntimeError("s3 is down")
        shipped.append(path.name)

    writer = IOLogWriter(tmp_path, MASTER, batch_size=1, shipper=shipper)
    writer.submit(record())
    writer.flush()  # the first try fails
    assert shipped == []
    writer.submit(record())
    writer.flush()  # the second try of batch 1 fails: batch 2 waits behind it
    assert shipped == []
    for _ in range(2):
        writer.submit(record())
    writer.close()
    assert shipped == [path.name for path in batch_files(tmp_path)] and len(shipped) == 4


def test_a_write_that_fails_after_its_rename_leaves_no_batch_and_keeps_its_sequence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = iospool.write_atomic
    calls = {"n": 0}

    def renamed_then_failed(path: Path, data: bytes) -> None:
        real_write(path, data)
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("fsync of the directory failed")

    monkeypatch.setattr(iospool, "write_atomic", renamed_then_failed)
    writer = IOLogWriter(tmp_path, MASTER)
    writer.submit(record())
    with pytest.raises(GovdeployError, match="fsync of the directory failed"):
        writer.flush()
    assert batch_files(tmp_path) == [] and writer.sequence == 0
    writer.close()
    assert [b.sequence for b in ids(tmp_path)] == [1] and len(read_batches(tmp_path, MASTER)) == 1
