"""The gateway's serving state without servers: ordered serving records, refusals and their alerts."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from govdeploy.config.settings import Settings
from govdeploy.errors import SignatureError
from govdeploy.serving.gateway import state
from govdeploy.serving.gateway.state import ServingState, Slot
from govdeploy.trust.keys import init_keys, signing_key
from govdeploy.trust.serving_content import ServingRecord
from govdeploy.trust.serving_records import write
from tests.govdeploy.serving.fake_bucket import FakeBucket

KEY = "serving/m.json"


class World:
    """One model ``m``: a fake bucket, its aliases, and the alerts the gateway raised."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        init_keys(tmp_path / "keys", [])
        self.settings = Settings(state_dir=tmp_path)
        self.bucket = FakeBucket()
        self.aliases: dict[str, str] = {}
        self.alerts: list[dict[str, Any]] = []
        monkeypatch.setattr(state, "s3_client", lambda settings: self.bucket)
        monkeypatch.setattr(
            state.registry, "alias_version", lambda model, alias, url: self.aliases.get(alias)
        )
        monkeypatch.setattr(state, "post_alert", lambda url, alert: self.alerts.append(alert))
        monkeypatch.setattr(ServingState, "_load", lambda self, name, version: _slot(version))

    def gateway(self) -> ServingState:
        return ServingState(self.settings, {"m": frozenset()}, 8, 0.001)

    def publish(self, sequence: int, champion: str) -> bytes:
        self.aliases["champion"] = champion
        record = ServingRecord(
            model="m",
            champion=champion,
            challenger=None,
            challenger_weight=0,
            issued_at=f"2026-11-22T00:00:0{sequence}+00:00",
            issuer="test",
            sequence=sequence,
        )
        write(self.bucket, self.settings.bucket, record, signing_key(self.settings, "serving"))
        return self.bucket.latest(KEY)

    def replay(self, body: bytes, champion: str) -> None:
        self.bucket.put_object(Bucket=self.settings.bucket, Key=KEY, Body=body)
        self.aliases["champion"] = champion


def _slot(version: str) -> Slot:
    verified = type("V", (), {"version": version, "inputs": ["x"], "signature_sha256": "0" * 64})()
    return Slot(verified, None)  # type: ignore[arg-type]


def _serves(gateway: ServingState) -> tuple[str | None, list[str]]:
    gateway.refresh()
    served = gateway.models["m"]
    return (served.champion.version if served.champion else None), served.problems


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(tmp_path, monkeypatch)


def test_a_replayed_older_record_changes_nothing_and_alerts_once(world: World) -> None:
    gateway = world.gateway()
    first = world.publish(1, "1")
    assert _serves(gateway) == ("1", [])
    world.publish(2, "2")
    assert _serves(gateway) == ("2", [])
    world.replay(first, "1")  # the older record, validly signed, and the alias moved back
    for _ in range(3):
        version, problems = _serves(gateway)
        assert version == "2"
        assert "an earlier serving record (#1, champion v1) was re-put over record #2" in problems[0]
        assert "a replay, ignored" in problems[0]
    assert "champion points at v1 but the signed serving record #2 names v2" in problems[1]
    assert [(a["event"], a["model"], a.get("sequence")) for a in world.alerts] == [
        ("govdeploy.gateway.refused", "m", 1),
        ("govdeploy.gateway.refused", "m", None),  # the alias, once it did not catch up
    ]
    world.publish(3, "1")  # a new record changes it
    assert _serves(gateway) == ("1", [])


def test_a_replay_cannot_hide_a_newer_record_written_just_before(world: World) -> None:
    gateway = world.gateway()
    first = world.publish(1, "1")
    assert _serves(gateway) == ("1", [])
    world.publish(2, "2")
    world.replay(first, "1")  # re-put before the gateway's next poll saw #2
    version, problems = _serves(gateway)
    assert version == "2" and "re-put over record #2" in problems[0]


def test_a_restarted_gateway_remembers_the_newest_record(world: World) -> None:
    world.publish(1, "1")
    world.publish(2, "2")
    assert _serves(world.gateway()) == ("2", [])
    seen = json.loads((world.settings.state_dir / "gateway" / "serving-seq.json").read_text())
    assert seen["m"]["sequence"] == 2
    del world.bucket.versions[KEY][1]  # record #2 deleted from the bucket's history
    world.aliases["champion"] = "1"
    version, problems = _serves(world.gateway())  # a new process: nothing served yet, nothing older
    assert version is None and "older than record #2" in problems[0]
    assert len(world.alerts) == 1


def test_a_sibling_of_the_same_sequence_is_refused(world: World) -> None:
    gateway = world.gateway()
    world.publish(1, "1")
    assert _serves(gateway) == ("1", [])
    world.publish(1, "2")  # another record #1 (two writers at once)
    version, problems = _serves(gateway)
    assert version == "1" and "two different serving records carry sequence #1" in problems[0]
    world.publish(2, "2")  # the next record ends it
    assert _serves(gateway) == ("2", [])


def test_a_missing_record_after_one_was_seen_changes_nothing(world: World) -> None:
    gateway = world.gateway()
    world.publish(1, "1")
    assert _serves(gateway) == ("1", [])
    world.bucket.versions[KEY] = [None]  # every version gone
    world.aliases.clear()
    version, problems = _serves(gateway)
    assert version == "1" and "it is missing, but record #1 was verified" in problems[0]
    _serves(gateway)
    assert len(world.alerts) == 1


def test_a_record_copied_from_another_model_or_without_sequence_is_refused(world: World) -> None:
    gateway = world.gateway()
    world.publish(1, "1")
    assert _serves(gateway) == ("1", [])
    document = json.loads(world.bucket.latest(KEY))
    record = ServingRecord.model_validate({**document["record"], "model": "n", "sequence": 5})
    write(world.bucket, world.settings.bucket, record, signing_key(world.settings, "serving"))
    world.replay(world.bucket.latest("serving/n.json"), "1")
    del document["record"]["sequence"]
    world.replay(json.dumps(document).encode(), "1")
    assert _serves(gateway) == ("1", [])  # refused versions change nothing, and are not listed
    reasons = sorted(alert["reason"] for alert in world.alerts)
    assert len(reasons) == 2
    assert "serving/m.json is signed for model 'n', not for 'm'" in reasons[0]
    assert "has no sequence" in reasons[1] and "publish a new record" in reasons[1]
    _serves(gateway)
    assert len(world.alerts) == 2  # once per version


def test_an_alias_moved_by_hand_changes_nothing_and_is_reported(world: World) -> None:
    gateway = world.gateway()
    world.publish(1, "1")
    assert _serves(gateway) == ("1", [])
    world.aliases["champion"] = "2"  # moved by hand, no record
    version, problems = _serves(gateway)
    assert version == "1" and "the signed serving record #1 names v1" in problems[0]


def test_a_record_is_served_before_the_alias_moves_without_a_false_alarm(world: World) -> None:
    gateway = world.gateway()
    world.publish(1, "1")
    assert _serves(gateway) == ("1", [])
    world.publish(2, "2")
    world.aliases["champion"] = "1"  # the promotion writes the record first, then moves the alias
    assert _serves(gateway) == ("2", [])
    world.aliases["champion"] = "2"
    assert _serves(gateway) == ("2", [])
    assert world.alerts == []
    world.publish(3, "3")
    world.aliases["champion"] = "2"
    assert _serves(gateway) == ("3", [])
    version, problems = _serves(gateway)  # still behind a refresh later: reported
    assert version == "3" and "champion points at v2" in problems[0]


def test_a_challenger_that_does_not_verify_gets_no_traffic(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = world.gateway()
    record = ServingRecord(
        model="m",
        champion="1",
        challenger="5",
        challenger_weight=50,
        issued_at="2026-11-22T00:00:01+00:00",
        issuer="test",
        sequence=1,
    )
    write(world.bucket, world.settings.bucket, record, signing_key(world.settings, "serving"))
    world.aliases.update(champion="1", challenger="5")

    def load(self: ServingState, name: str, version: str) -> Slot:
        if version == "5":
            raise SignatureError("v5 has no release.sig")
        return _slot(version)

    monkeypatch.setattr(ServingState, "_load", load)
    version, problems = _serves(gateway)
    served = gateway.models["m"]
    assert version == "1" and served.challenger is None and served.challenger_weight == 0
    assert "challenger v5 refused: v5 has no release.sig; not serving it" in problems[0]


def test_a_refusal_is_recorded_once_and_an_audit_failure_does_not_stop_serving(world: World) -> None:
    recorded: list[tuple[str, dict[str, Any]]] = []
    gateway = ServingState(
        world.settings,
        {"m": frozenset()},
        8,
        0.001,
        audit=lambda model, payload: recorded.append((model, payload)),
    )
    world.publish(1, "1")
    assert _serves(gateway) == ("1", [])
    world.aliases["champion"] = "9"  # moved by hand, without a record
    for _ in range(3):
        assert _serves(gateway)[0] == "1"
    assert len(recorded) == 1 and recorded[0][0] == "m" and "names v1" in recorded[0][1]["reason"]
    assert len(world.alerts) == 1

    def broken(model: str, payload: dict[str, Any]) -> None:
        raise OSError("disk full")

    failing = ServingState(world.settings, {"m": frozenset()}, 8, 0.001, audit=broken)
    world.aliases["champion"] = "1"
    assert _serves(failing) == ("1", [])
    world.aliases["champion"] = "8"
    version, problems = _serves(failing)
    assert version == "1" and len(problems) == 1


def test_a_reader_sees_the_problems_of_the_last_finished_refresh_never_a_half_built_list(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = world.gateway()
    world.publish(1, "1")
    world.aliases["champion"] = "7"  # moved by hand: a refusal
    version, problems = _serves(gateway)
    assert version == "1" and len(problems) == 1 and "champion points at v7" in problems[0]
    entered, release = threading.Event(), threading.Event()

    def slow_alias(model: str, alias: str, url: str) -> str | None:
        entered.set()
        assert release.wait(10)
        return world.aliases.get(alias)

    monkeypatch.setattr(state.registry, "alias_version", slow_alias)
    background = threading.Thread(target=gateway.refresh)
    background.start()
    try:
        assert entered.wait(10)  # a refresh is under way on another thread
        assert gateway.models["m"].problems == problems
    finally:
        release.set()
        background.join(10)
    assert gateway.models["m"].problems == problems


def test_the_kill_switch_is_in_the_signed_record_and_survives_a_restart(world: World) -> None:
    world.publish(1, "1")
    killed = ServingRecord(
        model="m",
        champion="1",
        challenger=None,
        challenger_weight=0,
        issued_at="2026-11-22T00:00:02+00:00",
        issuer="deployer",
        sequence=2,
        action="kill",
        killed="incident 42",
    )
    write(world.bucket, world.settings.bucket, killed, signing_key(world.settings, "serving"))
    gateway = world.gateway()
    gateway.refresh()
    reason = gateway.models["m"].unavailable()
    assert reason is not None and "incident 42" in reason
    restarted = world.gateway()  # a new process reads the same record
    restarted.refresh()
    assert restarted.models["m"].unavailable() == reason
    world.replay(world.bucket.versions[KEY][0] or b"", "1")  # an earlier record, not killed, re-put
    restarted.refresh()
    assert restarted.models["m"].unavailable() == reason


def _canary(world: World, sequence: int, age_seconds: float, weight: int = 50) -> None:
    world.aliases.update(champion="1", challenger="2")
    issued = datetime.now(UTC) - timedelta(seconds=age_seconds)
    record = ServingRecord(
        model="m",
        champion="1",
        challenger="2",
        challenger_weight=weight,
        issued_at=issued.isoformat(),
        issuer="test",
        sequence=sequence,
        action="canary-step",
    )
    write(world.bucket, world.settings.bucket, record, signing_key(world.settings, "serving"))


def test_a_canary_nobody_judges_any_more_gets_no_traffic_until_a_newer_record(world: World) -> None:
    gateway = ServingState(world.settings, {"m": frozenset()}, 8, 0.001, canary_stale_seconds=300)
    _canary(world, 1, age_seconds=10)
    _serves(gateway)
    served = gateway.models["m"]
    assert served.challenger is not None and served.challenger_weight == 50 and not world.alerts
    _canary(world, 2, age_seconds=301)  # its flow hung, or Prefect is down: no step for too long
    for _ in range(2):
        version, problems = _serves(gateway)
        assert version == "1" and served.challenger_weight == 0
        assert "its canary has not moved for 301 s" in problems[0]
        assert "serving the champion only until a newer serving record" in problems[0]
        assert served.pick() == (served.champion, None)
    assert [(a["reason"][:40], a["sequence"], a["stale"]) for a in world.alerts] == [
        (problems[0][:40], 2, True)  # once per record
    ]
    _canary(world, 3, age_seconds=0, weight=25)  # the canary moved again
    _serves(gateway)
    assert served.challenger_weight == 25 and gateway.models["m"].problems == []


def test_without_a_staleness_limit_the_record_weight_holds(world: World) -> None:
    gateway = world.gateway()
    _canary(world, 1, age_seconds=10_000)
    _serves(gateway)
    assert gateway.models["m"].challenger_weight == 50
