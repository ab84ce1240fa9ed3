"""Changes of serving state: promotion, canary steps and outcome, rollback to a verified champion.

Each change is one signed serving record, written first: the record is the commit point and the
only thing the gateway serves by. The registry's aliases (and the traffic tag shown in MLflow) are
moved after it, for people; a failure there changes nothing served and the gateway reports the
disagreement. What to return to on rollback is read from the signed history of records, never from
a tag anyone with registry access can edit.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from itertools import pairwise

from govdeploy.backends import registry
from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import Settings
from govdeploy.errors import GovdeployError, RolloutError
from govdeploy.trust import keys, serving_records
from govdeploy.trust.roots import TrustRoots
from govdeploy.trust.serving_records import History, Scan, ServingRecord
from govdeploy.trust.versions import verify_version

log = logging.getLogger("govdeploy.rollout")

TRAFFIC_TAG = "govdeploy.traffic.challenger"


class KEEP:
    """``publish(killed=KEEP)``: the kill switch as the newest record has it."""


CHALLENGER = registry.CHALLENGER
ENDS = (
    "to end a canary: `govdeploy canary abort --model MODEL`; to stop serving a model at once: its gateway's "
    "kill switch (POST /v1/models/MODEL/kill)"
)


# one History per bucket and model in this process: versions are read and verified once, and the
# versions are listed again only after a write
_HISTORIES: dict[tuple[str, str, str], History] = {}
_SCANNING = threading.Lock()


def _scan(settings: Settings, model: str) -> tuple[History, Scan]:
    """This process's history of ``model``'s records, brought up to date (StorageError when the bucket
    cannot be read)."""
    with _SCANNING:
        history = _HISTORIES.setdefault(
            (settings.s3_url, settings.bucket, model), History(model, max_reads=1 << 30)
        )
        scan = history.scan(s3_client(settings), settings.bucket, keys.trusted_keys(settings, "serving"))
    return history, scan


def history(settings: Settings, model: str) -> list[ServingRecord]:
    """Every verified record of ``model``, oldest first (StorageError when the bucket cannot be read)."""
    found, _ = _scan(settings, model)
    records = {r.sequence: r for r in found.versions.values() if isinstance(r, ServingRecord)}
    return [records[sequence] for sequence in sorted(records)]


def serving_now(settings: Settings, model: str) -> ServingRecord | None:
    """The newest signed serving record of ``model`` (what the gateways serve), or None;
    SignatureError when two different records carry the newest sequence."""
    return _scan(settings, model)[1].record(model)


def serving_champion(settings: Settings, model: str) -> str | None:
    """The champion the newest signed serving record names (what serves), or None."""
    record = serving_now(settings, model)
    return record.champion if record else None


def publish(
    settings: Settings,
    model: str,
    *,
    champion: str | None,
    challenger: str | None,
    weight: int,
    action: str,
    issuer: str,
    audit_record: str | None = None,
    killed: str | type[KEEP] | None = KEEP,
) -> ServingRecord:
    """Sign and write the serving record of this state, numbered one above every earlier record.

    The kill switch stays as the newest record has it unless ``killed`` is given: a promotion or a
    canary step while a model is shut down keeps it shut down."""
    if killed is KEEP:
        now = serving_now(settings, model)
        killed = now.killed if now else None
    assert killed is None or isinstance(killed, str)
    highest = _scan(settings, model)[0].highest()
    record = ServingRecord(
        model=model,
        champion=champion,
        challenger=challenger,
        challenger_weight=weight if challenger else 0,
        issued_at=serving_records.now(),
        issuer=issuer,
        sequence=highest + 1,
        audit_record=audit_record,
        action=action,
        killed=killed,
    )
    serving_records.write(s3_client(settings), settings.bucket, record, keys.signing_key(settings, "serving"))
    return record


def switch(settings: Settings, model: str, reason: str | None, issuer: str) -> ServingRecord:
    """The kill switch: a record that shuts every version of ``model`` down (``reason``) or, with
    None, lets the versions it names answer again. Durable and shared: every gateway, also after
    a restart, follows it."""
    now = serving_now(settings, model)
    return publish(
        settings,
        model,
        champion=now.champion if now else None,
        challenger=now.challenger if now else None,
        weight=now.challenger_weight if now else 0,
        action="kill" if reason is not None else "revive",
        issuer=issuer,
        killed=reason,
    )


def sync_registry(settings: Settings, record: ServingRecord) -> str | None:
    """Point the aliases (and the traffic tag) at what ``record`` serves; the problem, or None.

    Never raises: the record already decided; a failure here only leaves labels behind, which the
    gateway reports and the next change repairs."""
    url, model = settings.mlflow_url, record.model
    try:
        registry.set_model_tag(model, TRAFFIC_TAG, str(record.challenger_weight), url)
        if record.challenger is None:
            registry.delete_alias(model, CHALLENGER, url)
        else:
            registry.set_alias(model, CHALLENGER, record.challenger, url)
        if record.champion is not None:
            registry.set_alias(model, registry.CHAMPION, record.champion, url)
    except GovdeployError as exc:
        log.error("%s: aliases not moved to serving record #%d: %s", model, record.sequence, exc)
        return f"the registry's aliases of {model} do not follow serving record #{record.sequence} yet: {exc}"
    return None


def _require(record: ServingRecord | None, model: str) -> ServingRecord:
    if record is None or record.champion is None:
        raise RolloutError(f"{model} has no signed serving record with a champion; release one first")
    return record


def _require_challenger(record: ServingRecord | None, model: str, version: str) -> ServingRecord:
    record = _require(record, model)
    if record.challenger != version:
        raise RolloutError(
            f"{model} v{version} is not the serving challenger (serving record #{record.sequence} names "
            f"{'v' + record.challenger if record.challenger else 'none'}); promote it with the release "
            "flow and a canary first"
        )
    return record


def promote(
    settings: Settings, model: str, version: str, alias: str, issuer: str, audit_record: str | None = None
) -> tuple[ServingRecord, str | None]:
    """Serve a freshly signed release: as champion, or as challenger at weight 0 beside the champion.
    Returns the record and the champion before it (the same on a retry of a promotion that wrote its
    record: the champion the version replaced)."""
    records = history(settings, model)
    now = records[-1] if records else None
    champion, challenger = (
        (version, None) if alias == registry.CHAMPION else (_require(now, model).champion, version)
    )
    previous = next((r.champion for r in reversed(records) if r.champion != version), None)
    if now is not None and (now.champion, now.challenger) == (champion, challenger):
        return now, previous  # a retry: the record was written, only what follows it was not
    record = publish(
        settings,
        model,
        champion=champion,
        challenger=challenger,
        weight=0,
        action="promotion",
        issuer=issuer,
        audit_record=audit_record,
    )
    return record, previous


def dropped_challenger(settings: Settings, record: ServingRecord) -> str | None:
    """The challenger the record before ``record`` had and ``record`` no longer serves (a promotion
    over a leftover challenger drops it), or None; also None when the history cannot be read (the
    answer only names a stage tag, after the change committed)."""
    try:
        records = history(settings, record.model)
    except GovdeployError as exc:
        log.warning(
            "%s: the challenger dropped by record #%d is unknown: %s", record.model, record.sequence, exc
        )
        return None
    before = next((r for r in reversed(records) if r.sequence < record.sequence), None)
    if before is None or before.challenger in (None, record.champion, record.challenger):
        return None
    return before.challenger


def set_weight(settings: Settings, model: str, version: str, weight: int, issuer: str) -> ServingRecord:
    """Send ``weight`` % (0-100) of the traffic to challenger ``version``."""
    now = _require_challenger(serving_now(settings, model), model, version)
    return publish(
        settings,
        model,
        champion=now.champion,
        challenger=version,
        weight=weight,
        action="canary-step",
        issuer=issuer,
    )


def abort_canary(
    settings: Settings, model: str, issuer: str, audit_record: str | None = None
) -> tuple[ServingRecord, str] | None:
    """All traffic back to the champion and the challenger removed (the record names
    ``audit_record``, the audit record announcing the abort, if any); returns the record and the
    challenger it removed, None when there was no canary."""
    now = serving_now(settings, model)
    if now is None or now.challenger is None:
        return None
    record = publish(
        settings,
        model,
        champion=now.champion,
        challenger=None,
        weight=0,
        action="canary-abort",
        issuer=issuer,
        audit_record=audit_record,
    )
    return record, now.challenger


def complete_canary(settings: Settings, model: str, version: str, issuer: str) -> tuple[ServingRecord, str]:
    """Challenger ``version`` becomes champion; returns the record and the champion it replaced."""
    now = _require_challenger(serving_now(settings, model), model, version)
    previous = now.champion
    assert previous is not None
    record = publish(
        settings,
        model,
        champion=version,
        challenger=None,
        weight=0,
        action="canary-complete",
        issuer=issuer,
    )
    return record, previous


def orphaned(record: ServingRecord | None, live: bool, stale_after_seconds: float) -> str | None:
    """Why the canary ``record`` describes has nobody judging it (no live canary run, or no step
    for longer than a step can take), or None: a challenger with traffic must always be watched."""
    if record is None or record.challenger is None or record.challenger_weight == 0:
        return None
    what = (
        f"challenger v{record.challenger} of {record.model} has {record.challenger_weight} % of the "
        f"traffic (serving record #{record.sequence})"
    )
    if not live:
        return f"{what} but no canary run of it is live"
    age = (datetime.now(UTC) - datetime.fromisoformat(record.issued_at)).total_seconds()
    if age > stale_after_seconds:
        limit = f"a step takes at most {stale_after_seconds:.0f} s"
        return f"{what} but its canary has not moved for {age:.0f} s ({limit})"
    return None


def rollback_target(records: list[ServingRecord], model: str) -> tuple[str, str]:
    """(serving champion, the champion before it) from the signed history, oldest first.

    Versions a rollback moved away from are never returned to, so a second rollback goes one
    further back instead of back to the version rolled back from."""
    now = _require(records[-1] if records else None, model)
    current = now.champion
    retired = {
        before.champion
        for before, after in pairwise(records)
        if after.action == "rollback" and before.champion != after.champion
    }
    for record in reversed(records):
        if record.champion not in (None, current) and record.champion not in retired:
            assert current is not None and record.champion is not None
            return current, record.champion
    raise RolloutError(
        f"{model} v{current} is the first champion in the signed serving history (or every earlier one "
        f"was rolled back from), so there is no earlier verified champion to return to; {ENDS}"
    )


def rollback(
    settings: Settings, model: str, roots: TrustRoots, issuer: str
) -> tuple[ServingRecord, str, str]:
    """Serve the previous champion again (re-verified: release signature and approvals) with no
    challenger; returns the record, the version rolled back from and the one returned to."""
    current, target = rollback_target(history(settings, model), model)
    verify_version(model, target, roots=roots, level="release", tracking_uri=settings.mlflow_url)
    record = publish(
        settings,
        model,
        champion=target,
        challenger=None,
        weight=0,
        action="rollback",
        issuer=issuer,
    )
    return record, current, target
