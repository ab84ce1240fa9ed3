"""Model-signing manifests of a model directory: hashed once, signed, and checked against a signature.

A manifest pairs every file a signature covers with its SHA-256 (model signing's ``files``
serialization). One streaming pass builds it (files hashed in parallel, read in 1 MiB chunks, so
memory stays the same whatever the file sizes), and everything else comes from it, never from a
second read: the signature bundle (``sign_manifest``), govdeploy's artifact digest
(``artifact_digest_of``) and the comparison with a signed manifest (``differences``).

``signed_manifest`` checks a bundle's signature against each trusted key before anything is hashed,
so a directory is hashed once however many keys a role trusts. Bundles stay in the OpenSSF model
signing format (a DSSE envelope over an in-toto statement in a Sigstore bundle, ECDSA key): the
stock ``model_signing.verifying`` API verifies them with the right key. The model-signing
internals used here (payload, key signer and verifier, bundle reader) are those of the pinned
model-signing version; tests check bundles both ways against its public API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, cast

from govdeploy.errors import SignatureError

if TYPE_CHECKING:
    from model_signing import manifest


def hash_directory(model_dir: Path, ignored: Iterable[Path]) -> manifest.Manifest:
    """Every file of ``model_dir`` but ``ignored`` (and their contents) with its SHA-256, in one pass.

    Model signing's own file serialization: the bytes a stock verifier hashes, the same way."""
    from model_signing import hashing

    config = hashing.Config().set_ignored_paths(paths=list(ignored), ignore_git_paths=False)
    try:
        return config.hash(model_dir)
    except (ValueError, OSError) as exc:  # a symlink or special file appeared, a file went away
        raise SignatureError(f"{model_dir} cannot be hashed: {exc}") from None


def file_digests(found: manifest.Manifest) -> dict[str, str]:
    """Relative POSIX path → hex SHA-256 of each file of a ``files`` manifest."""
    return {d.identifier: d.digest.digest_hex for d in found.resource_descriptors()}


def artifact_digest_of(found: manifest.Manifest, excluded: Iterable[str] = ()) -> str:
    """SHA-256 over the (path, file SHA-256) pairs of the manifest's files but ``excluded``, in path
    order, one ``path NUL hex-digest`` line each: govdeploy's artifact digest, from the manifest's
    per-file digests (the value a separate pass over the same files gives)."""
    skip = set(excluded)
    digests = file_digests(found)
    paths = sorted(PurePosixPath(name) for name in digests if name not in skip)
    lines = (f"{path}\0{digests[str(path)]}" for path in paths)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def sign_manifest(found: manifest.Manifest, private_key: Path) -> str:
    """The model-signing bundle (JSON text) of ``found``, signed with an ECDSA private key."""
    from model_signing._signing import sign_ec_key, sign_sigstore_pb, signing

    signature = sign_ec_key.Signer(private_key).sign(signing.Payload(found))
    return str(cast(sign_sigstore_pb.Signature, signature).bundle.to_json())  # what a key signer makes


def signed_manifest(signature: Path, trusted_keys: Iterable[Path]) -> tuple[manifest.Manifest, Path]:
    """The manifest a bundle signs and the trusted key whose signature it carries; no file is hashed.

    SignatureError listing why each key refused it (a malformed bundle is refused, not a crash)."""
    from model_signing._signing import sign_ec_key, sign_sigstore_pb

    try:
        bundle = sign_sigstore_pb.Signature.read(signature)
    except Exception as exc:  # the reader raises whatever the JSON lacks (KeyError, TypeError, ...)
        raise SignatureError(f"it is not a model-signing bundle ({type(exc).__name__}: {exc})") from None
    reasons = []
    for key in trusted_keys:
        try:
            return sign_ec_key.Verifier(key).verify(bundle), key
        except Exception as exc:  # a wrong key, a bad signature or a malformed payload
            reasons.append(f"{key.name}: {type(exc).__name__}: {exc}")
    raise SignatureError("; ".join(reasons))


def signed_ignore_paths(found: manifest.Manifest) -> set[str]:
    """The paths a manifest's serialization leaves out (as recorded in the signed statement)."""
    return {str(path) for path in found.serialization_type.get("ignore_paths", [])}


def differences(actual: manifest.Manifest, expected: manifest.Manifest) -> list[str]:
    """What differs between the files found and the files signed, one sentence per file."""
    ours, theirs = actual.serialization_type, expected.serialization_type
    if (ours["method"], ours["hash_type"]) != (theirs.get("method"), theirs.get("hash_type")):
        return [
            f"it was made with {theirs.get('method')!r} serialization and {theirs.get('hash_type')!r} "
            f"hashes, not {ours['method']!r} and {ours['hash_type']!r}"
        ]
    found, signed = file_digests(actual), file_digests(expected)
    changes = [f"{name} is not signed (an added or renamed file)" for name in sorted(found.keys() - signed)]
    changes += [f"{name} is missing (a removed or renamed file)" for name in sorted(signed.keys() - found)]
    changes += [
        f"{name} has sha256 {found[name][:16]}…, the signature says {signed[name][:16]}…"
        for name in sorted(found.keys() & signed.keys())
        if found[name] != signed[name]
    ]
    return changes
