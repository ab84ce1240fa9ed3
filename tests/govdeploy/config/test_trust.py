"""trust.yaml: keys by role with the dates that make rotation possible, and which keys are due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from govdeploy.config.trust import TrustConfig, TrustedKey, dump_trust, header_of, keys_due, load_trust
from govdeploy.errors import ConfigError
from tests.conftest import CONFIG_DIR

T = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
PEM = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"


def config(*candidate: TrustedKey) -> TrustConfig:
    return TrustConfig(
        roles={
            "candidate": list(candidate),
            "release": [TrustedKey(key_file="release.pub")],
            "serving": [TrustedKey(key_file="serving.pub")],
            "audit": [TrustedKey(key_file="audit.pub")],
        }
    )


def test_the_shipped_config_has_no_dates_and_keeps_working() -> None:
    trust = load_trust(CONFIG_DIR / "trust.yaml")
    for role in ("candidate", "release", "serving", "audit"):
        [key] = trust.keys(role)  # type: ignore[arg-type]
        assert key.key_file == f"{role}.pub" and key.signs_at(T) and key.trusted_at(T)
        assert trust.verifying(role, T, signed_at=T - 1000 * DAY) == [key]  # type: ignore[arg-type]


def test_a_rotated_role_signs_with_the_new_key_and_verifies_with_both() -> None:
    old = TrustedKey(public_key=PEM, retired_at=T)
    new = TrustedKey(key_file="candidate.pub", valid_from=T)
    trust = config(old, new)
    assert trust.keys("candidate", T - DAY) == [old] and trust.keys("candidate", T) == [new]
    assert trust.verifying("candidate", T + DAY) == [new, old]  # bundles: no signed time
    assert trust.verifying("candidate", T + DAY, signed_at=T - DAY) == [old]
    assert trust.verifying("candidate", T + DAY, signed_at=T) == [new]
    assert trust.verifying("candidate", T - DAY) == [old]  # the new key verifies nothing before it starts


def test_valid_until_ends_all_trust_in_a_key() -> None:
    ended = TrustedKey(public_key=PEM, retired_at=T, valid_until=T + DAY)
    trust = config(ended, TrustedKey(key_file="candidate.pub", valid_from=T))
    assert ended in trust.verifying("candidate", T + DAY - timedelta(seconds=1), signed_at=T - DAY)
    assert trust.verifying("candidate", T + DAY, signed_at=T - DAY) == []


def test_a_role_without_a_key_that_signs_now_fails_closed() -> None:
    trust = config(TrustedKey(key_file="candidate.pub", retired_at=T))
    with pytest.raises(ConfigError, match="no trusted candidate key is valid at 2026-06-01T12:00:00"):
        trust.keys("candidate", T)


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        ({"valid_from": T, "retired_at": T}, "is not before retired_at"),
        ({"valid_from": T, "valid_until": T - DAY}, "is not before valid_until"),
        ({"retired_at": T + DAY, "valid_until": T}, "is after valid_until"),
        ({"retired_at": "2026-06-01T12:00:00"}, "timezone"),
    ],
)
def test_dates_out_of_order_are_refused(dates: dict[str, object], expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        TrustedKey.model_validate({"key_file": "candidate.pub", **dates})


def test_written_back_with_the_files_comments(tmp_path: Path) -> None:
    text = (CONFIG_DIR / "trust.yaml").read_text()
    trust = config(
        TrustedKey(key_file="candidate.pub", valid_from=T),
        TrustedKey(public_key=PEM, valid_from=T - 400 * DAY, retired_at=T),
    )
    path = tmp_path / "trust.yaml"
    path.write_text(dump_trust(trust, header_of(text)))
    assert load_trust(path) == trust
    assert path.read_text().startswith(header_of(text) + "\nroles:\n  candidate:\n")


def test_keys_due_are_those_that_sign_and_are_old_or_of_unknown_age() -> None:
    trust = config(
        TrustedKey(key_file="candidate.pub", valid_from=T - 400 * DAY),
        TrustedKey(public_key=PEM, valid_from=T - 800 * DAY, retired_at=T - 400 * DAY),
    )
    made = {"release.pub": T - 10 * DAY, "serving.pub": T - 365 * DAY}
    due = keys_due(trust, T, 365, lambda key: made.get(key.key_file or ""))
    assert [(d.role, d.key, d.age_days) for d in due] == [
        ("candidate", "candidate.pub", 400),
        ("serving", "serving.pub", 365),
        ("audit", "audit.pub", None),
    ]
    assert "signs since 2025-04-27T12:00:00+00:00 (400 days)" in due[0].reason
    assert "its age is unknown" in due[2].reason
