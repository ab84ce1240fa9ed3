"""Prometheus metrics of the gateway, per model and version.

Label values come only from known names, never from what a client sent: model names of the
catalog, versions that verified, the model's input fields (``inputs.metric_field`` puts every other
field under ``other``), a fixed set of route kinds (``route_kind``) and HTTP status codes.

With several worker processes (``govdeploy.serving.gateway.workers``) every worker writes its values
to files in the run's metrics directory (prometheus_client's multiprocess mode,
``PROMETHEUS_MULTIPROC_DIR``), and ``render`` adds up every worker's, whichever worker answers. The
metrics are counters and histograms only (a gauge would need a ``multiprocess_mode``).
"""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from govdeploy.errors import ConfigError

MODEL_ACTIONS = frozenset({"predict", "feedback", "kill", "revive", "reload"})
_MODEL_ROUTE = re.compile(r"/v1/models/[^/]+(?:/(?P<action>[^/]+))?/?")
_OPS_ROUTES = {"/metrics": "metrics", "/healthz": "healthz", "/docs": "docs", "/openapi.json": "docs"}


def route_kind(path: str) -> str:
    """The metric label of a request path: a model action, info, metrics, healthz, docs or other."""
    found = _MODEL_ROUTE.fullmatch(path)
    if found is None:
        return _OPS_ROUTES.get(path, "other")
    action = found["action"]
    if action is None:
        return "info"
    return action if action in MODEL_ACTIONS else "other"


class GatewayMetrics:
    """The gateway's metrics; ``multiprocess``: the directory every worker process writes them to."""

    def __init__(self, multiprocess: Path | None = None) -> None:
        if multiprocess is not None and not getattr(values.ValueClass, "_multiprocess", False):
            raise ConfigError(
                f"the metrics of this worker process would not reach {multiprocess}: "
                "PROMETHEUS_MULTIPROC_DIR must be set before prometheus_client is imported"
            )
        self.multiprocess = multiprocess
        self.registry = CollectorRegistry()
        self.responses = Counter(
            "govdeploy_responses",
            "Responses of every route (refusals included) by route kind and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.requests = Counter(
            "govdeploy_requests",
            "Prediction requests by outcome.",
            ["model", "version", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "govdeploy_request_latency_seconds",
            "Prediction latency.",
            ["model", "version"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.scores = Histogram(
            "govdeploy_prediction_score",
            "Distribution of predicted scores.",
            ["model", "version"],
            buckets=tuple(i / 10 for i in range(1, 11)),
            registry=self.registry,
        )
        self.anomalies = Counter(
            "govdeploy_input_anomalies",
            "Refused inputs by field.",
            ["model", "field"],
            registry=self.registry,
        )
        self.out_of_range = Counter(
            "govdeploy_out_of_range_inputs",
            "Predicted values outside the training ranges or categories of the serving version, by field.",
            ["model", "version", "field"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "govdeploy_gateway_alerts",
            "Anomaly alerts raised (after deduplication) by kind.",
            ["model", "version", "kind"],
            registry=self.registry,
        )
        self.serving_refusals = Counter(
            "govdeploy_serving_refusals",
            "Serving records or versions the gateway refused (each refusal once).",
            ["model"],
            registry=self.registry,
        )
        self.refresh_failures = Counter(
            "govdeploy_serving_refresh_failures",
            "Refreshes of the serving state that failed (the last verified state kept serving).",
            registry=self.registry,
        )
        self.challenger_errors = Counter(
            "govdeploy_challenger_errors",
            "Challenger failures answered by the champion.",
            ["model", "version"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        """The exposition text: this process's metrics, or every worker process's added up."""
        if self.multiprocess is None:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        MultiProcessCollector(combined, path=str(self.multiprocess))
        return generate_latest(combined)
