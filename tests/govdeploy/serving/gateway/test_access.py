from __future__ import annotations

import hashlib
import stat
import threading
from pathlib import Path

import pytest

from govdeploy.errors import ConfigError
from govdeploy.serving.gateway.access import (
    AccessConfig,
    KeyRing,
    Principal,
    RateLimiter,
    load_access,
)
from govdeploy.trust.keys import init_api_keys
from tests.conftest import CONFIG_DIR

PRINCIPALS = ["demo-client", "deployer", "auditor", "bench"]


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    init_api_keys(directory, PRINCIPALS)
    return directory


@pytest.fixture(scope="module")
def ring(keys_dir: Path) -> KeyRing:
    return KeyRing.from_config(load_access(CONFIG_DIR / "access.yaml"), keys_dir)


def api_key(keys_dir: Path, principal: str) -> str:
    return (keys_dir / "api" / f"{principal}.key").read_text()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "access.yaml"
    path.write_text(text)
    return path


def test_the_bundled_config_loads() -> None:
    config = load_access(CONFIG_DIR / "access.yaml")
    assert sorted(config.principals) == sorted(PRINCIPALS)
    assert config.principals["demo-client"].roles == ["predict"]
    assert config.principals["bench"].rate_limit_per_minute == 10_000_000
    assert config.principals["auditor"].key_sha256_file == "api/auditor.sha256"


def test_init_api_keys_creates_private_keys_and_digests_once(tmp_path: Path) -> None:
    created = init_api_keys(tmp_path, ["demo-client", "auditor"])
    assert created == ["api/demo-client.key", "api/auditor.key"]
    for principal in ("demo-client", "auditor"):
        key_file = tmp_path / "api" / f"{principal}.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text()
        assert key.startswith("gd_") and len(key) > 40
        digest = (tmp_path / "api" / f"{principal}.sha256").read_text().strip()
        assert digest == hashlib.sha256(key.encode()).hexdigest()
    before = api_key(tmp_path, "auditor")
    assert init_api_keys(tmp_path, ["demo-client", "auditor", "bench"]) == ["api/bench.key"]
    assert init_api_keys(tmp_path, ["demo-client", "auditor", "bench"]) == []
    assert api_key(tmp_path, "auditor") == before
    assert api_key(tmp_path, "demo-client") != api_key(tmp_path, "auditor")


def test_init_api_keys_refuses_ids_that_are_not_file_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'\.\./evil' is not a valid file name"):
        init_api_keys(tmp_path, ["../evil"])


def test_the_right_key_authenticates_its_principal(ring: KeyRing, keys_dir: Path) -> None:
    principal = ring.authenticate(api_key(keys_dir, "deployer"))
    assert principal == Principal("deployer", frozenset({"deployer"}), 600)
    demo = ring.authenticate(api_key(keys_dir, "demo-client"))
    assert demo is not None and demo.id == "demo-client" and demo.roles == {"predict"}


@pytest.mark.parametrize("presented", [None, "", "gd_wrong", "gd_" + "x" * 43])
def test_a_missing_or_wrong_key_authenticates_nobody(ring: KeyRing, presented: str | None) -> None:
    assert ring.authenticate(presented) is None


def test_a_key_differing_by_one_character_is_refused(ring: KeyRing, keys_dir: Path) -> None:
    key = api_key(keys_dir, "auditor")
    assert ring.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert ring.authenticate(key + "\n") is None


def test_an_inline_digest_authenticates(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"gd_inline").hexdigest().upper()
    config = AccessConfig.model_validate(
        {"principals": {"ci": {"roles": ["deployer"], "key_sha256": digest}}}
    )
    principal = KeyRing.from_config(config, tmp_path).authenticate("gd_inline")
    assert principal == Principal("ci", frozenset({"deployer"}), 600)


def test_a_missing_digest_file_says_to_create_the_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"principal 'demo-client'.*does not exist.*govdeploy keys init"):
        KeyRing.from_config(load_access(CONFIG_DIR / "access.yaml"), tmp_path)


def test_a_digest_file_without_a_digest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ci.sha256").write_text("not a digest\n")
    config = AccessConfig.model_validate(
        {"principals": {"ci": {"roles": ["predict"], "key_sha256_file": "ci.sha256"}}}
    )
    with pytest.raises(ConfigError, match=r"principal 'ci'.*64 hex characters"):
        KeyRing.from_config(config, tmp_path)


def test_two_principals_with_one_key_are_refused(tmp_path: Path) -> None:
    digest = "ab" * 32
    config = AccessConfig.model_validate(
        {
            "principals": {
                "one": {"roles": ["predict"], "key_sha256": digest},
                "two": {"roles": ["auditor"], "key_sha256": digest},
            }
        }
    )
    with pytest.raises(ConfigError, match=r"'one' and 'two' have the same API key digest"):
        KeyRing.from_config(config, tmp_path)


@pytest.mark.parametrize(
    ("principal", "message"),
    [
        (
            "{roles: [admin], key_sha256_file: api/x.sha256}",
            r"key 'principals\.x\.roles\.0' = 'admin': Input should be 'predict', 'deployer' or 'auditor'",
        ),
        (
            "{roles: [predict], key_sha256: " + "a" * 64 + ", key_sha256_file: api/x.sha256}",
            r"key 'principals\.x' .*give exactly one of key_sha256 .* and key_sha256_file",
        ),
        (
            "{roles: [predict]}",
            r"key 'principals\.x' .*give exactly one of key_sha256",
        ),
        (
            "{roles: [predict], key_sha256: " + "g" * 64 + "}",
            r"key 'principals\.x\.key_sha256' = 'g+'.*64 hex characters",
        ),
        (
            "{roles: [predict], key_sha256: abc123}",
            r"key 'principals\.x\.key_sha256' = 'abc123'.*64 hex characters",
        ),
        (
            "{roles: [predict], key_sha256_file: ../../etc/x.sha256}",
            r"key 'principals\.x\.key_sha256_file'.*inside the keys directory",
        ),
        (
            "{roles: [predict], rate_limit_per_minute: 0, key_sha256_file: api/x.sha256}",
            r"key 'principals\.x\.rate_limit_per_minute' = 0",
        ),
        (
            "{roles: [], key_sha256_file: api/x.sha256}",
            r"key 'principals\.x\.roles'",
        ),
        (
            "{roles: [predict], key_sha256_file: api/x.sha256, rate: 5}",
            r"unknown key 'principals\.x\.rate' \(remove it or fix its spelling\)",
        ),
    ],
)
def test_an_invalid_principal_names_the_file_and_key(tmp_path: Path, principal: str, message: str) -> None:
    path = write(tmp_path, f"principals:\n  x: {principal}\n")
    with pytest.raises(ConfigError, match=message) as caught:
        load_access(path)
    assert f"access file {path} is invalid" in str(caught.value)


def test_a_duplicate_principal_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "principals:\n  x: {roles: [predict], key_sha256_file: a}\n  x: {roles: [auditor], key_sha256_file: b}\n",
    )
    with pytest.raises(ConfigError, match="duplicate key 'x'"):
        load_access(path)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def principal(name: str, per_minute: int) -> Principal:
    return Principal(name, frozenset({"predict"}), per_minute)


def test_the_rate_limiter_allows_the_capacity_then_refuses() -> None:
    limiter = RateLimiter(clock=FakeClock())
    caller = principal("demo-client", 600)  # 10 per second
    assert [limiter.allow(caller) for _ in range(12)] == [True] * 10 + [False] * 2


def test_the_rate_limiter_refills_continuously() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock=clock)
    caller = principal("demo-client", 600)
    while limiter.allow(caller):
        pass
    clock.now += 0.05  # half a token
    assert not limiter.allow(caller)
    clock.now += 0.05
    assert limiter.allow(caller)
    assert not limiter.allow(caller)
    clock.now += 60  # never more than the capacity
    assert sum(limiter.allow(caller) for _ in range(20)) == 10


def test_a_slow_principal_still_gets_one_token_and_burst_scales_capacity() -> None:
    clock = FakeClock()
    slow = principal("slow", 6)  # one per 10 s
    limiter = RateLimiter(clock=clock)
    assert limiter.allow(slow) and not limiter.allow(slow)
    clock.now += 9.9
    assert not limiter.allow(slow)
    clock.now += 0.1
    assert limiter.allow(slow)
    bursty = RateLimiter(burst_seconds=2.0, clock=clock)
    assert sum(bursty.allow(principal("demo-client", 600)) for _ in range(30)) == 20


def test_each_principal_has_its_own_bucket() -> None:
    limiter = RateLimiter(clock=FakeClock())
    first, second = principal("a", 60), principal("b", 60)
    assert limiter.allow(first) and not limiter.allow(first)
    assert limiter.allow(second) and not limiter.allow(second)


def test_the_rate_limiter_is_thread_safe() -> None:
    limiter = RateLimiter(clock=FakeClock())
    caller = principal("bench", 60_000)  # capacity 1000
    allowed: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        results = [limiter.allow(caller) for _ in range(500)]
        with lock:
            allowed.extend(results)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 1000


def test_burst_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="burst_seconds must be positive"):
        RateLimiter(burst_seconds=0)
