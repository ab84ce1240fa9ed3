"""Rate limits weighed by rows, and per client address for requests without a valid key."""

from __future__ import annotations

import pytest

from govdeploy.serving.gateway.access import Principal, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def caller(per_minute: int = 600) -> Principal:
    return Principal("c", frozenset({"predict"}), per_minute)


def test_a_refusal_says_how_long_to_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    assert [limiter.admit(caller()) for _ in range(10)] == [0.0] * 10  # 10 per second
    assert limiter.admit(caller()) == pytest.approx(0.1)
    clock.now += 0.05
    assert limiter.admit(caller()) == pytest.approx(0.05)


def test_a_charged_batch_puts_the_bucket_into_debt() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    assert limiter.admit(caller()) == 0.0
    limiter.charge(caller(), 29)  # a batch worth 30 requests: 9 tokens were left, 20 are owed
    assert limiter.admit(caller()) == pytest.approx(2.1)  # 21 tokens to refill at 10 per second
    clock.now += 2.1
    assert limiter.admit(caller()) == 0.0
    limiter.charge(caller(), 0)
    limiter.charge(caller(), -5)  # nothing is ever given back
    assert limiter.admit(caller()) > 0


def test_addresses_have_their_own_buckets_with_a_longer_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    assert [limiter.admit_address("10.0.0.1", 60) for _ in range(10)] == [0.0] * 10
    assert limiter.admit_address("10.0.0.1", 60) == pytest.approx(1.0)
    assert limiter.admit_address("10.0.0.2", 60) == 0.0
    assert limiter.admit(Principal("10.0.0.1", frozenset(), 60)) == 0.0  # principals are apart
    clock.now += 1
    assert limiter.admit_address("10.0.0.1", 60) == 0.0


def test_the_tracked_addresses_are_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock, max_addresses=3)
    for address in ("a", "b", "c"):
        assert limiter.admit_address(address, 60) == 0.0
    assert limiter.admit_address("d", 60) == pytest.approx(1.0)  # all three still limited: refused
    assert limiter.admit_address("a", 60) == 0.0  # known addresses keep their buckets
    clock.now += 10  # every bucket refilled: they are forgotten to make room
    assert limiter.admit_address("d", 60) == 0.0
    assert limiter.admit_address("e", 60) == 0.0


def test_address_burst_must_be_positive() -> None:
    with pytest.raises(ValueError, match="address_burst_seconds must be positive"):
        RateLimiter(address_burst_seconds=0)


def test_replicas_behind_one_balancer_each_admit_their_share() -> None:
    clock = Clock()
    alone, third = RateLimiter(clock=clock), RateLimiter(clock=clock, share=3)
    assert [alone.admit(caller(600)) for _ in range(10)] == [0.0] * 10  # 10 a second
    assert [third.admit(caller(600)) for _ in range(4)] == [0.0] * 3 + [pytest.approx(0.2)]  # 200/min here
    assert third.capacity(caller(60)) == 1.0  # a share never drops below one request
    assert third.admit_address("10.0.0.1", 60) == 0.0  # the anonymous limit is shared too
    with pytest.raises(ValueError, match="share must be at least 1"):
        RateLimiter(share=0)
