"""Single-use nonces: one claim wins, across threads and processes; every other is a replay."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from govdeploy.errors import ApprovalError
from govdeploy.trust.nonces import UsedNonces, new_use, submission_nonces
from govdeploy.trust.validity import new_nonce

EXPIRES = "2099-01-01T00:00:00+00:00"


def test_a_nonce_is_claimed_once_and_names_its_first_run(tmp_path: Path) -> None:
    used = submission_nonces(tmp_path)
    nonce = new_nonce()
    used.claim(nonce, new_use("run-a", "dana", EXPIRES))
    with pytest.raises(ApprovalError, match=rf"submission {nonce[:8]}… was already used by flow run run-a"):
        used.claim(nonce, new_use("run-b", "dana", EXPIRES))
    used.claim(new_nonce(), new_use("run-b", "dana", EXPIRES))
    assert len(list(used.directory.iterdir())) == 2
    assert oct(used.directory.stat().st_mode & 0o777) == "0o700"


def test_a_half_written_record_still_counts_as_used(tmp_path: Path) -> None:
    used = submission_nonces(tmp_path)
    nonce = new_nonce()
    used.directory.mkdir(parents=True)
    (used.directory / nonce).write_bytes(b"")  # a claim interrupted before its record was written
    with pytest.raises(ApprovalError, match=r"already used \(record unreadable\)"):
        used.claim(nonce, new_use(None, "dana", EXPIRES))


@pytest.mark.parametrize("nonce", ["../x", "A" * 32, "0" * 31, "", "0" * 32 + "/"])
def test_only_hex_nonces_name_a_file(tmp_path: Path, nonce: str) -> None:
    with pytest.raises(ApprovalError, match="is not 32 hex digits"):
        submission_nonces(tmp_path).claim(nonce, new_use(None, "dana", EXPIRES))
    assert not any(tmp_path.rglob("*x"))


def test_a_state_directory_that_cannot_be_written_refuses(tmp_path: Path) -> None:
    blocker = tmp_path / "nonces"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(ApprovalError, match=r"cannot be recorded .*the token is refused"):
        submission_nonces(tmp_path).claim(new_nonce(), new_use(None, "dana", EXPIRES))


def test_threads_racing_with_one_nonce_have_one_winner(tmp_path: Path) -> None:
    used = submission_nonces(tmp_path)
    nonce, results = new_nonce(), []
    start = threading.Barrier(8)

    def race(run: str) -> None:
        start.wait()
        try:
            used.claim(nonce, new_use(run, "dana", EXPIRES))
            results.append("won")
        except ApprovalError:
            results.append("refused")

    threads = [threading.Thread(target=race, args=(f"run-{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["refused"] * 7 + ["won"]


def _claim(directory: str, nonce: str, run: str) -> bool:
    try:
        UsedNonces(Path(directory), "submission").claim(nonce, new_use(run, "dana", EXPIRES))
    except ApprovalError:
        return False
    return True


def test_processes_racing_with_one_nonce_have_one_winner(tmp_path: Path) -> None:
    nonce = new_nonce()
    directory = str(tmp_path / "used")
    with multiprocessing.get_context("fork").Pool(2) as pool:
        won = pool.starmap(_claim, [(directory, nonce, f"run-{i}") for i in range(6)])
    assert won.count(True) == 1


def test_nonces_of_tokens_expired_a_day_ago_are_pruned_by_the_next_claim(tmp_path: Path) -> None:
    used = submission_nonces(tmp_path)
    old, recent, fresh, broken = new_nonce(), new_nonce(), new_nonce(), new_nonce()
    used.claim(old, new_use("run-a", "dana", "2020-01-01T00:00:00+00:00"))
    assert (used.directory / old).exists()  # a claim never prunes the nonce it just claimed
    (used.directory / broken).write_bytes(b"{")  # unreadable: kept
    (used.directory / "notes.txt").write_text("not a nonce")  # not ours: kept
    now = datetime.now(UTC)
    used.claim(recent, new_use("run-b", "dana", (now - timedelta(hours=2)).isoformat()))
    used.claim(fresh, new_use("run-c", "dana", EXPIRES))
    left = {path.name for path in used.directory.iterdir()}
    assert left == {recent, fresh, broken, "notes.txt"}
    with pytest.raises(ApprovalError, match="already used"):  # still refused while it matters
        used.claim(recent, new_use("run-d", "dana", EXPIRES))
    assert used.prune(now + timedelta(days=2)) == 1  # recent's token now expired long ago
