"""A canary never leaves an unjudged challenger serving: a step that fails, a canary nobody runs any
more, an abort by hand; and changes of one model wait for each other."""

from __future__ import annotations

import contextvars
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from flows.canary import canary, canary_abort, canary_watch
from govdeploy.backends import flow_runs
from govdeploy.backends.locks import model_change
from govdeploy.config.settings import Settings
from govdeploy.errors import GovdeployError, RolloutError
from govdeploy.polling import poll
from govdeploy.serving import rollout
from govdeploy.stack import manager
from govdeploy.trust import serving_records
from govdeploy.trust.audit_trail import records
from tasks import canary as canary_tasks
from tests.flows.conftest import MODEL, promote_now, train_as
from tests.flows.test_canary import served_versions
from tests.flows.test_gateway import key

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def champion(stack: Settings) -> dict[str, Any]:
    first = train_as("dana", model=MODEL, rows=2000, seed=60)
    promote_now(stack, first)
    _reload(stack)
    return first


def _reload(stack: Settings) -> dict[str, Any]:
    url = f"{stack.gateway_url}/v1/models/{MODEL}/reload"
    return httpx.post(url, headers=key(stack, "deployer"), timeout=60).json()


def _challenger_at(stack: Settings, champion: dict[str, Any], seed: int, weight: int) -> str:
    """A promoted challenger with ``weight`` % of the traffic and no canary run judging it."""
    candidate = train_as("dana", model=MODEL, rows=2000, seed=seed)
    promote_now(stack, candidate, alias="challenger")
    rollout.set_weight(stack, MODEL, candidate["version"], weight, "test")
    info = _reload(stack)
    assert info["challenger"] == candidate["version"], info
    return str(candidate["version"])


def _actions(stack: Settings, version: str) -> list[str]:
    return [r.action for r in records(stack, MODEL) if r.version == version]


def test_a_failing_step_returns_all_traffic_to_the_champion(
    stack: Settings, champion: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    candidate = train_as("dana", model=MODEL, rows=2000, seed=61)
    promote_now(stack, candidate, alias="challenger")

    def unreadable(settings: Settings, model: str) -> dict[str, Any]:
        raise GovdeployError("gateway metrics unreadable (the gateway restarted)")

    monkeypatch.setattr(canary_tasks.gateway_client, "model_metrics", unreadable)
    with pytest.raises(GovdeployError, match="gateway metrics unreadable"):
        canary(model=MODEL, version=candidate["version"], bake_seconds=1)
    record = rollout.serving_now(stack, MODEL)
    assert record is not None
    assert (record.champion, record.challenger, record.challenger_weight, record.action) == (
        champion["version"],
        None,
        0,
        "canary-abort",
    )
    assert served_versions(stack) == {champion["version"]}
    assert _actions(stack, candidate["version"])[-2:] == ["canary.aborting", "canary.aborted"]
    aborted = [r for r in records(stack, MODEL) if r.action == "canary.aborted"][-1]
    assert "gateway metrics unreadable" in aborted.payload["reason"]
    # the signed abort names its announcement: a run killed after it still has both ends in the trail
    announced = [r for r in records(stack, MODEL) if r.action == "canary.aborting"][-1]
    assert record.audit_record == str(announced.seq) and announced.seq < aborted.seq


def test_an_orphaned_canary_is_ended_by_the_watch(stack: Settings, champion: dict[str, Any]) -> None:
    orphan = _challenger_at(stack, champion, seed=62, weight=25)
    ended = canary_watch()
    assert [e["version"] for e in ended] == [orphan]
    assert "no canary run of it is live" in ended[0]["reason"]
    record = rollout.serving_now(stack, MODEL)
    assert record is not None and record.challenger is None and record.champion == champion["version"]
    assert _actions(stack, orphan)[-1] == "canary.orphaned"
    assert canary_watch() == []  # nothing left to end


def test_a_canary_step_nobody_followed_up_gets_no_traffic_at_the_gateway(
    stack: Settings, champion: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway's own watchdog, for when canary-watch cannot run (Prefect down): a canary record
    older than the policy's step limit sends nothing to its challenger, and says why."""
    candidate = train_as("dana", model=MODEL, rows=2000, seed=66)
    promote_now(stack, candidate, alias="challenger")
    assert _reload(stack)["challenger"] == candidate["version"]  # loaded and verified at weight 0
    long_ago = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    monkeypatch.setattr(serving_records, "now", lambda: long_ago)  # the step was signed 10 min ago
    stale = rollout.set_weight(stack, MODEL, candidate["version"], 50, "test")
    monkeypatch.undo()
    info = _reload(stack)
    # canary-watch (every minute) ends such a canary durably too; it may get there first
    if rollout.serving_now(stack, MODEL) == stale:
        assert (info["challenger"], info["challenger_weight"]) == (candidate["version"], 0), info
        assert any("its canary has not moved for" in p for p in info["problems"]), info["problems"]
    assert served_versions(stack) == {champion["version"]}
    assert canary_abort(model=MODEL, reason="stale")["aborted"] in (candidate["version"], None)
    assert rollout.serving_now(stack, MODEL).challenger is None  # type: ignore[union-attr]


def test_abort_ends_a_canary_by_hand(stack: Settings, champion: dict[str, Any]) -> None:
    challenger = _challenger_at(stack, champion, seed=63, weight=50)
    result = canary_abort(model=MODEL, reason="incident 7")
    assert result == {"model": MODEL, "aborted": challenger, "champion": champion["version"]}
    assert _reload(stack)["challenger"] is None
    assert _actions(stack, challenger)[-1] == "canary.aborted"
    assert canary_abort(model=MODEL, reason="again")["aborted"] is None  # nothing to end


def test_changes_of_one_model_wait_for_each_other(stack: Settings) -> None:
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with model_change("lock-test", "canary", timeout_seconds=30):
            holding.set()
            release.wait(30)

    # the Prefect settings of this session live in the context: the thread runs in a copy of it
    holder = threading.Thread(target=contextvars.copy_context().run, args=(hold,))
    holder.start()
    try:
        assert holding.wait(30)
        with (
            pytest.raises(RolloutError, match="another change of lock-test"),
            model_change("lock-test", "rollback", timeout_seconds=2),
        ):
            pass
        with model_change("other-model", "rollback", timeout_seconds=5):
            pass  # another model is not held up
    finally:
        release.set()
        holder.join(30)
    with model_change("lock-test", "rollback", timeout_seconds=10):
        pass  # free again once the first change ended


def test_a_gateway_killed_mid_canary_leaves_only_the_champion_serving(
    stack: Settings, champion: dict[str, Any]
) -> None:
    """The served canary deployment runs a step; the gateway dies under it; the step fails, the run
    returns all traffic to the champion before it ends; the gateway comes back serving the champion."""
    candidate = train_as("dana", model=MODEL, rows=2000, seed=64)
    promote_now(stack, candidate, alias="challenger")
    run_id = flow_runs.start(
        "canary/canary", {"model": MODEL, "version": candidate["version"], "bake_seconds": 5}
    )

    def stepping() -> bool:
        record = rollout.serving_now(stack, MODEL)
        return record is not None and record.challenger_weight > 0

    assert poll(stepping, timeout=120), "the canary never sent traffic to the challenger"
    assert manager.stop_one(stack, "gateway")
    try:
        state = flow_runs.wait_for_final(run_id, timeout=300)
    finally:
        manager.up(stack)  # the gateway again, from the signed record
    assert not state.is_completed()
    record = rollout.serving_now(stack, MODEL)
    assert record is not None
    assert (record.champion, record.challenger, record.challenger_weight, record.action) == (
        champion["version"],
        None,
        0,
        "canary-abort",
    )
    assert served_versions(stack) == {champion["version"]}
    aborted = [r for r in records(stack, MODEL) if r.version == candidate["version"]][-1]
    assert aborted.action == "canary.aborted" and "unreadable" in aborted.payload["reason"]


@pytest.mark.disruptive  # this process's Prefect events worker gives up during the outage
def test_prefect_stopped_mid_canary_leaves_no_challenger_serving_once_it_is_back(
    stack: Settings, champion: dict[str, Any]
) -> None:
    """Prefect stops under a served canary's step: the run can no longer report, and may hang. Once
    Prefect is back, the restarted deployments process ends the run and ``canary-watch`` ends its
    canary (no live run judges it): all traffic returns to the champion, with its audit record."""
    candidate = train_as("dana", model=MODEL, rows=2000, seed=65)
    promote_now(stack, candidate, alias="challenger")
    run_id = flow_runs.start(
        "canary/canary", {"model": MODEL, "version": candidate["version"], "bake_seconds": 5}
    )

    def stepping() -> bool:
        record = rollout.serving_now(stack, MODEL)
        return record is not None and record.challenger_weight > 0

    def ended() -> bool:
        record = rollout.serving_now(stack, MODEL)
        return record is not None and record.challenger is None

    assert poll(stepping, timeout=120), "the canary never sent traffic to the challenger"
    assert manager.stop_one(stack, "prefect")
    try:
        poll(ended, timeout=45, interval=2.0)  # the run may end it itself, without Prefect
    finally:
        manager.up(stack)  # Prefect again, and the deployments process if it did not survive
    assert poll(ended, timeout=240, interval=2.0), "the challenger kept its traffic"
    record = rollout.serving_now(stack, MODEL)
    assert record is not None and (record.champion, record.challenger) == (champion["version"], None)
    assert record.action == "canary-abort"
    assert served_versions(stack) == {champion["version"]}
    # the run's fail-safe, canary-watch, or (when the restart cut the fail-safe short after its
    # signed record) the next deployments process records how the canary ended
    outcomes = {"canary.aborted", "canary.orphaned", "run.abandoned"}

    def ending() -> list[str]:
        return [r.action for r in records(stack, MODEL) if r.version == candidate["version"]]

    assert poll(lambda: outcomes & set(ending()), timeout=120, interval=2.0), ending()
    state = flow_runs.read_run(run_id).state
    assert state is None or not state.is_completed()  # the run never claims success
