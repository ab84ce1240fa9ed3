"""Which verified versions serve each model, refreshed from the registry.

Each model has a ``champion`` slot and optionally a ``challenger`` slot (with a traffic weight),
as named by the model's latest signed serving record. A slot only ever holds a version whose
every file verified against its release signature and that the record names: when an alias moves
without a record, or to something that does not verify, the slot keeps the last verified version
and an alert is raised; a model with no verified champion answers 503 (safe shutdown), never an
unverified model.

Records are ordered: the gateway remembers the newest record it verified per model (also in
``<state_dir>/gateway/serving-seq.json``, so a restart does not forget it). An older record, another
record of the same sequence, or a missing record after one was seen is refused: the serving state
stays as it is, the problem is listed, and one alert is raised per refused record.

A canary judges itself from outside the gateway (a Prefect flow). When its record has given the
challenger traffic for longer than a step can take (the policy's ``canary.stale_after_seconds``:
the flow hangs or its orchestrator is down), every gateway serves the champion only, without
writing anything, until a newer record says otherwise; canary-watch ends the canary durably once
it runs again.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sklearn

from govdeploy.backends import registry
from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import Settings
from govdeploy.errors import GovdeployError, StorageError
from govdeploy.monitoring.alerts import post_alert
from govdeploy.monitoring.anomalies import RangeCheck
from govdeploy.serving import rollout
from govdeploy.serving.gateway.batching import MicroBatcher
from govdeploy.trust import keys, serving_records
from govdeploy.trust.roots import load_roots
from govdeploy.trust.serving_records import ServingRecord
from govdeploy.trust.versions import VerifiedModel, load_verified_model

log = logging.getLogger("govdeploy.gateway")
# the column types of the signature's types (inputs.validate_rows makes the values those types)
_DTYPES: dict[str, type] = {"double": np.float64, "float": np.float64, "long": np.int64, "integer": np.int64}


@dataclass
class Slot:
    verified: VerifiedModel
    batcher: MicroBatcher
    # the training ranges of the version's inputs (None: no signed profile, no range check)
    ranges: RangeCheck | None = None

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
    # the kill switch as the newest signed serving record has it (durable, shared by every gateway)
    killed: str | None = None
    # a kill this gateway could not make durable (the record could not be written): it holds here
    # until a deployer revives the model
    local_kill: str | None = None
    problems: list[str] = field(default_factory=list)

    def unavailable(self) -> str | None:
        """Why this model cannot answer now (kill switch, no verified champion), or None."""
        if self.killed or self.local_kill:
            return f"model {self.name} is shut down by a deployer: {self.killed or self.local_kill}"
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
    """The model's scores of a batch (columns of values checked and typed per the signature by
    ``inputs.validate_rows``): one frame of typed columns, as pandas would infer them from the
    values but without inferring (a tenth of a call), and no second finiteness check."""
    model, columns = verified.model, verified.inputs
    dtypes = {column: _DTYPES.get(verified.input_types.get(column, ""), object) for column in columns}

    def predict(frame: dict[str, list[Any]]) -> np.ndarray:
        data = pd.DataFrame({column: np.array(frame[column], dtype=dtypes[column]) for column in columns})
        with sklearn.config_context(assume_finite=True):
            return np.asarray(model.predict_proba(data))[:, 1]

    return predict


class ServingState:
    """The served models; ``refresh`` makes them what the newest signed serving record names."""

    def __init__(
        self,
        settings: Settings,
        passthrough: dict[str, frozenset[str]],
        max_batch: int,
        max_wait: float,
        audit: Callable[[str, dict[str, Any]], object] | None = None,
        canary_stale_seconds: float | None = None,
    ):
        self.settings = settings
        # a canary record older than this gets no challenger traffic (None: never judged stale)
        self.canary_stale_seconds = canary_stale_seconds
        self.audit = audit  # audit(model, payload) records a refusal in the audit trail
        self.models = {name: ServedModel(name, fields) for name, fields in passthrough.items()}
        self.max_batch, self.max_wait = max_batch, max_wait
        self.lock = threading.Lock()
        # one refresh at a time (poll and reload): a slower one must not judge an older read
        self.refreshing = threading.Lock()
        self.seen = serving_records.SeenRecords(settings.state_dir / "gateway" / "serving-seq.json")
        self.histories = {name: serving_records.History(name) for name in passthrough}
        self.alerted: set[tuple[str, int, str]] = set()
        # alias disagreements seen at the last refresh, (model, alias) -> (alias version, recorded)
        self.lagging: dict[tuple[str, str], tuple[str | None, str | None]] = {}
        # problems of the refresh under way; swapped into ServedModel.problems when it ends, so a
        # reader never sees the half-built list of a refresh running on another thread
        self.pending: list[str] = []
        self.client: Any = None  # of the bucket, made at the first refresh

    def _load(self, name: str, version: str) -> Slot:
        verified = load_verified_model(
            name,
            version,
            roots=load_roots(self.settings),
            level="release",
            tracking_uri=self.settings.mlflow_url,
        )
        return Slot(
            verified,
            MicroBatcher(_predictor(verified), verified.inputs, self.max_batch, self.max_wait),
            RangeCheck.from_profile(verified.profile, verified.inputs, f"{name} v{version}"),
        )

    def _refuse(
        self,
        served: ServedModel,
        problem: str,
        details: dict[str, Any],
        once: tuple[str, int, str] | None = None,
        listed: bool = True,
    ) -> None:
        """List ``problem`` (if ``listed``); the first time (per ``once`` key, else per problem) also
        log it, alert and record it in the audit trail. A refusal that cannot be recorded is logged,
        never raised: the refresh goes on serving what verified."""
        if listed:
            self.pending.append(problem)
        key = once or (served.name, 0, problem)
        if key in self.alerted:
            return
        self.alerted.add(key)
        log.error("%s %s", served.name, problem)
        alert = {"event": "govdeploy.gateway.refused", "model": served.name, "reason": problem, **details}
        post_alert(self.settings.alert_webhook, alert)
        if self.audit is not None:
            try:
                self.audit(served.name, {"reason": problem, **details})
            except Exception as exc:  # the audit trail's own failure must not stop serving
                log.error("%s: the refusal was not recorded in the audit trail: %s", served.name, exc)

    def _slot(self, served: ServedModel, role: str, wanted: str | None, current: Slot | None) -> Slot | None:
        """The verified slot of version ``wanted`` (reusing ``current`` if it is that version); when it
        does not verify, the champion keeps ``current`` and the challenger is dropped."""
        if wanted is None:
            return None
        if current is not None and current.version == wanted:
            return current
        kept = current if role == registry.CHAMPION else None
        try:
            slot = self._load(served.name, wanted)
        except GovdeployError as exc:
            what = f"keeping v{kept.version}" if kept else "not serving it"
            self._refuse(
                served, f"{role} v{wanted} refused: {exc}; {what}", {"role": role, "version": wanted}
            )
            return kept
        log.info(
            "%s %s now serves v%s (verified, signature %s…)",
            served.name,
            role,
            wanted,
            slot.verified.signature_sha256[:12],
        )
        return slot

    def _newest(
        self, client: Any, served: ServedModel
    ) -> tuple[bool, ServingRecord | None, ServingRecord | None]:
        """(whether to apply it, the newest verified record, the one before it): replays, forks and
        records that vanished are refused, and the serving state stays as it is."""
        scan = self.histories[served.name].scan(
            client, self.settings.bucket, keys.trusted_keys(self.settings, "serving")
        )
        for version_id, reason in scan.refused.items():
            self._refuse(
                served,
                f"serving record version {version_id} refused: {reason}",
                {"record_version": version_id},
                once=(served.name, -1, version_id),
                listed=False,
            )
        if scan.replayed is not None and scan.newest is not None:
            old = scan.replayed
            self._refuse(
                served,
                f"an earlier serving record (#{old.sequence}, champion v{old.champion}) was re-put over "
                f"record #{scan.newest.sequence}: a replay, ignored (the highest sequence decides)",
                {"sequence": old.sequence, "newest": scan.newest.sequence},
                once=(served.name, old.sequence, serving_records.record_digest(old)),
            )
        if scan.fork is not None:
            self._refuse(
                served,
                f"two different serving records carry sequence #{scan.fork}; serving state unchanged; "
                f"{serving_records.REPUBLISH}",
                {"sequence": scan.fork},
                once=(served.name, scan.fork, "fork"),
            )
            return False, None, None
        return self._in_order(served, scan.newest), scan.newest, scan.previous

    def _in_order(self, served: ServedModel, record: ServingRecord | None) -> bool:
        """Whether ``record`` may be served after the newest verified before; remembers it if so."""
        seen = self.seen.get(served.name)
        if record is not None:
            problem = serving_records.accept(record, seen)
            if problem is None:
                self._remember(record)
                return True
            sequence, digest = record.sequence, serving_records.record_digest(record)
        elif seen is not None:
            problem, sequence, digest = f"it is missing, but record #{seen.sequence} was verified", 0, ""
        else:
            return True
        assert seen is not None
        self._refuse(
            served,
            f"serving record refused: {problem}; serving state unchanged; a replay changes nothing, "
            f"publish a new record to change it (if the bucket was reset on purpose, delete "
            f"{self.seen.path} and restart the gateway)",
            {"sequence": sequence or None, "seen": seen.sequence},
            once=(served.name, sequence, digest),
        )
        return False

    def _remember(self, record: ServingRecord) -> None:
        try:
            self.seen.remember(record)
        except StorageError as exc:  # remembered in memory; a restart may forget it
            self.pending.append(f"serving record #{record.sequence} not persisted: {exc}")
            log.error("%s serving record #%d not persisted: %s", record.model, record.sequence, exc)

    def _check_aliases(
        self, served: ServedModel, record: ServingRecord, previous: ServingRecord | None
    ) -> None:
        """Report registry aliases that disagree with the record. They change nothing served; an
        alias still naming the previous record's version is given one refresh to catch up (the
        record is written before the alias moves)."""
        for alias, recorded, before in (
            (registry.CHAMPION, record.champion, previous.champion if previous else None),
            ("challenger", record.challenger, previous.challenger if previous else None),
        ):
            try:
                version = registry.alias_version(served.name, alias, self.settings.mlflow_url)
            except GovdeployError as exc:
                self.pending.append(f"the registry's {alias} alias could not be read: {exc}")
                continue
            key, state = (served.name, alias), (version, recorded)
            if version == recorded:
                self.lagging.pop(key, None)
                continue
            if version == before and previous is not None and self.lagging.get(key) != state:
                self.lagging[key] = state  # not moved yet: judged at the next refresh
                continue
            self._refuse(
                served,
                f"{alias} points at v{version} but the signed serving record #{record.sequence} names "
                f"v{recorded}; the record decides what serves, the alias changes nothing",
                {"alias": alias, "version": version, "recorded": recorded},
            )

    def refresh(self) -> None:
        """Serve what the newest signed serving record names, where it verifies."""
        with self.refreshing:
            if self.client is None:  # one client for every refresh: making one costs more than a refresh
                self.client = s3_client(self.settings)
            client = self.client
            for served in self.models.values():
                self._refresh_one(client, served)

    def _refresh_one(self, client: Any, served: ServedModel) -> None:
        self.pending = []
        try:
            self._apply(client, served)
        finally:
            with self.lock:
                served.problems = self.pending

    def _apply(self, client: Any, served: ServedModel) -> None:
        try:
            apply, record, previous = self._newest(client, served)
        except GovdeployError as exc:
            self._refuse(served, f"serving record refused: {exc}; serving state unchanged", {})
            return
        if not apply or record is None:
            return
        champion = self._slot(served, registry.CHAMPION, record.champion, served.champion)
        challenger = self._slot(served, "challenger", record.challenger, served.challenger)
        weight = self._weight(served, record) if challenger else 0
        with self.lock:
            served.champion, served.challenger = champion, challenger
            served.challenger_weight = weight
            served.killed = record.killed
        self._check_aliases(served, record, previous)

    def _weight(self, served: ServedModel, record: ServingRecord) -> int:
        """The challenger's share: the record's, or 0 when the canary it describes went stale."""
        if self.canary_stale_seconds is None:
            return record.challenger_weight
        try:
            stale = rollout.orphaned(record, True, self.canary_stale_seconds)
        except (ValueError, TypeError) as exc:  # an issued_at the record's signer wrote but nothing can read
            stale = f"serving record #{record.sequence} has an unreadable issued_at ({exc})"
        if stale is None:
            return record.challenger_weight
        self._refuse(
            served,
            f"{stale}: serving the champion only until a newer serving record (canary-watch ends the "
            f"canary, or `govdeploy canary abort --model {served.name}`)",
            {"sequence": record.sequence, "challenger": record.challenger, "stale": True},
            once=(served.name, record.sequence, "stale"),
        )
        return 0
