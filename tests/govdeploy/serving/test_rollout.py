"""``publish`` without servers: the record it signs is numbered above every earlier one."""

from __future__ import annotations

from pathlib import Path

import pytest

from govdeploy.config.settings import Settings
from govdeploy.serving import rollout
from govdeploy.trust import serving_records
from govdeploy.trust.keys import init_keys, trusted_keys
from tests.govdeploy.serving.fake_bucket import FakeBucket


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, FakeBucket, dict[str, str]]:
    init_keys(tmp_path / "keys", [])
    bucket, aliases = FakeBucket(), {"champion": "1"}
    monkeypatch.setattr(rollout, "s3_client", lambda settings: bucket)
    monkeypatch.setattr(rollout.registry, "alias_version", lambda model, alias, url: aliases.get(alias))
    monkeypatch.setattr(rollout.registry, "model_tag", lambda model, tag, url: "25")
    return Settings(state_dir=tmp_path), bucket, aliases


def test_publish_numbers_records_above_every_earlier_one(
    settings: tuple[Settings, FakeBucket, dict[str, str]],
) -> None:
    config, bucket, aliases = settings
    first = rollout.publish(config, "m", "dana")
    assert (first.sequence, first.champion, first.audit_record) == (1, "1", None)
    replayable = bucket.latest("serving/m.json")
    aliases["champion"] = "2"
    assert rollout.publish(config, "m", "dana", audit_record="rec-7").sequence == 2
    bucket.put_object(Bucket=config.bucket, Key="serving/m.json", Body=replayable)  # a replay of #1
    third = rollout.publish(config, "m", "dana")
    assert third.sequence == 3  # not 2: readers have seen #2
    assert rollout.publish(config, "other", "dana").sequence == 1
    read = serving_records.read(bucket, config.bucket, "m", trusted_keys(config, "serving"))
    assert read == third and read.challenger_weight == 25
    second = serving_records.verify_record(
        bucket.versions["serving/m.json"][1] or b"", trusted_keys(config, "serving")
    )
    assert second.audit_record == "rec-7"
