"""Which verified versions serve each model, refreshed from the registry.

Each model has a ``champion`` slot and optionally a ``challenger`` slot (with a traffic weight). A
slot only ever holds a version whose every file verified against its release signature: when an
alias moves to something that does not verify, the slot keeps the last verified version and an
alert is raised; a model with no verified champion answers 503 (safe shutdown), never an
unverified model.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from govdeploy import registry
from govdeploy.alerts import post_alert
from govdeploy.errors import GovdeployError
from govdeploy.gateway.batching import MicroBatcher
from govdeploy.loader import VerifiedModel, load_verified_model
from govdeploy.rollout import TRAFFIC_TAG
from govdeploy.settings import Settings

log = logging.getLogger("govdeploy.gateway")


@dataclass
class Slot:
    verified: VerifiedModel
    batcher: MicroBatcher

    @property
    def version(self) -> str:
        return self.verified.version


@dataclass
class ServedModel:
    name: str
    passthrough: frozenset[str]
    champion: Slot | None = None
    challenger: Slot | None = None
    challenger_weight: int = 0
    killed: str | None = None
    problems: list[str] = field(default_factory=list)

    def unavailable(self) -> str | None:
        """Why this model cannot answer now (kill switch, no verified champion), or None."""
        if self.killed:
            return f"model {self.name} is shut down by a deployer: {self.killed}"
        if self.champion is None:
            reason = "; ".join(self.problems) or "no champion is promoted"
            return f"model {self.name} has no verified champion ({reason})"
        return None

    def pick(self) -> tuple[Slot, Slot | None]:
        """The slot to answer (challenger by weight) and the champion to fall back on."""
        assert self.champion is not None
        if self.challenger is not None and random.uniform(0, 100) < self.challenger_weight:
            return self.challenger, self.champion
        return self.champion, None


def _predictor(verified: VerifiedModel) -> Any:
    model, columns = verified.model, verified.inputs

    def predict(frame: dict[str, list[Any]]) -> np.ndarray:
        return np.asarray(model.predict_proba(pd.DataFrame(frame, columns=columns)))[:, 1]

    return predict


class ServingState:
    """The served models; ``refresh`` reconciles them with the registry's aliases."""

    def __init__(
        self, settings: Settings, passthrough: dict[str, frozenset[str]], max_batch: int, max_wait: float
    ):
        self.settings = settings
        self.models = {name: ServedModel(name, fields) for name, fields in passthrough.items()}
        self.max_batch, self.max_wait = max_batch, max_wait
        self.lock = threading.Lock()

    def _load(self, name: str, version: str) -> Slot:
        verified = load_verified_model(
            name,
            version,
            trusted_keys=self.settings.trusted_signing_keys,
            level="release",
            tracking_uri=self.settings.mlflow_url,
        )
        return Slot(
            verified, MicroBatcher(_predictor(verified), verified.inputs, self.max_batch, self.max_wait)
        )

    def _reconcile(self, served: ServedModel, alias: str, current: Slot | None) -> Slot | None:
        version = registry.alias_version(served.name, alias, self.settings.mlflow_url)
        if version is None:
            return None
        if current is not None and current.version == version:
            return current
        try:
            slot = self._load(served.name, version)
        except GovdeployError as exc:
            problem = f"{alias} v{version} refused: {exc}"
            served.problems.append(problem)
            kept = f"keeping v{current.version}" if current else "nothing to serve"
            log.error("%s; %s", problem, kept)
            post_alert(
                self.settings.alert_webhook,
                {
                    "event": "govdeploy.gateway.unverified_alias",
                    "model": served.name,
                    "alias": alias,
                    "version": version,
                    "reason": str(exc),
                    "kept": current.version if current else None,
                },
            )
            return current
        log.info(
            "%s %s now serves v%s (verified, signature %s…)",
            served.name,
            alias,
            version,
            slot.verified.signature_sha256[:12],
        )
        return slot

    def refresh(self) -> None:
        """Load newly aliased versions (verified) and drop those no longer aliased."""
        registry.connect(self.settings.mlflow_url, self.settings.experiment)
        for served in self.models.values():
            served.problems = []
            champion = self._reconcile(served, registry.CHAMPION, served.champion)
            challenger = self._reconcile(served, "challenger", served.challenger)
            weight = registry.model_tag(served.name, TRAFFIC_TAG, self.settings.mlflow_url)
            with self.lock:
                served.champion, served.challenger = champion, challenger
                served.challenger_weight = int(weight) if weight and weight.isdigit() else 0
