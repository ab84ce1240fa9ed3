"""infra/compose.yaml: valid against the Compose Specification's schema (vendored, offline), images
pinned, govdeploy's containers non-root and read-only, ports on loopback only, and what it
configures agrees with govdeploy: its settings load, one bucket, one work pool, the credential files
`govdeploy keys init` writes, the gateway's health route and port."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import jsonschema
import pytest
import yaml

from govdeploy.config.settings import Settings
from govdeploy.stack import credentials
from tests.infra.manifests import COMPOSE, ROOT, unknown_govdeploy_variables

SCHEMA = ROOT / "tests" / "infra" / "schemas" / "compose-spec.json"
BUILT = "govdeploy:compose"  # the image built from the repository's Dockerfile


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def _ours(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if s.get("image") == BUILT}


def _text(service: dict[str, Any]) -> str:
    """A service's entrypoint and command as one string."""
    return " ".join(str(part) for key in ("entrypoint", "command") for part in _words(service.get(key)))


def _words(value: Any) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else [str(v) for v in value]


def _argument(service: dict[str, Any], option: str) -> str:
    return next(w.split("=", 1)[1] for w in _words(service["command"]) if w.startswith(f"{option}="))


def test_the_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_check_refuses_an_unknown_key(compose: dict[str, Any]) -> None:
    broken = {
        **compose,
        "services": {**compose["services"], "gateway": {**compose["services"]["gateway"], "portz": []}},
    }
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert not validator.is_valid(broken)


def test_every_image_is_pinned_or_built_here(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service["image"]
        if image == BUILT:
            continue
        _, _, tag = image.rpartition(":")
        assert "@sha256:" in image or (tag and "/" not in tag and tag != "latest"), f"{name}: {image}"
    builders = [s for s in services.values() if "build" in s]
    assert [(b["image"], b["build"]["context"], b["build"]["dockerfile"]) for b in builders] == [
        (BUILT, "..", "Dockerfile")
    ]
    assert (COMPOSE.parent / ".." / "Dockerfile").resolve().is_file()


def test_govdeploys_containers_run_non_root_and_read_only(services: dict[str, dict[str, Any]]) -> None:
    ours = _ours(services)
    assert {"bootstrap", "mlflow", "prefect-server", "deployments", "worker", "gateway"} <= ours.keys()
    for name, service in ours.items():
        uid = service["user"].split(":")[0]
        assert uid.isdigit() and int(uid) >= 1000, name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name


def test_published_ports_listen_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    published = [(name, port) for name, s in services.items() for port in s.get("ports", [])]
    assert published
    for name, port in published:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def test_environment_names_only_variables_govdeploy_reads(services: dict[str, dict[str, Any]]) -> None:
    names = {name for s in services.values() for name in _environment(s)}
    assert unknown_govdeploy_variables(names) == set()


@pytest.mark.parametrize("service_name", ["gateway", "worker", "deployments"])
def test_the_clients_settings_load_and_point_at_the_stacks_servers(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, service_name: str
) -> None:
    for name in [n for n in os.environ if n.startswith(("GOVDEPLOY_", "MLFLOW_", "PREFECT_", "AWS_"))]:
        monkeypatch.delenv(name)
    for name, value in _environment(services[service_name]).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.profile == "external"
    assert settings.mlflow_url == "http://mlflow:5000"
    assert settings.prefect_api_url == "http://prefect-server:4200/api"
    assert settings.s3_endpoint == "http://minio:9000"
    assert _argument(services["mlflow"], "--port") == "5000"
    assert "--port 4200" in _text(services["prefect-server"])


def test_one_bucket_everywhere(services: dict[str, dict[str, Any]], compose: dict[str, Any]) -> None:
    buckets = {
        _environment(s)["GOVDEPLOY_BUCKET"]
        for s in _ours(services).values()
        if "GOVDEPLOY_BUCKET" in _environment(s)
    }
    assert len(buckets) == 1
    (bucket,) = buckets
    assert _argument(services["mlflow"], "--artifacts-destination").startswith(f"s3://{bucket}/")
    assert f"mc mb --ignore-existing --with-lock local/{bucket};" in _text(services["minio-init"])
    policy = json.loads(compose["configs"]["s3-policy"]["content"])
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}


def test_govdeploys_s3_user_cannot_undo_object_lock(compose: dict[str, Any]) -> None:
    policy = json.loads(compose["configs"]["s3-policy"]["content"])
    allowed = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert all(statement["Effect"] == "Allow" for statement in policy["Statement"])
    forbidden = {
        "s3:*",
        "s3:DeleteObjectVersion",
        "s3:BypassGovernanceRetention",
        "s3:PutBucketObjectLockConfiguration",
        "s3:PutBucketVersioning",
        "s3:PutBucketPolicy",
        "s3:DeleteBucket",
    }
    assert allowed & forbidden == set()


def test_the_worker_serves_the_pool_the_deployments_go_to(services: dict[str, dict[str, Any]]) -> None:
    pool = _environment(services["deployments"])["GOVDEPLOY_WORK_POOL"]
    assert f"prefect work-pool create {pool} --type process" in _text(services["deployments"])
    worker = _words(services["worker"]["command"])
    assert worker[worker.index("--pool") + 1] == pool


def test_credentials_are_the_files_keys_init_writes(
    services: dict[str, dict[str, Any]], compose: dict[str, Any]
) -> None:
    everything = " ".join(_text(s) for s in services.values())
    for name in (credentials.SERVICE_PASSWORD, credentials.PREFECT_AUTH, credentials.FLASK_SECRET):
        assert f"/var/lib/govdeploy/keys/servers/{name}" in everything
    ini = compose["configs"]["mlflow-basic-auth"]["content"]
    assert f"admin_username = {credentials.SERVICE_USER}\n" in ini
    assert "default_permission = READ\n" in ini
    for service in _ours(services).values():
        assert (
            _environment(service).get("MLFLOW_TRACKING_USERNAME", credentials.SERVICE_USER)
            == credentials.SERVICE_USER
        )


def test_the_stack_secrets_the_services_read_are_the_ones_bootstrap_writes(
    services: dict[str, dict[str, Any]], compose: dict[str, Any]
) -> None:
    script = compose["configs"]["stack-secrets"]["content"]
    compile(script, "stack-secrets.py", "exec")
    written = set(re.findall(r'put\("([a-z0-9-]+)"', script))
    everything = yaml.safe_dump(services)
    read = set(re.findall(r"keys/stack/([a-z0-9-]+)", everything))
    assert read and read <= written, read - written


def test_the_gateways_health_check_is_its_health_route_on_its_port(
    services: dict[str, dict[str, Any]],
) -> None:
    from govdeploy.serving.gateway import run
    from govdeploy.serving.gateway.api.routes import ops

    gateway = services["gateway"]
    command = _words(gateway["command"])
    assert command[:3] == ["python", "-m", "govdeploy.serving.gateway.run"]  # the launcher of its workers
    assert run.parser().parse_args(command[3:]).host == "0.0.0.0"
    port = _argument(gateway, "--port")
    assert _environment(gateway)["GOVDEPLOY_GATEWAY_PORT"] == port
    assert f"127.0.0.1:{port}:{port}" in gateway["ports"]
    probe = " ".join(gateway["healthcheck"]["test"])
    (route,) = re.findall(rf"http://127\.0\.0\.1:{port}(/\w+)", probe)
    assert route in {getattr(r, "path", None) for r in ops.router.routes}
    assert route == "/healthz"
