"""A refused serving record or version leaves a metric, an event attempt and an audit record."""

from __future__ import annotations

from pathlib import Path

import pytest

from govdeploy.config.settings import Settings
from govdeploy.serving.gateway import parts
from govdeploy.serving.gateway.metrics import GatewayMetrics


def test_a_refusal_is_counted_emitted_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(state_dir=tmp_path)
    emitted: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr(
        parts.events,
        "emit",
        lambda event, resource, related, payload: emitted.append((event, payload)) or "queued",
    )
    appended: list[tuple[object, ...]] = []
    trail = type("Trail", (), {"append": lambda self, *args, **kwargs: appended.append((*args, kwargs))})()
    monkeypatch.setattr(parts, "audit_log", lambda settings: trail)
    metrics = GatewayMetrics()
    record = parts._refusal_recorder(settings, metrics)
    record("credit-risk", {"reason": "champion v9 refused: no release.sig", "version": "9"})
    text = metrics.render().decode()
    assert 'govdeploy_serving_refusals_total{model="credit-risk"} 1.0' in text
    assert emitted == [
        ("govdeploy.gateway.refused", {"reason": "champion v9 refused: no release.sig", "version": "9"})
    ]
    assert appended == [
        (
            "serving.refused",
            "gateway",
            {"reason": "champion v9 refused: no release.sig", "version": "9"},
            {"model": "credit-risk"},
        )
    ]
