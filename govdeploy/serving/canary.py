"""Canary judgement: live gateway metrics of challenger and champion against the policy's limits.

The gateway's Prometheus counters are cumulative; a step is judged on the difference between two
snapshots taken around its bake time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from govdeploy.config.policy import CanaryPolicy
from govdeploy.polling import poll


@dataclass
class VersionStats:
    requests: float = 0.0
    errors: float = 0.0
    score_sum: float = 0.0
    score_count: float = 0.0
    latency_buckets: dict[float, float] = field(default_factory=dict)

    def plus(self, other: VersionStats) -> VersionStats:
        """The counters of two gateway replicas together."""
        buckets = dict(self.latency_buckets)
        for bound, count in other.latency_buckets.items():
            buckets[bound] = buckets.get(bound, 0.0) + count
        return VersionStats(
            requests=self.requests + other.requests,
            errors=self.errors + other.errors,
            score_sum=self.score_sum + other.score_sum,
            score_count=self.score_count + other.score_count,
            latency_buckets=buckets,
        )

    def minus(self, before: VersionStats) -> VersionStats:
        return VersionStats(
            requests=self.requests - before.requests,
            errors=self.errors - before.errors,
            score_sum=self.score_sum - before.score_sum,
            score_count=self.score_count - before.score_count,
            latency_buckets={
                b: c - before.latency_buckets.get(b, 0.0) for b, c in self.latency_buckets.items()
            },
        )

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_score(self) -> float:
        return self.score_sum / self.score_count if self.score_count else 0.0

    def latency_quantile(self, q: float) -> float:
        """Quantile ``q`` of the latency (seconds), interpolated within its histogram bucket."""
        total = self.latency_buckets.get(float("inf"), 0.0)
        if not total:
            return 0.0
        rank, lower, below = q * total, 0.0, 0.0
        for bound in sorted(self.latency_buckets):
            count = self.latency_buckets[bound]
            if count >= rank:
                if bound == float("inf"):
                    return lower
                return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
            lower, below = bound, count
        return lower


def parse_metrics(text: str, model: str) -> dict[str, VersionStats]:
    """Per-version stats of one model from the gateway's /metrics text."""
    stats: dict[str, VersionStats] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model") != model or "version" not in labels:
                continue
            entry = stats.setdefault(labels["version"], VersionStats())
            _accumulate(entry, sample.name, labels, sample.value)
    return stats


def _accumulate(entry: VersionStats, name: str, labels: dict[str, str], value: float) -> None:
    if name == "govdeploy_requests_total":
        entry.requests += value
        if labels.get("status", "").startswith("5"):
            entry.errors += value
    elif name == "govdeploy_challenger_errors_total":
        entry.errors += value
        entry.requests += value
    elif name == "govdeploy_prediction_score_sum":
        entry.score_sum += value
    elif name == "govdeploy_prediction_score_count":
        entry.score_count += value
    elif name == "govdeploy_request_latency_seconds_bucket":
        entry.latency_buckets[float(labels["le"])] = value


@dataclass
class StepVerdict:
    weight: int
    passed: bool
    enough_traffic: bool
    reasons: list[str]
    challenger: dict[str, float]
    champion: dict[str, float]


def _summary(stats: VersionStats) -> dict[str, float]:
    return {
        "requests": stats.requests,
        "error_rate": round(stats.error_rate, 4),
        "latency_p95_s": stats.latency_quantile(0.95),
        "mean_score": round(stats.mean_score, 4),
    }


def judge(weight: int, challenger: VersionStats, champion: VersionStats, policy: CanaryPolicy) -> StepVerdict:
    """Compare one step's traffic of challenger and champion against the policy.

    Nothing is judged before the challenger has ``min_requests``: a handful of requests is noise, and
    a rollback on noise would be as wrong as a promotion on it.
    """
    enough = challenger.requests >= policy.min_requests
    reasons: list[str] = []
    if not enough:
        return StepVerdict(weight, False, False, reasons, _summary(challenger), _summary(champion))
    increase = challenger.error_rate - champion.error_rate
    if increase > policy.max_error_rate_increase:
        reasons.append(
            f"error rate {challenger.error_rate:.3f} vs champion {champion.error_rate:.3f}: "
            f"+{increase:.3f} over the limit {policy.max_error_rate_increase}"
        )
    p95_new, p95_old = challenger.latency_quantile(0.95), champion.latency_quantile(0.95)
    slow = p95_new * 1000 > policy.latency_p95_floor_ms
    if slow and p95_old and p95_new / p95_old > policy.max_latency_p95_ratio:
        reasons.append(
            f"latency p95 {p95_new * 1000:.0f} ms vs champion {p95_old * 1000:.0f} ms: "
            f"ratio over {policy.max_latency_p95_ratio}"
        )
    shift = abs(challenger.mean_score - champion.mean_score)
    if champion.score_count and challenger.score_count and shift > policy.max_prediction_shift:
        reasons.append(
            f"mean prediction {challenger.mean_score:.3f} vs champion {champion.mean_score:.3f}: "
            f"shift {shift:.3f} over the limit {policy.max_prediction_shift}"
        )
    return StepVerdict(
        weight, enough and not reasons, enough, reasons, _summary(challenger), _summary(champion)
    )


def observe(
    scrape: Callable[[], dict[str, VersionStats]],
    weight: int,
    challenger: str,
    champion: str | None,
    bake_seconds: float,
    policy: CanaryPolicy,
) -> StepVerdict:
    """Judge one step: the traffic between a scrape before the bake and the first scrape after it that
    holds enough challenger requests or a breach, waiting at most ``max(3 * bake, 30 s)`` for them.
    Too little traffic by then is itself a breach: a step is never passed on noise."""
    before = scrape()

    def step() -> StepVerdict:
        now = scrape()
        return judge(
            weight,
            now.get(challenger, VersionStats()).minus(before.get(challenger, VersionStats())),
            now.get(champion or "", VersionStats()).minus(before.get(champion or "", VersionStats())),
            policy,
        )

    time.sleep(bake_seconds)
    last: list[StepVerdict] = []

    def decided() -> bool:
        last[:] = [step()]
        return last[0].enough_traffic or bool(last[0].reasons)

    poll(decided, timeout=max(3 * bake_seconds, 30.0), interval=1.0)
    verdict = last[0]
    if not verdict.enough_traffic and not verdict.reasons:
        verdict.reasons.append(
            f"only {verdict.challenger['requests']:.0f} challenger requests, fewer than the "
            f"{policy.min_requests} the policy needs to judge"
        )
    return verdict
