"""Changes of serving state without servers: one signed record each, numbered above every earlier
one, rollback targets read from the signed history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from govdeploy.config.settings import Settings
from govdeploy.errors import RolloutError, SignatureError
from govdeploy.serving import rollout
from govdeploy.trust import serving_records
from govdeploy.trust.keys import init_keys, trusted_keys
from govdeploy.trust.serving_content import ServingRecord
from tests.govdeploy.serving.fake_bucket import FakeBucket


class Registry:
    """The aliases and model tags ``sync_registry`` moves."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.tags: dict[str, str] = {}


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, FakeBucket, Registry]:
    init_keys(tmp_path / "keys", [])
    bucket, labels = FakeBucket(), Registry()
    monkeypatch.setattr(rollout, "s3_client", lambda settings: bucket)
    monkeypatch.setattr(rollout, "_HISTORIES", {})  # this test's bucket, not another test's
    monkeypatch.setattr(rollout.registry, "set_alias", lambda m, a, v, url: labels.aliases.update({a: v}))
    monkeypatch.setattr(rollout.registry, "delete_alias", lambda m, a, url: labels.aliases.pop(a, None))
    monkeypatch.setattr(rollout.registry, "set_model_tag", lambda m, k, v, url: labels.tags.update({k: v}))
    monkeypatch.setattr(rollout, "verify_version", lambda *args, **kwargs: None)
    return Settings(state_dir=tmp_path), bucket, labels


def _publish(settings: Settings, champion: str, **state: Any) -> ServingRecord:
    return rollout.publish(
        settings,
        "m",
        champion=champion,
        challenger=state.get("challenger"),
        weight=state.get("weight", 0),
        action=state.get("action", "test"),
        issuer="dana",
        audit_record=state.get("audit_record"),
    )


def test_publish_numbers_records_above_every_earlier_one(
    world: tuple[Settings, FakeBucket, Registry],
) -> None:
    config, bucket, _ = world
    first = _publish(config, "1")
    assert (first.sequence, first.champion, first.audit_record) == (1, "1", None)
    replayable = bucket.latest("serving/m.json")
    assert _publish(config, "2", audit_record="rec-7").sequence == 2
    bucket.put_object(Bucket=config.bucket, Key="serving/m.json", Body=replayable)  # a replay of #1
    third = _publish(config, "3", challenger="4", weight=25)
    assert third.sequence == 3  # not 2: readers have seen #2
    assert (
        rollout.publish(
            config, "other", champion="1", challenger=None, weight=10, action="test", issuer="dana"
        ).sequence
        == 1
    )
    read = serving_records.read(bucket, config.bucket, "m", trusted_keys(config, "serving"))
    assert read == third and read.challenger_weight == 25
    second = serving_records.verify_record(
        bucket.versions["serving/m.json"][1] or b"", trusted_keys(config, "serving")
    )
    assert second.audit_record == "rec-7"
    assert rollout.serving_champion(config, "other") == "1"


def test_a_canary_moves_by_records_and_the_aliases_follow(
    world: tuple[Settings, FakeBucket, Registry],
) -> None:
    config, _, labels = world
    record, previous = rollout.promote(config, "m", "1", "champion", "dana")
    assert (record.champion, record.action, previous) == ("1", "promotion", None)
    with pytest.raises(RolloutError, match="release one first"):
        rollout.promote(config, "n", "5", "challenger", "dana")
    record, previous = rollout.promote(config, "m", "2", "challenger", "dana", audit_record="17")
    assert (record.champion, record.challenger, record.challenger_weight, previous) == ("1", "2", 0, "1")
    assert record.audit_record == "17"
    again, _ = rollout.promote(config, "m", "2", "challenger", "dana")  # a retry writes nothing new
    assert again == record and rollout.dropped_challenger(config, record) is None
    over, _ = rollout.promote(config, "m", "9", "challenger", "dana")  # a new challenger replaces v2
    assert rollout.dropped_challenger(config, over) == "2"
    record, _ = rollout.promote(config, "m", "2", "challenger", "dana")
    assert rollout.dropped_challenger(config, record) == "9"
    with pytest.raises(RolloutError, match="v3 is not the serving challenger"):
        rollout.set_weight(config, "m", "3", 25, "dana")
    step = rollout.set_weight(config, "m", "2", 25, "dana")
    assert (step.challenger_weight, step.action) == (25, "canary-step")
    assert rollout.sync_registry(config, step) is None
    assert labels.aliases == {"challenger": "2", "champion": "1"}
    assert labels.tags[rollout.TRAFFIC_TAG] == "25"
    done, replaced = rollout.complete_canary(config, "m", "2", "dana")
    assert (done.champion, done.challenger, done.challenger_weight, replaced) == ("2", None, 0, "1")
    rollout.sync_registry(config, done)
    assert labels.aliases == {"champion": "2"} and labels.tags[rollout.TRAFFIC_TAG] == "0"
    assert rollout.abort_canary(config, "m", "dana") is None  # no canary: nothing to write


def test_abort_returns_all_traffic_to_the_champion(world: tuple[Settings, FakeBucket, Registry]) -> None:
    config, _, _ = world
    _publish(config, "1", challenger="2", weight=50)
    aborted = rollout.abort_canary(config, "m", "dana")
    assert aborted is not None
    record, removed = aborted
    assert (record.champion, record.challenger, record.challenger_weight, removed) == ("1", None, 0, "2")
    assert record.action == "canary-abort"


def test_rollback_reads_its_target_from_the_signed_history(
    world: tuple[Settings, FakeBucket, Registry],
) -> None:
    config, _, _ = world
    _publish(config, "1")
    with pytest.raises(RolloutError, match=r"v1 is the first champion.*canary abort"):
        rollout.rollback(config, "m", None, "dana")  # type: ignore[arg-type]
    _publish(config, "1", challenger="2", weight=5)
    _publish(config, "2", action="canary-complete")
    _publish(config, "2", challenger="3", weight=5)
    _publish(config, "3", action="canary-complete")
    record, current, target = rollout.rollback(config, "m", None, "dana")  # type: ignore[arg-type]
    assert (current, target, record.champion, record.action) == ("3", "2", "2", "rollback")
    # a second rollback goes further back, never to the version rolled back from
    record, current, target = rollout.rollback(config, "m", None, "dana")  # type: ignore[arg-type]
    assert (current, target) == ("2", "1")


def test_a_rollback_target_that_does_not_verify_is_refused(
    world: tuple[Settings, FakeBucket, Registry], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, bucket, _ = world
    _publish(config, "1")
    _publish(config, "2")

    def refuse(model: str, version: str, **kwargs: Any) -> None:
        raise SignatureError(f"{model} v{version}: approvals.json holds fewer than the quorum")

    monkeypatch.setattr(rollout, "verify_version", refuse)
    with pytest.raises(SignatureError, match=r"m v1: approvals\.json"):
        rollout.rollback(config, "m", None, "dana")  # type: ignore[arg-type]
    assert rollout.serving_champion(config, "m") == "2"
    assert len(bucket.versions["serving/m.json"]) == 2  # nothing written


def test_a_challenger_with_traffic_and_nobody_judging_it_is_orphaned() -> None:
    record = ServingRecord(
        model="m",
        champion="1",
        challenger="2",
        challenger_weight=25,
        issued_at=serving_records.now(),
        issuer="dana",
        sequence=4,
    )
    assert rollout.orphaned(record, live=True, stale_after_seconds=300) is None
    reason = rollout.orphaned(record, live=False, stale_after_seconds=300)
    assert reason == (
        "challenger v2 of m has 25 % of the traffic (serving record #4) but no canary run of it is live"
    )
    old = record.model_copy(update={"issued_at": "2026-01-01T00:00:00+00:00"})
    stuck = rollout.orphaned(old, live=True, stale_after_seconds=300)
    assert stuck is not None and "has not moved for" in stuck and "at most 300 s" in stuck
    assert rollout.orphaned(record.model_copy(update={"challenger_weight": 0}), False, 300) is None
    assert rollout.orphaned(None, False, 300) is None


def test_the_kill_switch_holds_through_later_changes_until_revived(
    world: tuple[Settings, FakeBucket, Registry],
) -> None:
    config, _, _ = world
    _publish(config, "1", challenger="2", weight=25)
    killed = rollout.switch(config, "m", "incident 42", "deployer")
    assert (killed.killed, killed.action, killed.challenger, killed.challenger_weight) == (
        "incident 42",
        "kill",
        "2",
        25,
    )
    step = rollout.set_weight(config, "m", "2", 50, "dana")  # a canary step while shut down
    assert step.killed == "incident 42"
    revived = rollout.switch(config, "m", None, "deployer")
    assert (revived.killed, revived.action, revived.challenger_weight) == (None, "revive", 50)
    assert rollout.abort_canary(config, "m", "dana") is not None
    now = rollout.serving_now(config, "m")
    assert now is not None and now.killed is None
