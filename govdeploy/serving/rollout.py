"""Moving traffic and aliases: canary steps, canary outcome, and rollback to a verified champion.

After each change, ``publish`` writes the signed serving record the gateway serves by, numbered one
above every earlier record of the model.
"""

from __future__ import annotations

from govdeploy.backends import registry
from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import Settings
from govdeploy.errors import RegistryError
from govdeploy.trust import keys, serving_records
from govdeploy.trust.roots import TrustRoots
from govdeploy.trust.serving_records import ServingRecord
from govdeploy.trust.versions import verify_version

TRAFFIC_TAG = "govdeploy.traffic.challenger"
ROLLBACK_TAG = f"{registry.TAG}rollback_target"
CHALLENGER = registry.CHALLENGER


def set_weight(model: str, weight: int, tracking_uri: str) -> None:
    """Share of traffic (0-100) the gateway sends to the challenger."""
    registry.set_model_tag(model, TRAFFIC_TAG, str(weight), tracking_uri)


def abort_canary(model: str, tracking_uri: str) -> None:
    """Challenger weight 0 first (the gateway drops it within a poll), then the alias."""
    set_weight(model, 0, tracking_uri)
    registry.delete_alias(model, CHALLENGER, tracking_uri)


def complete_canary(model: str, version: str, tracking_uri: str) -> str | None:
    """The challenger becomes champion; the old champion is kept as its rollback target."""
    previous = registry.alias_version(model, registry.CHAMPION, tracking_uri)
    if previous is not None:
        registry.set_version_tags(model, version, {ROLLBACK_TAG: previous}, tracking_uri)
    registry.set_alias(model, registry.CHAMPION, version, tracking_uri)
    abort_canary(model, tracking_uri)
    return previous


def rollback_target(model: str, tracking_uri: str) -> tuple[str, str]:
    """(current champion, the verified version to return to)."""
    current = registry.alias_version(model, registry.CHAMPION, tracking_uri)
    if current is None:
        raise RegistryError(f"model {model!r} has no champion to roll back from")
    target = registry.version_tags(model, current, tracking_uri).get(ROLLBACK_TAG)
    if not target:
        raise RegistryError(
            f"{model} v{current} records no previous champion ({ROLLBACK_TAG}); nothing to return to"
        )
    return current, target


def rollback(model: str, roots: TrustRoots, tracking_uri: str) -> tuple[str, str]:
    """Return serving to the previous champion, after re-verifying its release signature."""
    current, target = rollback_target(model, tracking_uri)
    verify_version(model, target, roots=roots, level="release", tracking_uri=tracking_uri)
    abort_canary(model, tracking_uri)
    registry.set_alias(model, registry.CHAMPION, target, tracking_uri)
    return current, target


def publish(settings: Settings, model: str, issuer: str, audit_record: str | None = None) -> ServingRecord:
    """Write the signed serving record of the serving state the registry now holds.

    Its sequence follows the highest of every record of ``model`` in the bucket; ``audit_record`` is
    the id of the audit record of the decision, if the caller has one.
    """
    url = settings.mlflow_url
    client = s3_client(settings)
    weight = registry.model_tag(model, TRAFFIC_TAG, url)
    record = ServingRecord(
        model=model,
        champion=registry.alias_version(model, registry.CHAMPION, url),
        challenger=registry.alias_version(model, CHALLENGER, url),
        challenger_weight=int(weight) if weight and weight.isdigit() else 0,
        issued_at=serving_records.now(),
        issuer=issuer,
        sequence=serving_records.next_sequence(
            client, settings.bucket, model, keys.trusted_keys(settings, "serving")
        ),
        audit_record=audit_record,
    )
    serving_records.write(client, settings.bucket, record, keys.signing_key(settings, "serving"))
    return record
