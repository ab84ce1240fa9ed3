"""Synthetic client traffic through the gateway, for the demo and the end-to-end tests.

``Traffic`` runs a few client threads that post one row per request (cycling through the rows
given) until stopped; ``send_rows`` posts each row once. Both keep every answer, so ground truth can
be sent back later for the same request ids.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import httpx

from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import Settings
from govdeploy.errors import GovdeployError
from govdeploy.monitoring import window_source
from govdeploy.polling import poll
from govdeploy.trust.keys import master_key


@dataclass(frozen=True)
class Answer:
    row: int
    status: int
    request_id: str
    version: str | None
    score: float | None


def _post(http: httpx.Client, model: str, index: int, row: dict[str, Any]) -> Answer:
    response = http.post(f"/v1/models/{model}/predict", json={"inputs": row})
    body = response.json() if response.status_code == 200 else {}
    return Answer(
        row=index,
        status=response.status_code,
        request_id=response.headers.get("x-request-id", ""),
        version=body.get("version"),
        score=body["predictions"][0] if body else None,
    )


class Traffic:
    """``clients`` threads posting rows until the ``with`` block ends; ``answers`` in arrival order."""

    def __init__(
        self, url: str, api_key: str, model: str, rows: Sequence[dict[str, Any]], clients: int = 4
    ) -> None:
        if not rows:
            raise ValueError("Traffic needs at least one row to send")
        self.url, self.api_key, self.model, self.rows = url, api_key, model, list(rows)
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._next = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _take(self) -> int:
        with self._lock:
            index, self._next = self._next, self._next + 1
        return index % len(self.rows)

    def _client(self) -> None:
        with httpx.Client(base_url=self.url, headers={"X-API-Key": self.api_key}, timeout=30) as http:
            while not self._stop.is_set():
                index = self._take()
                try:
                    self.answers.append(_post(http, self.model, index, self.rows[index]))
                except httpx.HTTPError:
                    self.answers.append(Answer(index, 0, "", None, None))

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def statuses(self) -> set[int]:
        return {a.status for a in self.answers}


def send_rows(url: str, api_key: str, model: str, rows: Sequence[dict[str, Any]]) -> list[Answer]:
    """Post each row once (one request per row); the answers in row order."""
    with httpx.Client(base_url=url, headers={"X-API-Key": api_key}, timeout=30) as http:
        return [_post(http, model, index, row) for index, row in enumerate(rows)]


def send_feedback(
    url: str, api_key: str, model: str, labels: Sequence[tuple[str, int]], chunk: int = 500
) -> int:
    """Send ground truth for earlier answers (request id, label) in chunks; the labels accepted."""
    accepted = 0
    with httpx.Client(base_url=url, headers={"X-API-Key": api_key}, timeout=30) as http:
        for begin in range(0, len(labels), chunk):
            items = [{"request_id": rid, "label": label} for rid, label in labels[begin : begin + chunk]]
            response = http.post(f"/v1/models/{model}/feedback", json={"labels": items})
            response.raise_for_status()
            accepted += int(response.json()["accepted"])
    return accepted


def wait_until_logged(
    settings: Settings, since: str, predictions: int, labels: int = 0, timeout: float = 60
) -> None:
    """Wait until the shipped I/O batches hold ``predictions`` rows and ``labels`` since ``since``."""
    client, key = s3_client(settings), master_key(settings.keys_dir)
    source = window_source.bucket_source(client, settings.bucket)
    start = datetime.fromisoformat(since)
    counted: dict[str, tuple[int, int]] = {}  # shipped batches never change: each is read once

    def seen() -> tuple[int, int]:
        keys = window_source.batch_keys(client, settings.bucket, start, datetime.now(UTC))
        for batch in [k for k in keys if k not in counted]:
            found = [r for r in window_source.read_records(source, [batch], key) if r.time >= since]
            counted[batch] = (
                sum(len(r.inputs or []) for r in found if r.kind == "predict" and r.status == 200),
                sum(len(r.labels or []) for r in found if r.kind == "feedback"),
            )
        return sum(c[0] for c in counted.values()), sum(c[1] for c in counted.values())

    def enough() -> bool:
        found = seen()
        return found[0] >= predictions and found[1] >= labels

    if poll(enough, timeout=timeout):
        return
    rows, labelled = seen()
    raise GovdeployError(
        f"after {timeout:.0f} s the bucket holds {rows} of {predictions} predictions and {labelled} of "
        f"{labels} labels logged since {since}; is the gateway shipping its I/O log (see its log)?"
    )
