"""What a run left by a dead deployments process is told, and which approvals it never read;
the sweep before serving never keeps the process from starting."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.backends.flow_runs import RunSummary
from govdeploy.config.settings import Settings
from govdeploy.release import recovery
from govdeploy.release.recovery import abandon_message, recover, recover_before_serving, unread_approvals
from govdeploy.trust import audit_trail
from govdeploy.trust.approvals import ApprovalRequest, make_statement, parse_token, sign_statement
from govdeploy.trust.audit import AuditRecord
from govdeploy.trust.audit_trail import audit_log
from govdeploy.trust.keys import init_keys
from tests.govdeploy.trust.anchor_stores import MemoryAnchors

RUN_ID = "0b9c4e1e-3f1a-4d1e-9a51-7d0c8a2b1f00"
REQUEST = ApprovalRequest(
    flow_run_id=RUN_ID,
    model="credit-risk",
    version="3",
    artifact_digest="a" * 64,
    submitted_by="dana",
    policy_digest="p" * 64,
)


def release_run(state_type: str = "PAUSED", state_name: str = "Paused") -> RunSummary:
    return RunSummary(
        id=RUN_ID,
        name="brave-otter",
        deployment="release/release",
        state_type=state_type,
        state_name=state_name,
        parameters={"model": "credit-risk", "version": "3"},
    )


def accepted(seq: int, approver: str, nonce: str) -> AuditRecord:
    return AuditRecord(
        seq=seq,
        id=f"r{seq}",
        time="2026-11-29T10:00:00+00:00",
        actor=approver,
        action="approval.accepted",
        model="credit-risk",
        version="3",
        payload={"flow_run_id": RUN_ID, "nonce": nonce, "reason": f"approval by {approver}"},
        prev="0" * 64,
    )


def token(approver: str) -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return sign_statement(make_statement(REQUEST, approver, "approve", "checked", 30), key)


def test_a_paused_release_says_what_was_kept_and_what_to_do() -> None:
    message = abandon_message(
        release_run(),
        [accepted(12, "alice", "n1")],
        [{"claimed_approver": "bob", "nonce": "n2"}],
        14,
    )
    assert message == (
        "the deployments process restarted while this release of credit-risk v3 waited for approvals, "
        "so nothing runs it any more; it was ended (audit record 14). Approvals accepted so far: 1 "
        "(alice; audit record 12), they do not carry over. Start the release again (govdeploy release "
        "--model credit-risk --version 3) and approve the new run. Sent after the process stopped and "
        "never read: 1 approval (bob); send it again to the new run"
    )


def test_a_release_without_approvals_and_a_resumed_one() -> None:
    none_yet = abandon_message(release_run("RUNNING", "Running"), [], [], None)
    assert "release of credit-risk v3 was running, so nothing runs it any more; it was ended. " in none_yet
    assert "No approval was accepted so far. Start the release again" in none_yet
    two = [accepted(3, "alice", "n1"), accepted(5, "bob", "n2")]
    # resumed by an approval that no process read: the release was still waiting for approvals
    resumed = abandon_message(release_run("RUNNING", "Running"), two, [{"claimed_approver": "carol"}], 9)
    assert "waited for approvals" in resumed
    assert "Approvals accepted so far: 2 (alice, bob; audit records 3, 5)" in resumed


def test_another_flow_is_told_to_start_again_if_needed() -> None:
    run = RunSummary(RUN_ID, "calm-fox", "canary-watch/canary-watch", "PENDING", "Pending", {})
    assert abandon_message(run, [], [], 7) == (
        "the deployments process restarted while this canary-watch/canary-watch run was pending, so "
        "nothing runs it any more; it was ended (audit record 7); start it again if it is still needed"
    )


def test_unread_approvals_are_the_tokens_the_trail_never_recorded() -> None:
    read, unread = token("alice"), token("bob")
    read_signed, unread_signed = parse_token(read), parse_token(unread)
    assert read_signed is not None and unread_signed is not None
    read_nonce = read_signed.statement.nonce
    inputs = [
        json.dumps({"token": read}),
        json.dumps({"token": unread}),
        json.dumps({"token": "not-a-token"}),  # refused by the run, with no nonce: not an approval
        "not json",
        json.dumps(["no", "token"]),
    ]
    found = unread_approvals(inputs, [accepted(4, "alice", read_nonce)])
    assert [(u["claimed_approver"], u["decision"]) for u in found] == [("bob", "approve")]
    assert found[0]["nonce"] == unread_signed.statement.nonce
    assert len(found[0]["token_sha256"]) == 64


def prefect_at(url: str) -> Any:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: url})


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that takes connections and never answers (a hung API)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def test_a_sweep_that_fails_is_logged_and_the_process_starts(
    closed_port: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(state_dir=tmp_path)
    with (
        prefect_at(f"http://127.0.0.1:{closed_port}/api"),
        caplog.at_level(logging.INFO, "govdeploy.recovery"),
    ):
        assert recover_before_serving(settings, ["release/release"], timeout=30) is None
    assert "the runs left by a previous deployments process could not be read" in caplog.text
    assert "ConnectError" in caplog.text


def test_a_sweep_that_hangs_gives_up_after_its_timeout(
    silent_port: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(state_dir=tmp_path)
    started = time.monotonic()
    with (
        prefect_at(f"http://127.0.0.1:{silent_port}/api"),
        caplog.at_level(logging.INFO, "govdeploy.recovery"),
    ):
        assert recover_before_serving(settings, ["release/release"], timeout=1.0) is None
    assert time.monotonic() - started < 5
    assert "takes over 1 s; serving anyway" in caplog.text


def test_a_release_prefect_ended_crashed_is_recorded_once_and_not_ended_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process stopped by SIGTERM: Prefect ended the paused release Crashed itself, so the sweep of
    unfinished runs misses it; the crashed-run sweep records it (once) instead."""
    settings = Settings(state_dir=tmp_path)
    init_keys(settings.keys_dir, [])
    stored = MemoryAnchors()
    monkeypatch.setattr(audit_trail, "anchors", lambda settings, retention_days=1: stored)
    crashed = release_run("CRASHED", "Crashed")
    crashed = RunSummary(**{**crashed.__dict__, "state_message": "Execution was aborted by a signal"})
    promoted = RunSummary(**{**crashed.__dict__, "id": "1" * 8 + RUN_ID[8:]})
    since: list[Any] = []
    monkeypatch.setattr(recovery.flow_runs, "unfinished_runs", lambda deployments: [])
    monkeypatch.setattr(
        recovery.flow_runs, "crashed_runs", lambda names, after: since.append(after) or [crashed, promoted]
    )
    monkeypatch.setattr(recovery.flow_runs, "received_inputs", lambda run_id: [])
    monkeypatch.setattr(recovery.flow_runs, "end_crashed", lambda run_id, message: pytest.fail(message))
    audit_log(settings).append(
        "model.promoted", "dana", {"flow_run_id": promoted.id}, model="credit-risk", version="3"
    )
    (done,) = recover(settings, ["release/release", "canary/canary"])
    assert done.run.id == RUN_ID and done.record.action == "release.abandoned"
    assert done.message.startswith(
        "the process running this release of credit-risk v3 stopped while it was running (Prefect ended "
        "it Crashed: 'Execution was aborted by a signal') (audit record 2). No approval was accepted"
    )
    assert (datetime.now(UTC) - since[0]).days == 7
    assert recover(settings, ["release/release"]) == []  # recorded once
    assert recover(settings, ["canary/canary"]) == []  # only releases are looked for
