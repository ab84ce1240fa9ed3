"""Rotating an approver's key (``govdeploy keys rotate --role approver --approver ID --out PATH``).

At one moment T, a whole second, as ``govdeploy.trust.rotation`` does for the roles:

- a new Ed25519 pair is written to ``PATH`` (private, 0600, never over an existing file) and
  ``PATH.pub``; the private key is the approver's to keep (it is never stored elsewhere);
- ``approvers.yaml`` lists the approver's keys (``keys:``): the new public key inline with
  ``valid_from: T`` first, then the old ones, those that signed until now with ``retired_at: T``:
  they keep verifying the statements issued before T and nothing issued after it; every other
  line of the file, comments included, stays as it was;
- an audit record ``key.rotated`` (role ``approver``) names the approver, both fingerprints and T.
  If it cannot be written, approvers.yaml is put back and the new key files are removed.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.config.approvers import ApproverKey, Approvers, dump_approver_keys, load_approvers
from govdeploy.config.files import parse_model, read_text
from govdeploy.config.settings import Settings
from govdeploy.errors import AuditError, ConfigError
from govdeploy.trust.approver_keys import approver_key_ring
from govdeploy.trust.audit import AuditLog
from govdeploy.trust.keys import fingerprint, pem_private, pem_public
from govdeploy.trust.rotation import ACTION, Rotation, file_mode, whole_second, write_atomic


def _fresh_out(out: Path, approver_id: str) -> None:
    for path in (out, out.with_suffix(".pub")):
        if path.exists():
            raise ConfigError(
                f"{path} exists; give --out a new file for {approver_id}'s new private key (a key file "
                "is never overwritten)"
            )
    if not out.parent.is_dir():
        raise ConfigError(f"the directory {out.parent} of --out does not exist; create it first")


def _rotated_keys(approvers: Approvers, approver_id: str, new_pem: bytes, at: datetime) -> list[ApproverKey]:
    """The approver's keys after T: the new one first, those signing until T retired at T."""
    old = approvers.get(approver_id).key_entries()
    if not any(key.signs_at(at) for key in old):
        raise ConfigError(
            f"approver {approver_id!r} has no key that signs at {at.isoformat()} in approvers.yaml; "
            "add the approver's current key there by hand"
        )
    kept = [key.model_copy(update={"retired_at": at}) if key.signs_at(at) else key for key in old]
    return [ApproverKey(public_key=new_pem.decode(), valid_from=at), *kept]


def _new_text(settings: Settings, text: str, approver_id: str, keys: list[ApproverKey]) -> str:
    """approvers.yaml with the approver's new keys, checked to load back to exactly those keys."""
    rewritten = dump_approver_keys(text, approver_id, keys)
    path = settings.approvers_path
    parsed = parse_model(Approvers, yaml.safe_load(rewritten), path, "approvers")
    if parsed.get(approver_id).key_entries() != keys:
        raise ConfigError(f"{path} could not be rewritten for {approver_id!r}; rotate this key by hand")
    return rewritten


def _write_pair(out: Path, key: ed25519.Ed25519PrivateKey) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as private:
        private.write(pem_private(key))
    out.with_suffix(".pub").write_bytes(pem_public(key))


def rotate_approver(
    settings: Settings, approver_id: str, out: Path, audit: AuditLog, at: datetime | None = None
) -> Rotation:
    """Rotate ``approver_id``'s key at T (``at``, else the next whole second): see the module
    docstring. ConfigError when it cannot be done here; AuditError (nothing rotated) when the
    audit record cannot be written."""
    approvers = load_approvers(settings.approvers_path)
    text = read_text(settings.approvers_path, "approvers")
    _fresh_out(out, approver_id)
    retired = fingerprint(approver_key_ring(approvers, approver_id, settings.keys_dir)[0].pem)
    moment = whole_second(at)
    new_key = ed25519.Ed25519PrivateKey.generate()
    new_pem = pem_public(new_key)
    rewritten = _new_text(settings, text, approver_id, _rotated_keys(approvers, approver_id, new_pem, moment))
    _write_pair(out, new_key)
    write_atomic(settings.approvers_path, rewritten.encode(), file_mode(settings.approvers_path))
    current = fingerprint(new_pem)
    payload = {"role": "approver", "approver": approver_id, "retired_key": retired, "new_key": current}
    try:
        record = audit.append(ACTION, settings.user, {**payload, "at": moment.isoformat()})
    except Exception as exc:  # the anchors' bucket, the log file
        write_atomic(settings.approvers_path, text.encode(), file_mode(settings.approvers_path))
        out.unlink(missing_ok=True)
        out.with_suffix(".pub").unlink(missing_ok=True)
        raise AuditError(
            f"the key of approver {approver_id!r} was not rotated: its audit record could not be written "
            f"({exc}); start the stack ('govdeploy up') and rotate again"
        ) from exc
    return Rotation("approver", retired, current, moment, record.seq, approver_id)
