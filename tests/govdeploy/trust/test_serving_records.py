from __future__ import annotations

import json
from pathlib import Path

import pytest

from govdeploy.errors import SignatureError, StorageError
from govdeploy.trust.keys import init_keys
from govdeploy.trust.seen_records import Seen, SeenRecords, accept
from govdeploy.trust.serving_content import ServingRecord, record_digest
from govdeploy.trust.serving_records import (
    REPUBLISH,
    History,
    next_sequence,
    read,
    sign_record,
    verify_record,
    write,
)
from tests.govdeploy.serving.fake_bucket import FakeBucket

RECORD = ServingRecord(
    model="m",
    champion="3",
    challenger="4",
    challenger_weight=25,
    issued_at="2026-11-22T00:00:00+00:00",
    issuer="canary",
    sequence=7,
    audit_record="a1b2",
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    trusted, other = tmp_path_factory.mktemp("trusted"), tmp_path_factory.mktemp("other")
    init_keys(trusted, [])
    init_keys(other, [])
    return trusted, other


def test_a_signed_record_verifies(keys: tuple[Path, Path]) -> None:
    trusted, _ = keys
    assert verify_record(sign_record(RECORD, trusted / "serving.key"), [trusted / "serving.pub"]) == RECORD


def test_an_edited_or_foreign_record_is_refused(keys: tuple[Path, Path]) -> None:
    trusted, other = keys
    document = json.loads(sign_record(RECORD, trusted / "serving.key"))
    document["record"]["challenger_weight"] = 100
    with pytest.raises(SignatureError, match="not signed by a trusted key"):
        verify_record(json.dumps(document).encode(), [trusted / "serving.pub"])
    with pytest.raises(SignatureError, match="not signed by a trusted key"):
        verify_record(sign_record(RECORD, other / "serving.key"), [trusted / "serving.pub"])
    with pytest.raises(SignatureError, match="not a signed record"):
        verify_record(b"{}", [trusted / "serving.pub"])


@pytest.mark.parametrize(("field", "value"), [("sequence", 8), ("audit_record", "other"), ("model", "n")])
def test_sequence_audit_record_and_model_are_signed(
    keys: tuple[Path, Path], field: str, value: object
) -> None:
    trusted, _ = keys
    document = json.loads(sign_record(RECORD, trusted / "serving.key"))
    document["record"][field] = value
    with pytest.raises(SignatureError, match="not signed by a trusted key"):
        verify_record(json.dumps(document).encode(), [trusted / "serving.pub"])


def test_a_record_without_sequence_asks_for_a_new_one(keys: tuple[Path, Path]) -> None:
    trusted, _ = keys
    document = json.loads(sign_record(RECORD, trusted / "serving.key"))
    del document["record"]["sequence"]
    with pytest.raises(SignatureError, match=r"record of 'm' has no sequence.*publish a new record"):
        verify_record(json.dumps(document).encode(), [trusted / "serving.pub"])


def test_read_refuses_a_record_copied_from_another_model(keys: tuple[Path, Path]) -> None:
    trusted, _ = keys
    bucket = FakeBucket()
    assert read(bucket, "b", "m", [trusted / "serving.pub"]) is None
    write(bucket, "b", RECORD, trusted / "serving.key")
    assert read(bucket, "b", "m", [trusted / "serving.pub"]) == RECORD
    bucket.put_object(Bucket="b", Key="serving/n.json", Body=bucket.latest("serving/m.json"))
    assert read(bucket, "b", "n", [trusted / "serving.pub"]) is None
    history = History("n")
    refused = history.scan(bucket, "b", [trusted / "serving.pub"]).refused
    assert list(refused.values()) == [
        "the serving record at serving/n.json is signed for model 'm', not for 'n': a record copied from another model; "
        + REPUBLISH
    ]


def test_next_sequence_follows_every_verified_version_not_only_the_current(keys: tuple[Path, Path]) -> None:
    trusted, other = keys
    bucket, pub = FakeBucket(), [trusted / "serving.pub"]
    assert next_sequence(bucket, "b", "m", pub) == 1
    for sequence in (1, 2):
        write(bucket, "b", RECORD.model_copy(update={"sequence": sequence}), trusted / "serving.key")
    first = bucket.versions["serving/m.json"][0]
    assert first is not None
    bucket.put_object(Bucket="b", Key="serving/m.json", Body=first)  # replay: the current one is #1
    write(bucket, "b", RECORD.model_copy(update={"sequence": 9}), other / "serving.key")  # untrusted
    bucket.put_object(Bucket="b", Key="serving/m.json", Body=b'{"record": {"model": "m"}}')  # old format
    write(
        bucket, "b", RECORD.model_copy(update={"model": "m.json.x", "sequence": 5}), trusted / "serving.key"
    )
    assert next_sequence(bucket, "b", "m", pub) == 3


def test_accept_refuses_older_records_and_siblings() -> None:
    seen = Seen.of(RECORD)
    assert accept(RECORD, None) is None
    assert accept(RECORD, seen) is None  # the same record, read again
    assert accept(RECORD.model_copy(update={"sequence": 8, "champion": "1"}), seen) is None
    older = accept(RECORD.model_copy(update={"sequence": 6}), seen)
    assert older is not None and "record #6 of m (champion v3" in older and "older than record #7" in older
    sibling = accept(RECORD.model_copy(update={"champion": "1"}), seen)
    assert sibling is not None and "record #7 of m (champion v1" in sibling
    assert "differs from the record #7 already verified" in sibling and seen.digest[:12] in sibling


def test_seen_records_survive_a_restart_and_merge_between_processes(tmp_path: Path) -> None:
    path = tmp_path / "gateway" / "serving-seq.json"
    first, second = SeenRecords(path), SeenRecords(path)
    assert first.remember(RECORD) and not first.remember(RECORD)
    assert second.remember(RECORD.model_copy(update={"model": "n", "sequence": 2}))
    assert second.remember(RECORD.model_copy(update={"sequence": 3}))  # behind what the file holds
    restarted = SeenRecords(path)
    assert restarted.get("m") == Seen(sequence=7, digest=record_digest(RECORD))
    assert restarted.get("n") == Seen.of(RECORD.model_copy(update={"model": "n", "sequence": 2}))
    assert restarted.get("x") is None


def test_an_unreadable_seen_file_names_itself_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "serving-seq.json"
    path.write_text("{not json")
    with pytest.raises(StorageError, match="cannot be read: Invalid JSON") as caught:
        SeenRecords(path)
    assert str(path) in str(caught.value) and "delete it to start over" in str(caught.value)
    path.write_text('{"m": {"sequence": "seven", "digest": "d"}}')
    with pytest.raises(StorageError, match=r"cannot be read: m\.sequence: Input should be a valid integer"):
        SeenRecords(path)


def test_history_reads_each_version_once_and_judges_by_sequence(keys: tuple[Path, Path]) -> None:
    trusted, _ = keys
    bucket, pub = FakeBucket(), [trusted / "serving.pub"]
    for sequence in (1, 2):
        write(bucket, "b", RECORD.model_copy(update={"sequence": sequence}), trusted / "serving.key")
    reads: list[str | None] = []
    get_object = bucket.get_object

    def counted(Bucket: str, Key: str, VersionId: str | None = None) -> dict[str, object]:
        reads.append(VersionId)
        return get_object(Bucket=Bucket, Key=Key, VersionId=VersionId)

    bucket.get_object = counted  # type: ignore[method-assign]
    history = History("m")
    scan = history.scan(bucket, "b", pub)
    assert scan.newest is not None and scan.newest.sequence == 2
    assert scan.previous is not None and scan.previous.sequence == 1 and scan.replayed is None
    first = bucket.versions["serving/m.json"][0]
    assert first is not None
    bucket.put_object(Bucket="b", Key="serving/m.json", Body=first)  # a replay of #1
    scan = history.scan(bucket, "b", pub)
    assert scan.newest is not None and scan.newest.sequence == 2
    assert scan.replayed is not None and scan.replayed.sequence == 1
    assert sorted(reads, key=str) == ["0", "1", "2"]  # every version once, however many scans
    write(bucket, "b", RECORD.model_copy(update={"sequence": 2, "champion": "9"}), trusted / "serving.key")
    assert history.scan(bucket, "b", pub).fork == 2
    with pytest.raises(SignatureError, match="two different serving records of m carry sequence #2"):
        read(bucket, "b", "m", pub)


def test_history_lists_the_versions_again_only_after_a_write(keys: tuple[Path, Path]) -> None:
    trusted, _ = keys
    bucket, pub = FakeBucket(), [trusted / "serving.pub"]
    write(bucket, "b", RECORD, trusted / "serving.key")
    listings: list[str] = []
    paginate = bucket.paginate

    def counted(Bucket: str, Prefix: str = "") -> list[dict[str, object]]:
        listings.append(Prefix)
        return paginate(Bucket=Bucket, Prefix=Prefix)

    bucket.paginate = counted  # type: ignore[method-assign]
    history = History("m")
    for _ in range(3):
        assert history.scan(bucket, "b", pub).newest == RECORD
    assert len(listings) == 1  # polls without a write only ask for the current version
    newer = RECORD.model_copy(update={"sequence": 8})
    write(bucket, "b", newer, trusted / "serving.key")
    assert history.scan(bucket, "b", pub).newest == newer
    assert len(listings) == 2
