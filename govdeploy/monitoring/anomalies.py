"""Real-time anomaly detection of the gateway, per model and version (policy ``alerts:``).

Three rates are kept over a sliding window of ``window_seconds`` (one-second buckets):

- ``out_of_range``: share of predicted rows with a numeric value outside the training [min, max] or
  a category unseen in training, against the signed training profile of the serving version
  (``RangeCheck``, built once per slot; versions without a profile are not range-checked);
- ``low_confidence``: share of scores closer than ``low_confidence_margin`` to 0.5;
- ``error_rate``: share of 5xx answers among the version's prediction responses.

Once the window holds ``min_requests`` responses, a rate above its limit makes an ``Alert``; the
same (model, version, kind) alerts at most once per ``dedup_seconds`` (per gateway process).
Everything here is O(1) per request but the one pass over the rows; ``govdeploy.monitoring.alerts``
sends the alerts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from govdeploy.config.policy import AlertsPolicy

log = logging.getLogger("govdeploy.gateway")

ANOMALY_EVENT = "govdeploy.gateway.anomaly"
Kind = Literal["out_of_range", "low_confidence", "error_rate"]


@dataclass(frozen=True)
class RangeCheck:
    """The training ranges and categories of one version's inputs, ready for a one-pass check."""

    numeric: tuple[tuple[str, float, float], ...]
    categorical: tuple[tuple[str, frozenset[str]], ...]

    @classmethod
    def from_profile(
        cls, profile: dict[str, Any] | None, inputs: Iterable[str], what: str = "a version"
    ) -> RangeCheck | None:
        """The check of a profile's fields that are model inputs; None without a usable profile."""
        if not profile:
            return None
        names = set(inputs)
        try:
            numeric = tuple(
                (name, float(bounds["min"]), float(bounds["max"]))
                for name, bounds in profile.get("numeric", {}).items()
                if name in names
            )
            categorical = tuple(
                (name, frozenset(str(value) for value in values))
                for name, values in profile.get("categorical", {}).items()
                if name in names
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            log.error("training profile of %s is malformed (%r); its inputs are not range-checked", what, exc)
            return None
        return cls(numeric, categorical) if numeric or categorical else None

    def check(self, rows: list[dict[str, Any]]) -> tuple[int, dict[str, int]]:
        """Rows with any value out of range, and out-of-range values per field ((0, {}) if none)."""
        bad_rows = 0
        fields: dict[str, int] = {}
        for row in rows:
            bad = False
            for name, low, high in self.numeric:
                value = row[name]
                if value < low or value > high:
                    fields[name] = fields.get(name, 0) + 1
                    bad = True
            for name, allowed in self.categorical:
                if str(row[name]) not in allowed:  # the profile lists categories as text
                    fields[name] = fields.get(name, 0) + 1
                    bad = True
            bad_rows += bad
        return bad_rows, fields


@dataclass
class _SecondCounts:
    second: int
    counts: list[int]  # requests, errors, rows, out-of-range rows, low-confidence rows
    fields: Counter[str] = field(default_factory=Counter)


REQUESTS, ERRORS, ROWS, OUT_OF_RANGE, LOW_CONFIDENCE = range(5)


class SlidingWindow:
    """Counts of the last ``seconds`` (one-second buckets), with running totals."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.buckets: deque[_SecondCounts] = deque()
        self.totals = [0] * 5
        self.fields: Counter[str] = Counter()

    def expire(self, now: float) -> None:
        while self.buckets and self.buckets[0].second <= now - self.seconds - 1:
            old = self.buckets.popleft()
            self.totals = [t - c for t, c in zip(self.totals, old.counts, strict=True)]
            if old.fields:
                self.fields.subtract(old.fields)
                self.fields = +self.fields  # drop fields that left the window

    def add(self, now: float, *counts: int, fields: dict[str, int] | None = None) -> None:
        """Count (requests, errors, rows, out-of-range rows, low-confidence rows) at ``now``."""
        second = int(now)
        if not self.buckets or self.buckets[-1].second != second:  # expire once per second
            self.expire(now)
            self.buckets.append(_SecondCounts(second, [0] * 5))
        bucket, totals = self.buckets[-1].counts, self.totals
        for index, count in enumerate(counts):
            if count:
                bucket[index] += count
                totals[index] += count
        if fields:
            self.buckets[-1].fields.update(fields)
            self.fields.update(fields)


@dataclass(frozen=True)
class Alert:
    model: str
    version: str
    kind: Kind
    rate: float
    limit: float
    count: int
    total: int
    window_seconds: int
    fields: dict[str, int]

    def payload(self) -> dict[str, Any]:
        """The JSON body of the webhook and of the Prefect event."""
        what = {
            "out_of_range": "rows outside the training ranges or categories",
            "low_confidence": "low-confidence predictions",
            "error_rate": "5xx answers",
        }[self.kind]
        body = {
            "event": ANOMALY_EVENT,
            "model": self.model,
            "version": self.version,
            "kind": self.kind,
            "rate": round(self.rate, 4),
            "limit": self.limit,
            "count": self.count,
            "total": self.total,
            "window_seconds": self.window_seconds,
            "reason": f"{self.count} of {self.total} {what} in the last {self.window_seconds} s "
            f"({self.rate:.1%}, limit {self.limit:.1%})",
        }
        if self.fields:
            body["fields"] = dict(self.fields)
        return body


class AnomalyMonitor:
    """Sliding windows per (model, version); ``observe`` one response, get the alerts it raises."""

    def __init__(self, policy: AlertsPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy, self.clock = policy, clock
        self.low = 0.5 - policy.low_confidence_margin
        self.high = 0.5 + policy.low_confidence_margin
        self.windows: dict[tuple[str, str], SlidingWindow] = {}
        self.last_alert: dict[tuple[str, str, str], float] = {}
        self.lock = threading.Lock()

    def observe(
        self,
        model: str,
        version: str,
        status: int,
        scores: list[float] | None,
        out_of_range: tuple[int, dict[str, int]] | None = None,
    ) -> list[Alert]:
        """Count one prediction response of ``version``; return the alerts that are due now."""
        rows = unsure = 0
        if scores:
            low, high = self.low, self.high
            rows = len(scores)
            for score in scores:
                if low < score < high:
                    unsure += 1
        bad_rows, fields = out_of_range or (0, None)
        with self.lock:
            now = self.clock()
            window = self.windows.get((model, version))
            if window is None:
                window = self.windows[(model, version)] = SlidingWindow(self.policy.window_seconds)
            window.add(now, 1, status >= 500, rows, bad_rows, unsure, fields=fields)
            if window.totals[REQUESTS] < self.policy.min_requests:
                return []
            return self._judge(model, version, window, now)

    def _judge(self, model: str, version: str, window: SlidingWindow, now: float) -> list[Alert]:
        totals, policy = window.totals, self.policy
        checks: tuple[tuple[Kind, int, int, float], ...] = (
            ("out_of_range", OUT_OF_RANGE, ROWS, policy.max_out_of_range_rate),
            ("low_confidence", LOW_CONFIDENCE, ROWS, policy.max_low_confidence_rate),
            ("error_rate", ERRORS, REQUESTS, policy.max_error_rate),
        )
        alerts = []
        for kind, part, whole, limit in checks:
            count, total = totals[part], totals[whole]
            if count > limit * total and self._due((model, version, kind), now):
                fields = dict(window.fields) if kind == "out_of_range" else {}
                rate, seconds = count / total, policy.window_seconds
                alerts.append(Alert(model, version, kind, rate, limit, count, total, seconds, fields))
        return alerts

    def _due(self, key: tuple[str, str, str], now: float) -> bool:
        """True (and remembered) unless the same model, version and kind alerted within dedup_seconds."""
        last = self.last_alert.get(key)
        if last is not None and now - last < self.policy.dedup_seconds:
            return False
        self.last_alert[key] = now
        return True
