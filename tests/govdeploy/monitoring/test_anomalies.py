"""Gateway anomaly alerts without servers: profile checks, sliding-window rates, dedup, delivery, feedback."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from govdeploy.config.policy import AlertsPolicy, load_policy
from govdeploy.errors import ConfigError
from govdeploy.monitoring.alerts import AlertNotifier, anomaly_event
from govdeploy.monitoring.anomalies import ANOMALY_EVENT, AnomalyMonitor, RangeCheck, SlidingWindow
from govdeploy.serving.gateway.inputs import InputError, feedback_labels
from govdeploy.serving.gateway.metrics import GatewayMetrics
from govdeploy.serving.gateway.parts import Gateway
from tests.conftest import CONFIG_DIR, free_port

PROFILE = {
    "numeric": {
        "income": {"min": 1.0, "max": 9.0},
        "term": {"min": 12, "max": 60},
        "unused": {"min": 0, "max": 1},
    },
    "categorical": {"region": ["north", "south"]},
    "rows": 4000,
}
INPUTS = ["income", "term", "region"]
GOOD = {"income": 5.0, "term": 36, "region": "north"}
POLICY = AlertsPolicy(
    window_seconds=10,
    min_requests=5,
    max_out_of_range_rate=0.2,
    low_confidence_margin=0.1,
    max_low_confidence_rate=0.5,
    max_error_rate=0.1,
    dedup_seconds=30,
)
ID = "0123456789abcdef0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def monitor() -> tuple[AnomalyMonitor, Clock]:
    clock = Clock()
    return AnomalyMonitor(POLICY, clock), clock


def test_range_check_counts_rows_and_fields_outside_the_profile() -> None:
    check = RangeCheck.from_profile(PROFILE, INPUTS)
    assert check is not None
    assert [name for name, _, _ in check.numeric] == ["income", "term"]  # only model inputs
    edges = [GOOD, {**GOOD, "income": 1.0}, {**GOOD, "income": 9.0, "term": 60}]
    assert check.check(edges) == (0, {})  # bounds are inclusive
    rows = [
        GOOD,
        {**GOOD, "income": 9.5},
        {**GOOD, "income": 0.5, "region": "east"},
        {**GOOD, "term": 72},
    ]
    assert check.check(rows) == (3, {"income": 2, "region": 1, "term": 1})


@pytest.mark.parametrize(
    "profile",
    [
        None,
        {},
        {"numeric": {"other": {"min": 0, "max": 1}}},
        {"numeric": {"income": {"low": 1}}},
        {"numeric": []},
    ],
)
def test_no_usable_profile_means_no_range_check(profile: Any) -> None:
    assert RangeCheck.from_profile(profile, INPUTS) is None


def test_categories_are_compared_as_text() -> None:
    check = RangeCheck.from_profile({"categorical": {"term": ["12", "36"]}}, ["term"])
    assert check is not None and check.check([{"term": 36}, {"term": 24}]) == (1, {"term": 1})


def test_sliding_window_forgets_what_left_it() -> None:
    window = SlidingWindow(10)
    window.add(100.2, 1, 0, 2, 1, 0, fields={"income": 1})
    window.add(105.0, 1, 1, 1, 0, 1)
    window.add(105.9, 1, 0, 1, 0, 0)
    assert window.totals == [3, 1, 4, 1, 1] and len(window.buckets) == 2
    window.expire(110.9)  # the bucket of second 100 still overlaps the last 10 s
    assert window.totals[0] == 3
    window.expire(111.0)
    assert window.totals == [2, 1, 2, 0, 1] and window.fields == {}
    window.expire(200.0)
    assert window.totals == [0] * 5 and not window.buckets


def test_nothing_is_judged_before_min_requests() -> None:
    watch, _ = monitor()
    alerts = [watch.observe("m", "1", 500, None) for _ in range(4)]
    assert alerts == [[]] * 4
    assert [a.kind for a in watch.observe("m", "1", 500, None)] == ["error_rate"]


def test_each_kind_alerts_once_per_dedup_window_and_again_after() -> None:
    watch, clock = monitor()
    out = (1, {"income": 1})
    raised = [a for _ in range(50) for a in watch.observe("m", "1", 200, [0.52], out)]
    assert sorted(a.kind for a in raised) == ["low_confidence", "out_of_range"]
    first = next(a for a in raised if a.kind == "out_of_range")
    assert first.rate == 1.0 and first.limit == 0.2 and first.total == 5 and first.fields == {"income": 5}
    clock.now += 29
    assert [a for _ in range(10) for a in watch.observe("m", "1", 200, [0.52], out)] == []
    clock.now += 1  # dedup_seconds after the first alerts, still anomalous: alert again
    again = [a for _ in range(10) for a in watch.observe("m", "1", 200, [0.52], out)]
    assert sorted(a.kind for a in again) == ["low_confidence", "out_of_range"]


def test_versions_are_judged_apart_and_rates_at_the_limit_do_not_alert() -> None:
    watch, _ = monitor()
    for _ in range(9):
        assert watch.observe("m", "1", 200, [0.9]) == []
    assert watch.observe("m", "1", 503, [0.9]) == []  # 1 of 10 = the limit, not over it
    assert watch.observe("m", "2", 500, None) == []  # v2 has its own window
    assert [a.version for a in watch.observe("m", "1", 500, None)] == ["1"]  # 2 of 11


def test_low_confidence_counts_scores_within_the_margin_per_row() -> None:
    watch, _ = monitor()
    for _ in range(4):
        watch.observe("m", "1", 200, [0.41, 0.59, 0.4, 0.95])  # 2 of 4 within 0.1 of 0.5
    assert watch.observe("m", "1", 200, [0.5, 0.1]) == []  # 9 of 18 = 0.5, not over
    alert = watch.observe("m", "1", 200, [0.45])[0]
    assert alert.kind == "low_confidence" and alert.count == 10 and alert.total == 19


def test_old_anomalies_leave_the_window() -> None:
    watch, clock = monitor()
    for _ in range(4):
        watch.observe("m", "1", 500, None)
    clock.now += 11
    for _ in range(5):
        assert watch.observe("m", "1", 200, [0.9]) == []


def test_alert_payload_names_rate_limit_and_version() -> None:
    watch, _ = monitor()
    alert = next(a for _ in range(5) for a in watch.observe("m", "3", 500, None))
    payload = alert.payload()
    assert payload["event"] == ANOMALY_EVENT
    assert {k: payload[k] for k in ("model", "version", "kind", "rate", "limit")} == {
        "model": "m",
        "version": "3",
        "kind": "error_rate",
        "rate": 1.0,
        "limit": 0.1,
    }
    assert payload["reason"] == "5 of 5 5xx answers in the last 10 s (100.0%, limit 10.0%)"


def test_gateway_counts_alerts_and_queues_them() -> None:
    queued: list[dict[str, Any]] = []
    notifier = type("N", (), {"submit": staticmethod(queued.append)})()
    gateway: Any = Gateway.__new__(Gateway)
    gateway.monitor, gateway.notifier, gateway.metrics = monitor()[0], notifier, GatewayMetrics()
    for _ in range(20):
        Gateway.observe(gateway, "m", "1", 500, None, None)
    assert [a["kind"] for a in queued] == ["error_rate"]
    assert gateway.metrics.alerts.labels("m", "1", "error_rate")._value.get() == 1
    assert b'govdeploy_gateway_alerts_total{kind="error_rate",model="m",version="1"} 1.0' in (
        gateway.metrics.render()
    )


def test_notifier_delivers_off_the_calling_thread_and_survives_failures() -> None:
    seen: list[tuple[str, str]] = []

    def deliver(alert: dict[str, Any]) -> None:
        if alert["kind"] == "boom":
            raise RuntimeError("webhook library bug")
        seen.append((alert["kind"], threading.current_thread().name))

    notifier = AlertNotifier(None, deliver=deliver)
    notifier.start()
    for kind in ("a", "boom", "b"):
        notifier.submit({"kind": kind})
    notifier.close()
    assert seen == [("a", "gateway-alerts"), ("b", "gateway-alerts")] and notifier.sent == 2


def test_an_unreachable_webhook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    notifier = AlertNotifier(f"http://127.0.0.1:{free_port()}/alerts")
    notifier.start()
    notifier.submit({"model": "m", "version": "1", "kind": "error_rate", "reason": "5 of 5"})
    notifier.close()
    assert notifier.sent == 1
    assert any("unreachable" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


def test_no_prefect_event_without_a_prefect_api(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: None}):
        assert "no Prefect API configured" in anomaly_event({"model": "m", "version": "1", "kind": "x"})


def test_feedback_labels_one_or_many() -> None:
    assert feedback_labels({"request_id": ID, "label": 1}, 10) == [{"request_id": ID, "label": 1}]
    other = "f" * 32
    many = {"labels": [{"request_id": ID, "label": 0}, {"request_id": other, "label": 1}]}
    assert feedback_labels(many, 10) == many["labels"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"label": 1}, "request_id: is missing"),
        ({"request_id": ID, "label": 2}, "label: must be 0 or 1, got 2"),
        ({"request_id": ID, "label": True}, "label: must be 0 or 1, got True"),
        ({"request_id": ID, "label": 1.0}, "label: must be 0 or 1, got 1.0"),
        ({"request_id": "abc", "label": 1}, "request_id: must be the request_id of a prediction"),
        ({"labels": [{"request_id": ID, "label": 1}, {"request_id": ID}]}, "labels[1].label: is missing"),
        ({"labels": [{"request_id": ID, "label": 1, "score": 3}]}, "labels[0].score: is not a field"),
        ({"labels": [{"request_id": ID, "label": 1}] * 2}, "labels[1].request_id: appears twice"),
        ({"labels": ["x"]}, "labels[0]: must be an object"),
        ({"labels": []}, "labels: must be a non-empty list"),
        ({"labels": [], "model": "m"}, "model: unknown top-level field"),
        ([1, 0], "labels: the body must be"),
        (
            {"labels": [{"request_id": f"{i:032x}", "label": 1} for i in range(11)]},
            "11 labels exceed the limit of 10",
        ),
    ],
)
def test_bad_feedback_names_the_item_and_field(body: Any, message: str) -> None:
    with pytest.raises(InputError) as caught:
        feedback_labels(body, 10)
    assert message in str(caught.value)


def test_bundled_policy_has_alerts_and_bad_values_are_named(tmp_path: Path) -> None:
    policy = load_policy(CONFIG_DIR / "policy.yaml")
    assert policy.alerts == AlertsPolicy()  # the file states the defaults
    text = (CONFIG_DIR / "policy.yaml").read_text()
    bad = tmp_path / "policy.yaml"
    bad.write_text(text.replace("low_confidence_margin: 0.10", "low_confidence_margin: 0.7"))
    with pytest.raises(ConfigError, match=r"key 'alerts.low_confidence_margin' = 0.7"):
        load_policy(bad)
