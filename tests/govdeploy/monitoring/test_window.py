"""The drift window: bounds, the gateway's sealed I/O batches read in columns, ground truth joined."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from govdeploy.config.catalog import ModelSpec, load_catalog
from govdeploy.errors import DataError
from govdeploy.monitoring.iolog import IOLogWriter
from govdeploy.monitoring.iorecords import (
    IORecord,
    batch_files,
    batch_key,
    batch_name,
    encode_batch,
    parse_batch_key,
)
from govdeploy.monitoring.window import Window, require_rows, window_bounds
from govdeploy.monitoring.window_columns import build_window, read_window
from govdeploy.monitoring.window_source import BatchSource, directory_source
from govdeploy.release.data import generate_credit_data
from govdeploy.trust.request_ids import RequestIds

CONFIG = Path(__file__).resolve().parents[3] / "config"
T0 = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
KEY = bytes(range(32))
HOUR = T0 + timedelta(hours=1)
IDS = RequestIds.from_master(KEY)


def rid(nonce: str, principal: str = "bench") -> str:
    """The request id the gateway issues to ``principal`` for the random part ``nonce`` (16 hex)."""
    return IDS.rebind(nonce, principal)


A = rid("a" * 16)


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return load_catalog(CONFIG / "models.yaml").models["credit-risk"]


def record(spec: ModelSpec, rid: str, minutes: int, version: str = "3", **kw: object) -> IORecord:
    row = generate_credit_data(1, seed=minutes)[spec.features].iloc[0].to_dict()
    fields: dict[str, object] = {
        "id": rid,
        "time": (T0 + timedelta(minutes=minutes)).isoformat(),
        "kind": "predict",
        "model": "credit-risk",
        "version": version,
        "principal": "bench",
        "route": "POST /v1/models/credit-risk/predict",
        "status": 200,
        "latency_ms": 1.0,
        "inputs": [{**row, "email": "tok_x"}],
        "outputs": [0.25],
    }
    return IORecord.model_validate({**fields, **kw})


def test_window_bounds_default_to_the_last_hours_and_refuse_bad_times() -> None:
    start, end = window_bounds(24, "2026-11-22T02:00:00+00:00")
    assert end - start == timedelta(hours=24) and end.tzinfo is not None
    start, _ = window_bounds(24, "2026-11-22T02:00:00", "2026-11-22T01:00:00")
    assert start == T0
    with pytest.raises(DataError, match="end='yesterday' is not an ISO 8601 time"):
        window_bounds(24, "yesterday")
    with pytest.raises(DataError, match="is not before its end"):
        window_bounds(24, "2026-11-22T01:00:00+00:00", "2026-11-22T02:00:00+00:00")


def sample(spec: ModelSpec) -> list[IORecord]:
    """Answers of v3, another version, a refusal, a late answer, another model's and ground truth."""
    return [
        record(spec, A, 1),
        record(spec, "b" * 32, 2, version="2"),  # another version answered: not this window's rows
        record(spec, "c" * 32, 3, status=422, outputs=None),  # refused: no prediction
        record(spec, "d" * 32, 90),  # after the window's end
        # another model whose inputs have other types: not this window's, and no reason to fail it
        record(spec, "0" * 32, 4, model="pricing", inputs=[{"income": "high"}], outputs=[1.0]),
        *[record(spec, rid(f"{i:016x}"), 5 + i) for i in range(1, 8)],
        record(
            spec,
            "f" * 32,
            100,
            kind="feedback",
            version=None,
            inputs=None,
            outputs=None,
            labels=[{"request_id": A, "label": 1}, {"request_id": rid(f"{3:016x}"), "label": 0}],
        ),
    ]


def test_window_keeps_the_versions_answers_in_time_and_joins_labels(spec: ModelSpec) -> None:
    window = build_window(sample(spec), spec, "credit-risk", "3", T0, HOUR, KEY)
    answers = [A] + [rid(f"{i:016x}") for i in range(1, 8)]
    assert list(window.rows["request_id"]) == answers
    assert window.other_versions == 1 and window.labels == {A: 1, rid(f"{3:016x}"): 0}
    assert "email" not in window.rows.columns
    labelled = window.labelled(spec.label)
    assert list(labelled["request_id"]) == [A, rid(f"{3:016x}")] and list(labelled[spec.label]) == [1, 0]
    with pytest.raises(DataError, match=r"has 8 predictions of credit-risk v3, fewer than the 500"):
        require_rows(window, 500)


def test_labels_count_only_from_the_principal_their_request_was_issued_to(spec: ModelSpec) -> None:
    """Defence in depth behind the gateway: another principal's, a forged or an old-style id is left out."""
    three = rid(f"{3:016x}")
    sent = iter(range(100))

    def feedback(principal: str | None, *labelled: tuple[str, int]) -> IORecord:
        labels = [{"request_id": request_id, "label": label} for request_id, label in labelled]
        return record(
            spec,
            f"e{next(sent):031x}",
            50,
            kind="feedback",
            version=None,
            inputs=None,
            outputs=None,
            principal=principal,
            labels=labels,
        )

    records = [
        *sample(spec)[:-1],
        feedback("mallory", (A, 0), (three, 1)),  # bench's predictions, labelled by another client
        feedback("bench", (A, 1), (f"{9:032x}", 0)),  # its own, and an id nobody was issued
        feedback(None, (three, 1)),  # no principal on the record: nobody's label
        feedback("bench", (rid(f"{4:016x}", "mallory"), 1)),  # issued to mallory, sent by bench
        feedback("bench", (three, 0)),
    ]
    window = build_window(records, spec, "credit-risk", "3", T0, HOUR, KEY)
    assert window.labels == {A: 1, three: 0} and window.unowned_labels == 5
    assert list(window.labelled(spec.label)[spec.label]) == [1, 0]
    other_key = build_window(records, spec, "credit-risk", "3", T0, HOUR, bytes(32))
    assert other_key.labels == {} and other_key.unowned_labels == 7  # ids of another deployment


def test_a_malformed_record_fails_the_window(spec: ModelSpec) -> None:
    broken = record(spec, "a" * 32, 1, inputs=[{"income": 1.0}])
    with pytest.raises(DataError, match=r"lacks features \['loan_amount'.*malformed"):
        build_window([broken], spec, "credit-risk", "3", T0, HOUR, KEY)
    uneven = record(spec, "b" * 32, 1, outputs=[0.1, 0.2])
    with pytest.raises(DataError, match="1 input rows but 2 predictions"):
        build_window([uneven], spec, "credit-risk", "3", T0, HOUR, KEY)


def write_batches(directory: Path, records: list[IORecord], size: int) -> list[str]:
    writer = IOLogWriter(directory, KEY, batch_size=size)
    for item in records:
        writer.submit(item)
    writer.close()
    return [path.relative_to(directory).as_posix() for path in batch_files(directory)]


@pytest.mark.parametrize("group", [1, 3, 32])
def test_sealed_batches_read_in_columns_give_the_window_of_the_records(
    spec: ModelSpec, tmp_path: Path, group: int
) -> None:
    records = sample(spec)
    keys = write_batches(tmp_path, records, size=2)
    window = read_window(directory_source(tmp_path), keys, KEY, spec, "credit-risk", "3", T0, HOUR, 2, group)
    expected = build_window(records, spec, "credit-risk", "3", T0, HOUR, KEY)
    pd.testing.assert_frame_equal(window.rows, expected.rows)
    assert list(window.rows["request_id"]) == [A] + [rid(f"{i:016x}") for i in range(1, 8)]
    assert window.labels == {A: 1, rid(f"{3:016x}"): 0} == expected.labels
    assert window.other_versions == 1 and window.batches == len(keys) == 7
    assert window.rows["income"].dtype == float and window.rows["region"].map(type).eq(str).all()


def test_an_empty_window_has_the_columns_and_too_few_rows(spec: ModelSpec) -> None:
    window = read_window(directory_source(Path("/nonexistent")), [], KEY, spec, "credit-risk", "3", T0, HOUR)
    assert list(window.rows.columns) == [*spec.features, "prediction", "request_id"] and window.rows.empty
    with pytest.raises(DataError, match="has 0 predictions of credit-risk v3"):
        require_rows(window, 1)


def test_a_batch_that_does_not_open_fails_the_window_naming_it(spec: ModelSpec, tmp_path: Path) -> None:
    keys = write_batches(tmp_path, sample(spec), size=4)
    other = tmp_path / "junk"
    (other / "20261122").mkdir(parents=True)
    missing = "20261122/" + keys[1].split("/")[1]  # a well-formed key where nothing is
    with pytest.raises(DataError, match=rf"I/O log batch {other}/{missing} is unreadable"):
        read_window(directory_source(other), [missing], KEY, spec, "m", "3", T0, HOUR)
    (tmp_path / keys[1]).write_bytes(b'{"not": "a sealed batch"}')
    with pytest.raises(DataError, match=rf"I/O log batch {tmp_path}/{keys[1]} is unreadable .*does not open"):
        read_window(directory_source(tmp_path), keys, KEY, spec, "credit-risk", "3", T0, HOUR)


def test_a_record_of_the_model_with_a_wrongly_typed_feature_fails_the_window(
    spec: ModelSpec, tmp_path: Path
) -> None:
    records = sample(spec)
    records[6] = record(spec, "9" * 32, 7, inputs=[{**(records[6].inputs or [{}])[0], "income": "high"}])
    keys = write_batches(tmp_path, records, size=5)
    with pytest.raises(DataError, match=r"I/O log batch .* holds a record of credit-risk that does not fit"):
        read_window(directory_source(tmp_path), keys, KEY, spec, "credit-risk", "3", T0, HOUR)


def test_a_null_prediction_fails_the_window(spec: ModelSpec) -> None:
    broken = record(spec, "a" * 32, 1).model_copy(update={"outputs": [None]})
    with pytest.raises(DataError, match=f"I/O record {'a' * 32} has a null prediction"):
        build_window([broken], spec, "credit-risk", "3", T0, HOUR, KEY)


# Complete windows: each batch is sealed for its whole key (day, writer, sequence, previous day), the
# keys are every batch from the start of the window's first day, and each writer's run is gap-free.

W1, W2 = "1" * 16, "2" * 16


def seal(
    root: Path, records: list[IORecord], writer: str, sequence: int, at: datetime, previous: str | None
) -> str:
    """A batch as writer ``writer`` seals its batch ``sequence`` at ``at``; its key under ``root``."""
    day, name = batch_name(at, writer, sequence, previous)
    (root / day).mkdir(parents=True, exist_ok=True)
    (root / day / name).write_bytes(encode_batch(records, KEY, batch_key(day, name)))
    return f"{day}/{name}"


def run(root: Path, spec: ModelSpec, writer: str, sequences: range, previous: str | None) -> list[str]:
    """Batches ``sequences`` of ``writer``, one record each, written a minute apart from T0 on."""
    keys = []
    for sequence in sequences:
        at = T0 + timedelta(minutes=sequence)
        keys.append(
            seal(
                root,
                [record(spec, rid(f"{writer[0]}{sequence:015x}"), sequence)],
                writer,
                sequence,
                at,
                previous,
            )
        )
        previous = f"{at:%Y%m%d}"
    return keys


def window_of(root: Path, keys: list[str], spec: ModelSpec) -> Window:
    return read_window(directory_source(root), sorted(keys), KEY, spec, "credit-risk", "3", T0, HOUR)


def test_a_batch_copied_or_moved_to_another_day_or_name_does_not_open(
    spec: ModelSpec, tmp_path: Path
) -> None:
    keys = run(tmp_path, spec, W1, range(1, 4), None)
    day, name = keys[1].split("/")
    (tmp_path / "20261121").mkdir()
    shutil.copy(tmp_path / keys[1], tmp_path / "20261121" / name)  # the same batch under another day
    with pytest.raises(
        DataError, match=rf"I/O log batch {tmp_path}/20261121/{name} is unreadable .*does not open"
    ):
        window_of(tmp_path, [*keys, f"20261121/{name}"], spec)
    renamed = name.replace(name[:12], "235959000000")  # another time of day: another key
    (tmp_path / keys[1]).rename(tmp_path / day / renamed)
    with pytest.raises(DataError, match=rf"{day}/{renamed} is unreadable .*does not open"):
        window_of(tmp_path, [keys[0], f"{day}/{renamed}", keys[2]], spec)
    forged = name.replace(W1, W2)  # another writer: it does not open either
    (tmp_path / day / renamed).rename(tmp_path / day / forged)
    with pytest.raises(DataError, match=rf"{day}/{forged} is unreadable .*does not open"):
        window_of(tmp_path, [keys[0], f"{day}/{forged}", keys[2]], spec)


def test_a_batch_copied_in_the_bucket_does_not_open_there(spec: ModelSpec, tmp_path: Path) -> None:
    """The same rule in a bucket-like source: the key is the associated data, prefix included."""
    keys = run(tmp_path, spec, W1, range(1, 3), None)
    bucket = {f"iolog/{key}": (tmp_path / key).read_bytes() for key in keys}
    source = BatchSource(bucket.__getitem__, "s3://bucket/")
    window = read_window(source, sorted(bucket), KEY, spec, "credit-risk", "3", T0, HOUR)
    assert len(window.rows) == 2 and window.writers == {W1: (1, 2)}
    copy = f"iolog/20261123/{keys[0].split('/')[1]}"
    bucket[copy] = bucket[f"iolog/{keys[0]}"]
    with pytest.raises(DataError, match=rf"I/O log batch s3://bucket/{copy} is unreadable .*does not open"):
        read_window(source, sorted(bucket), KEY, spec, "credit-risk", "3", T0, HOUR)


def test_a_key_no_writer_gives_a_batch_fails_the_window(spec: ModelSpec, tmp_path: Path) -> None:
    keys = run(tmp_path, spec, W1, range(1, 2), None)
    for bad in ("20261122/010000000000-0a1b2c3d.jsonl.enc", keys[0].replace("-00000001-", "-00000002-")):
        with pytest.raises(DataError, match=rf"{re.escape(bad)} is unreadable \(its key is not iolog/<day>/"):
            window_of(tmp_path, [*keys, bad], spec)


def test_a_deleted_batch_in_a_writers_run_is_refused_naming_writer_and_sequence(
    spec: ModelSpec, tmp_path: Path
) -> None:
    keys = run(tmp_path, spec, W1, range(1, 8), None)
    assert window_of(tmp_path, keys, spec).writers == {W1: (1, 7)}
    gone = [keys[3]]
    with pytest.raises(DataError) as refused:
        window_of(tmp_path, [k for k in keys if k not in gone], spec)
    assert (
        f"batch 4 of writer {W1} is missing (between {tmp_path}/{keys[2]} and {tmp_path}/{keys[4]})"
        in str(refused.value)
    )
    assert "no drift decision is taken" in str(refused.value)
    gone += [keys[4]]
    with pytest.raises(DataError, match=f"batches 4 to 5 of writer {W1} are missing"):
        window_of(tmp_path, [k for k in keys if k not in gone], spec)


def test_the_first_sequence_need_not_be_one_if_its_predecessor_is_before_the_first_day(
    spec: ModelSpec, tmp_path: Path
) -> None:
    """A window lists from the start of its first day: an older batch of a writer is not expected."""
    keys = run(tmp_path, spec, W1, range(5, 9), "20261121")  # batch 4 was written the day before
    window = window_of(tmp_path, keys, spec)
    assert window.writers == {W1: (5, 8)} and len(window.rows) == 4
    with pytest.raises(
        DataError,
        match=rf"batch 5 of writer {W1} is missing \(written on 20261122, before {tmp_path}/{keys[1]}\)",
    ):
        window_of(tmp_path, keys[1:], spec)  # the window's first batch of the writer deleted


def test_a_batch_written_the_next_day_with_records_of_the_window_counts(
    spec: ModelSpec, tmp_path: Path
) -> None:
    keys = run(tmp_path, spec, W1, range(1, 3), None)
    late = [record(spec, rid("f" * 16), 30)]  # answered in the window, written after midnight
    keys.append(seal(tmp_path, late, W1, 3, T0 + timedelta(days=1), "20261122"))
    window = window_of(tmp_path, keys, spec)
    assert rid("f" * 16) in set(window.rows["request_id"]) and window.writers == {W1: (1, 3)}


def test_two_writers_interleaved_are_one_complete_window(spec: ModelSpec, tmp_path: Path) -> None:
    records = sample(spec)
    first, second = IOLogWriter(tmp_path, KEY, batch_size=1), IOLogWriter(tmp_path, KEY, batch_size=1)
    for at, item in enumerate(records):
        writer = (first, second)[at % 2]
        writer.submit(item)
        writer.flush()
    first.close()
    second.close()
    keys = [path.relative_to(tmp_path).as_posix() for path in batch_files(tmp_path)]
    window = read_window(directory_source(tmp_path), keys, KEY, spec, "credit-risk", "3", T0, HOUR)
    expected = build_window(records, spec, "credit-risk", "3", T0, HOUR, KEY)
    assert (
        set(window.rows["request_id"]) == set(expected.rows["request_id"])
        and window.labels == expected.labels
    )
    assert window.writers == {first.writer_id: (1, 7), second.writer_id: (1, 6)}
    del keys[4]  # a batch of the first writer: its run has a gap, the second's has not
    with pytest.raises(DataError, match=f"batch 3 of writer {first.writer_id} is missing"):
        read_window(directory_source(tmp_path), keys, KEY, spec, "credit-risk", "3", T0, HOUR)


def test_records_sealed_twice_are_refused_naming_ids_and_batches(spec: ModelSpec, tmp_path: Path) -> None:
    records = sample(spec)
    keys = write_batches(tmp_path, [*records, *records[:2]], size=5)  # a writer that sealed two again
    assert [parse_batch_key(f"iolog/{key}").sequence for key in keys] == [1, 2, 3]  # type: ignore[union-attr]
    with pytest.raises(DataError) as refused:
        read_window(directory_source(tmp_path), keys, KEY, spec, "credit-risk", "3", T0, HOUR)
    message = str(refused.value)
    assert "the I/O log holds 2 record ids more than once" in message and "no drift decision" in message
    assert f"{A} ({tmp_path}/{keys[0]}, {tmp_path}/{keys[2]})" in message
    with pytest.raises(DataError, match=f"holds 1 record ids more than once: {A};"):
        build_window([*records, records[0]], spec, "credit-risk", "3", T0, HOUR, KEY)


def test_a_sequence_sealed_twice_by_a_writer_is_refused(spec: ModelSpec, tmp_path: Path) -> None:
    keys = run(tmp_path, spec, W1, range(1, 4), None)
    again = seal(tmp_path, [record(spec, rid("e" * 16), 40)], W1, 2, T0 + timedelta(minutes=40), "20261122")
    with pytest.raises(DataError, match=f"batch 2 of writer {W1} is there twice .*{again}"):
        window_of(tmp_path, [*keys, again], spec)
