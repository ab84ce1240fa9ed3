"""This deployment's trail: which key its records are checked under, and what its endpoint is."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.config.settings import Settings
from govdeploy.errors import ConfigError
from govdeploy.trust.audit_trail import (
    AuditKey,
    Probe,
    audit_public_key,
    classify_endpoint,
    endpoint_warnings,
    key_findings,
)

MOTO_CONFIG = '{"batch": {"use_docker": true}, "lambda": {"use_docker": true}}'
MOTO_SERVER = "Werkzeug/3.1.9 Python/3.11.7, amazon.com"
S3_ERROR = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code></Error>'


def write_public(path: Path) -> ed25519.Ed25519PublicKey:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return key


@pytest.mark.parametrize(
    ("probe", "server", "kind"),
    [
        (Probe(status=201, body=MOTO_CONFIG), MOTO_SERVER, "emulator"),
        (Probe(status=200, body=MOTO_CONFIG), "", "emulator"),
        (Probe(status=403, body=S3_ERROR), "AmazonS3", "aws"),
        (Probe(status=301, body=S3_ERROR), "AmazonS3", "aws"),
        # never fail open: what is not positively AWS S3 is unknown, not "real"
        (Probe(error="ConnectTimeout: timed out"), "AmazonS3", "unknown"),
        (Probe(status=503, body="busy"), "AmazonS3", "unknown"),
        (Probe(status=404, body=S3_ERROR), "MinIO", "unknown"),
        (Probe(status=200, body="<html>not moto</html>"), MOTO_SERVER, "unknown"),
        (Probe(status=201, body=MOTO_CONFIG), "AmazonS3", "unknown"),
    ],
)
def test_the_endpoint_is_classified_from_the_probe_and_the_server_header(
    probe: Probe, server: str, kind: str
) -> None:
    assert classify_endpoint(probe, server) == kind


def test_the_emulator_notice_is_plain_and_absent_on_aws() -> None:
    (notice,) = endpoint_warnings("emulator", "http://127.0.0.1:9900", Probe(status=201), MOTO_SERVER)
    assert notice.startswith(
        "the bucket's endpoint http://127.0.0.1:9900 is moto, an S3 emulator that does not enforce Object Lock"
    )
    assert endpoint_warnings("aws", "https://s3.amazonaws.com", Probe(status=403), "AmazonS3") == []
    (unknown,) = endpoint_warnings("unknown", "http://x", Probe(error="ConnectError: refused"), "")
    assert "could not confirm" in unknown and "no answer (ConnectError: refused)" in unknown


def test_an_unpinned_key_is_a_warning_on_the_emulator_and_a_problem_elsewhere(tmp_path: Path) -> None:
    key = AuditKey(
        write_public(tmp_path / "keys" / "audit.pub"), tmp_path / "keys" / "audit.pub", pinned=False
    )
    problems, warnings = key_findings(key, "emulator", tmp_path)
    assert (
        problems == []
        and "the audit public key is not pinned (GOVDEPLOY_AUDIT_PUBLIC_KEY is unset and trust.yaml names a key file)"
        in warnings[0]
    )
    for kind in ("aws", "unknown"):
        problems, warnings = key_findings(key, kind, tmp_path)  # type: ignore[arg-type]
        assert warnings == [] and problems[0].endswith(
            "(the development key is accepted on the local emulator only)"
        )


def test_a_pinned_key_beside_the_log_is_reported(tmp_path: Path) -> None:
    beside = AuditKey(
        write_public(tmp_path / "state" / "keys" / "audit.pub"),
        tmp_path / "state" / "keys" / "audit.pub",
        True,
    )
    problems, warnings = key_findings(beside, "aws", tmp_path / "state")
    assert problems == [] and "lies in the state directory" in warnings[0]
    elsewhere = AuditKey(write_public(tmp_path / "pinned.pub"), tmp_path / "pinned.pub", True)
    assert key_findings(elsewhere, "aws", tmp_path / "state") == ([], [])


def test_the_pinned_key_is_read_from_the_setting(tmp_path: Path) -> None:
    write_public(tmp_path / "state" / "keys" / "audit.pub")
    pinned = write_public(tmp_path / "pinned.pub")
    key = audit_public_key(Settings(state_dir=tmp_path / "state", audit_public_key=tmp_path / "pinned.pub"))
    assert key.pinned and key.key.public_bytes_raw() == pinned.public_bytes_raw()
    unpinned = audit_public_key(Settings(state_dir=tmp_path / "state"))
    assert not unpinned.pinned and unpinned.path == tmp_path / "state" / "keys" / "audit.pub"
    with pytest.raises(
        ConfigError, match=r"GOVDEPLOY_AUDIT_PUBLIC_KEY=.*missing.pub does not exist; point it at"
    ):
        audit_public_key(Settings(state_dir=tmp_path / "state", audit_public_key=tmp_path / "missing.pub"))


def test_an_inline_audit_key_in_trust_yaml_is_pinned(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    indented = "\n".join("        " + line for line in pem.strip().splitlines())
    roles = "\n".join(
        f"  {role}:\n    - key_file: {role}.pub" for role in ("candidate", "release", "serving")
    )
    (config / "trust.yaml").write_text(f"roles:\n{roles}\n  audit:\n    - public_key: |\n{indented}\n")
    found = audit_public_key(Settings(_env_file=None, config_dir=config, state_dir=tmp_path / "state"))
    assert found.pinned and found.path == config / "trust.yaml"
    assert found.key.public_bytes_raw() == key.public_bytes_raw()
