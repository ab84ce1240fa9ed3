"""The drift window: bounds, the gateway's sealed I/O batches read in columns, ground truth joined."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from govdeploy.config.catalog import ModelSpec, load_catalog
from govdeploy.errors import DataError
from govdeploy.monitoring.iolog import IOLogWriter, IORecord, batch_files
from govdeploy.monitoring.window import (
    build_window,
    directory_source,
    read_window,
    require_rows,
    window_bounds,
)
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

    def feedback(principal: str | None, *labelled: tuple[str, int]) -> IORecord:
        labels = [{"request_id": request_id, "label": label} for request_id, label in labelled]
        return record(
            spec,
            "e" * 32,
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
    moved = tmp_path / keys[1]
    moved.rename(moved.with_name("0" + moved.name))  # a batch renamed: its name is bound to its key
    keys[1] = (tmp_path / keys[1]).with_name("0" + moved.name).relative_to(tmp_path).as_posix()
    with pytest.raises(DataError, match=rf"I/O log batch {tmp_path}/{keys[1]} is unreadable .*does not open"):
        read_window(directory_source(tmp_path), keys, KEY, spec, "credit-risk", "3", T0, HOUR)
    with pytest.raises(DataError, match="is unreadable"):
        read_window(
            directory_source(tmp_path), [*keys, "20261122/missing.jsonl.enc"], KEY, spec, "m", "3", T0, HOUR
        )


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
