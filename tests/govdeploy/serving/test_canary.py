from __future__ import annotations

from collections.abc import Callable

import pytest

from govdeploy.config.policy import CanaryPolicy
from govdeploy.serving.canary import VersionStats, judge, observe, parse_metrics

METRICS = """
govdeploy_requests_total{model="m",status="200",version="1"} 900
govdeploy_requests_total{model="m",status="500",version="2"} 12
govdeploy_requests_total{model="m",status="200",version="2"} 188
govdeploy_challenger_errors_total{model="m",version="2"} 3
govdeploy_prediction_score_sum{model="m",version="1"} 270
govdeploy_prediction_score_count{model="m",version="1"} 900
govdeploy_prediction_score_sum{model="m",version="2"} 90
govdeploy_prediction_score_count{model="m",version="2"} 188
govdeploy_request_latency_seconds_bucket{le="0.01",model="m",version="1"} 500
govdeploy_request_latency_seconds_bucket{le="0.05",model="m",version="1"} 900
govdeploy_request_latency_seconds_bucket{le="+Inf",model="m",version="1"} 900
govdeploy_requests_total{model="other",status="200",version="1"} 5
"""


def test_parse_per_version() -> None:
    stats = parse_metrics(METRICS, "m")
    assert stats["1"].requests == 900 and stats["1"].mean_score == 0.3
    assert stats["2"].requests == 203 and stats["2"].errors == 15
    assert 0.045 < stats["1"].latency_quantile(0.95) <= 0.05


def test_judge_names_each_breach_and_needs_traffic() -> None:
    policy = CanaryPolicy(min_requests=100, max_error_rate_increase=0.02, max_prediction_shift=0.1)
    stats = parse_metrics(METRICS, "m")
    verdict = judge(5, stats["2"], stats["1"], policy)
    assert not verdict.passed
    assert any(r.startswith("error rate 0.074 vs champion 0.000") for r in verdict.reasons)
    assert any("mean prediction 0.479 vs champion 0.300" in r for r in verdict.reasons)
    quiet = judge(5, VersionStats(requests=10), stats["1"], policy)
    assert not quiet.passed and not quiet.enough_traffic and quiet.reasons == []


def test_a_breach_on_too_few_requests_is_not_judged_yet() -> None:
    stats = parse_metrics(METRICS, "m")
    verdict = judge(5, stats["2"], stats["1"], CanaryPolicy(min_requests=1000))
    assert not verdict.passed and not verdict.enough_traffic and verdict.reasons == []


def test_latency_ratio_is_judged_only_above_the_floor() -> None:
    fast = VersionStats(requests=200, latency_buckets={0.02: 0, 0.05: 200, float("inf"): 200})
    faster = VersionStats(requests=200, latency_buckets={0.01: 200, 0.05: 200, float("inf"): 200})
    assert judge(5, fast, faster, CanaryPolicy(min_requests=100)).passed
    strict = CanaryPolicy(min_requests=100, latency_p95_floor_ms=0)
    assert "ratio over 1.5" in judge(5, fast, faster, strict).reasons[0]


def _growing(per_scrape: float, champion_requests: float = 50.0) -> Callable[[], dict[str, VersionStats]]:
    """A gateway whose counters grow by ``per_scrape`` challenger requests at every scrape."""
    scrapes = iter(range(10_000))

    def scrape() -> dict[str, VersionStats]:
        n = next(scrapes)
        return {
            "2": VersionStats(
                requests=n * per_scrape, score_sum=n * per_scrape * 0.3, score_count=n * per_scrape
            ),
            "1": VersionStats(
                requests=n * champion_requests,
                score_sum=n * champion_requests * 0.3,
                score_count=n * champion_requests,
            ),
        }

    return scrape


def test_observe_judges_the_step_once_it_has_enough_traffic() -> None:
    verdict = observe(_growing(60), 25, "2", "1", 0, CanaryPolicy(min_requests=100))
    assert verdict.passed and verdict.challenger["requests"] == 120  # two scrapes after the baseline


def test_observe_fails_a_step_that_never_gets_enough_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr("govdeploy.polling.time.monotonic", lambda: clock[0])
    monkeypatch.setattr("govdeploy.polling.time.sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    verdict = observe(_growing(1), 5, "2", "1", 0, CanaryPolicy(min_requests=100))
    assert not verdict.passed
    assert verdict.reasons == ["only 31 challenger requests, fewer than the 100 the policy needs to judge"]


def test_the_counters_of_replicas_add_up() -> None:
    one, two = parse_metrics(METRICS, "m"), parse_metrics(METRICS.replace(" 900\n", " 100\n"), "m")
    both = one["1"].plus(two["1"])
    assert (both.requests, both.score_count) == (1000, 1000)
    assert both.latency_buckets == {0.01: 1000.0, 0.05: 1000.0, float("inf"): 1000.0}
    assert both.minus(one["1"]).requests == 100
