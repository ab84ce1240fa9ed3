"""infra/k8s: every resource valid against the Kubernetes schemas (kubernetes-validate, strict, offline),
the work pool's base job template renders a valid Job of the shape the Prefect Kubernetes worker
requires, pods run non-root on a read-only root file system, keys arrive as files (those the
configuration names, each role's private key only where that role signs), the gateway is probed on
its real health route and port and kept available, and the settings load as govdeploy reads them."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prefect.utilities.schema_tools import ValidationError, is_valid_schema, validate

from govdeploy.config.settings import Settings
from govdeploy.serving.gateway import run
from govdeploy.serving.gateway.api.routes import ops
from tests.infra.manifests import (
    IMAGE,
    JOB_TEMPLATE,
    K8S,
    KUBERNETES_VERSION,
    PREFECT_YAML,
    ROOT,
    api_digest_files,
    approver_key_files,
    containers,
    job_template,
    kubernetes_documents,
    kubernetes_files,
    mount_path,
    pod_specs,
    projected_files,
    sample_job,
    trusted_key_files,
    unknown_govdeploy_variables,
    volume,
)

KUSTOMIZATION = K8S / "kustomization.yaml"
STATE_DIR = PurePosixPath("/var/lib/govdeploy")
# credentials that reach processes as environment variables (their clients read them there); keys
# and every other secret are mounted as files
ENV_SECRETS = {
    ("govdeploy-mlflow-client", "password"),
    ("govdeploy-prefect-auth", "auth-string"),
    ("govdeploy-postgres", "mlflow-password"),
    ("govdeploy-postgres", "prefect-password"),
    ("govdeploy-mlflow-server", "flask-secret-key"),
}
# what the Prefect Kubernetes worker demands of a job manifest (prefect_kubernetes.worker)
WORKER_REQUIRED = {"parallelism": 1, "completions": 1, "restartPolicy": "Never"}


def _find(kind: str, name: str) -> dict[str, Any]:
    return next(
        doc for _, doc in kubernetes_documents() if doc["kind"] == kind and doc["metadata"]["name"] == name
    )


def _gateway() -> dict[str, Any]:
    return _find("StatefulSet", "govdeploy-gateway")


def _settings_map() -> dict[str, str]:
    return dict(_find("ConfigMap", "govdeploy-settings")["data"])


def _env(container: dict[str, Any]) -> dict[str, str]:
    """A container's plain environment: the settings ConfigMap it loads, then its own values."""
    loaded = (
        _settings_map()
        if {"configMapRef": {"name": "govdeploy-settings"}} in container.get("envFrom", [])
        else {}
    )
    return {**loaded, **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e}}


def _argument(container: dict[str, Any], option: str) -> str:
    return next(w.split("=", 1)[1] for w in container["command"] if w.startswith(f"{option}="))


def _kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(KUSTOMIZATION.read_text(encoding="utf-8"))
    return loaded


def _strict(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    ("where", "document"), kubernetes_documents(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_resource_is_valid_against_the_kubernetes_schema(where: str, document: dict[str, Any]) -> None:
    _strict(document)


def test_the_schema_check_refuses_an_unknown_field() -> None:
    broken = copy.deepcopy(_gateway())
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        _strict(broken)


def test_the_kustomization_applies_every_manifest_and_pins_the_image() -> None:
    kustomization = _kustomization()
    assert sorted(kustomization["resources"]) == [p.name for p in kubernetes_files()]
    (generated,) = kustomization["configMapGenerator"]
    assert (K8S / generated["files"][0]).resolve() == JOB_TEMPLATE.resolve()
    (image,) = kustomization["images"]
    assert image["name"] == IMAGE and re.fullmatch(r"sha256:[0-9a-f]{64}", image["digest"])
    assert kustomization["namespace"] == job_template()["variables"]["properties"]["namespace"]["default"]
    assert (
        _find("Namespace", kustomization["namespace"])["metadata"]["labels"][
            "pod-security.kubernetes.io/enforce"
        ]
        == "restricted"
    )


@pytest.mark.parametrize(("where", "pod"), list(pod_specs()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_pod_runs_non_root_on_a_read_only_root_file_system(where: str, pod: dict[str, Any]) -> None:
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] >= 1000
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in containers(pod):
        own = container["securityContext"]
        assert own["allowPrivilegeEscalation"] is False
        assert own["readOnlyRootFilesystem"] is True
        assert own["capabilities"]["drop"] == ["ALL"]
        assert container["image"] in (IMAGE, "{{ image }}") or container["image"].count("@sha256:") == 1
        mounted = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert "/tmp" in mounted, f"{container['name']}: /tmp must be a writable volume"


@pytest.mark.parametrize(("where", "pod"), list(pod_specs()), ids=lambda v: v if isinstance(v, str) else "")
def test_only_the_prefect_worker_gets_a_kubernetes_api_token(where: str, pod: dict[str, Any]) -> None:
    if pod["serviceAccountName"] == "govdeploy-prefect-worker":
        assert pod.get("automountServiceAccountToken", True) is True
    else:
        assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize(("where", "pod"), list(pod_specs()), ids=lambda v: v if isinstance(v, str) else "")
def test_secrets_are_files_except_the_clients_credentials(where: str, pod: dict[str, Any]) -> None:
    for container in containers(pod):
        for entry in container.get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert (ref["name"], ref["key"]) in ENV_SECRETS, (
                    f"{entry['name']} from {ref}: mount it as a file"
                )


def test_environment_names_only_variables_govdeploy_reads() -> None:
    names = set(_settings_map())
    for _, pod in pod_specs():
        for container in containers(pod):
            names |= {e["name"] for e in container.get("env", [])}
    assert unknown_govdeploy_variables(names) == set()


def test_the_settings_load_and_point_at_the_clusters_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(("GOVDEPLOY_", "MLFLOW_", "PREFECT_", "AWS_"))]:
        monkeypatch.delenv(name)
    for name, value in _settings_map().items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.profile == "external" and settings.s3_endpoint is None  # AWS S3
    for url, service in (
        (settings.mlflow_url, "govdeploy-mlflow"),
        (settings.prefect_api_url, "govdeploy-prefect"),
    ):
        port = next(p["port"] for p in _find("Service", service)["spec"]["ports"])
        assert url.startswith(f"http://{service}:{port}"), url
    assert settings.state_dir == Path(STATE_DIR)
    assert settings.audit_public_key is not None and not settings.audit_public_key.is_relative_to(
        settings.state_dir
    )
    artifacts = _argument(
        _find("Deployment", "govdeploy-mlflow")["spec"]["template"]["spec"]["containers"][0],
        "--artifacts-destination",
    )
    assert artifacts.startswith(f"s3://{settings.bucket}/")


def _gateway_pod() -> dict[str, Any]:
    pod: dict[str, Any] = _gateway()["spec"]["template"]["spec"]
    return pod


def test_the_gateway_is_probed_on_its_health_route_and_port() -> None:
    (container,) = _gateway_pod()["containers"]
    assert container["command"][:3] == ["python", "-m", "govdeploy.serving.gateway.run"]
    assert run.parser().parse_args(container["command"][3:]).host == "0.0.0.0"
    # one worker process per requested core
    assert int(_env(container)["GOVDEPLOY_GATEWAY_WORKERS"]) == int(container["resources"]["requests"]["cpu"])
    port = int(_argument(container, "--port"))
    assert int(_env(container)["GOVDEPLOY_GATEWAY_PORT"]) == port
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    routes = {getattr(r, "path", None) for r in ops.router.routes}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/healthz" and check["path"] in routes, probe
        assert named[check["port"]] == port, probe
    # readiness leaves the Service at once; liveness restarts only a replica failing for minutes
    ready, live = container["readinessProbe"], container["livenessProbe"]
    assert (
        ready["periodSeconds"] * ready["failureThreshold"] < live["periodSeconds"] * live["failureThreshold"]
    )


def test_the_gateway_stays_available_through_disruptions() -> None:
    gateway = _gateway()
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert gateway["spec"]["replicas"] >= 2
    budget = _find("PodDisruptionBudget", "govdeploy-gateway")["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= budget["minAvailable"] < gateway["spec"]["replicas"]
    service = _find("Service", "govdeploy-gateway")["spec"]
    assert service["selector"].items() <= labels.items()
    assert {p["targetPort"] for p in service["ports"]} <= {
        p["name"] for p in _gateway_pod()["containers"][0]["ports"]
    }
    assert (
        gateway["spec"]["serviceName"] == _find("Service", gateway["spec"]["serviceName"])["metadata"]["name"]
    )
    # each replica keeps its I/O log backlog and the newest serving record it saw across restarts
    (claim,) = gateway["spec"]["volumeClaimTemplates"]
    assert mount_path(_gateway_pod()["containers"][0], claim["metadata"]["name"]) == str(STATE_DIR)


def _keys_of(pod: dict[str, Any]) -> dict[str, str]:
    (container,) = pod["containers"]
    assert mount_path(container, "keys") == str(STATE_DIR / "keys")
    return projected_files(pod, "keys")


def test_the_keys_directory_holds_the_files_the_configuration_names() -> None:
    common = {"master.key", "audit.key"} | trusted_key_files() | approver_key_files()
    gateway, run = _keys_of(_gateway_pod()), _keys_of(sample_job()["spec"]["template"]["spec"])
    assert set(gateway) == common | api_digest_files()
    assert set(run) == common | {"api/deployer.key", "api/auditor.key"}  # gateway_client's principals
    assert not [path for path in gateway if path.endswith(".key") and path not in ("master.key", "audit.key")]


def _role_key_paths(container: dict[str, Any]) -> dict[str, PurePosixPath]:
    env = _env(container)
    return {
        role: PurePosixPath(env[f"GOVDEPLOY_{role.upper()}_KEY"])
        for role in ("candidate", "release", "serving")
    }


def test_each_run_gets_only_its_roles_private_key() -> None:
    pod = sample_job(role_keys_secret="govdeploy-serving-key")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    role_dir = PurePosixPath(mount_path(container, "role-keys"))
    assert {path.parent for path in _role_key_paths(container).values()} == {role_dir}
    assert volume(pod, "role-keys")["secret"] == {
        "secretName": "govdeploy-serving-key",
        "optional": True,
        "defaultMode": 0o440,
    }
    default = job_template()["variables"]["properties"]["role_keys_secret"]["default"]
    declared = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))["deployments"]
    secrets = {d["work_pool"].get("job_variables", {}).get("role_keys_secret", default) for d in declared}
    assert secrets == {"govdeploy-candidate-key", "govdeploy-release-keys", "govdeploy-serving-key", default}
    # the gateway signs kill and revive records only: the serving key, if any
    (gateway,) = _gateway_pod()["containers"]
    assert PurePosixPath(mount_path(gateway, "role-keys")) == _role_key_paths(gateway)["serving"].parent
    assert volume(_gateway_pod(), "role-keys")["secret"]["secretName"] == "govdeploy-serving-key"


def test_the_audit_log_and_used_nonces_are_shared() -> None:
    claim = _find("PersistentVolumeClaim", "govdeploy-shared")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    expected = {"gateway": {"audit"}, "run": {"audit", "nonces"}}
    for who, pod in (("gateway", _gateway_pod()), ("run", sample_job()["spec"]["template"]["spec"])):
        assert volume(pod, "shared")["persistentVolumeClaim"]["claimName"] == "govdeploy-shared"
        (container,) = pod["containers"]
        shared = {m["subPath"]: m["mountPath"] for m in container["volumeMounts"] if m["name"] == "shared"}
        assert set(shared) == expected[who]
        assert all(PurePosixPath(path) == STATE_DIR / sub for sub, path in shared.items())


def test_the_job_template_variables_and_placeholders_agree() -> None:
    template = job_template()
    variables = template["variables"]
    is_valid_schema(variables, preprocess=False)  # raises on an invalid schema
    used = set(re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", JOB_TEMPLATE.read_text(encoding="utf-8")))
    assert used == set(variables["properties"])
    with pytest.raises(ValidationError):  # an image by tag only is refused: runs name it by digest
        validate(
            {"image": "registry.example.com/govdeploy:1.0"},
            variables,
            raise_on_error=True,
            ignore_required=True,
        )
    service_account = variables["properties"]["service_account_name"]["default"]
    assert _find("ServiceAccount", service_account)["automountServiceAccountToken"] is False


def test_a_flow_run_job_is_valid_and_shaped_as_the_worker_requires() -> None:
    job = sample_job()
    pod = job["spec"]["template"]["spec"]
    assert {key: pod[key] for key in WORKER_REQUIRED} == WORKER_REQUIRED
    assert pod["containers"][0]["name"] == "prefect-job"
    assert job["spec"]["backoffLimit"] == 0 and job["metadata"]["generateName"] == "happy-otter-"
    # the worker requires the two Job fields inside the pod spec, where Kubernetes ignores them
    for key in ("parallelism", "completions"):
        pod.pop(key)
    _strict(job)


def test_the_worker_creates_the_pool_from_this_template_and_may_start_jobs() -> None:
    worker = _find("Deployment", "govdeploy-prefect-worker")["spec"]["template"]["spec"]
    (container,) = worker["containers"]
    template_path = PurePosixPath(_argument(container, "--base-job-template"))
    assert template_path.name == JOB_TEMPLATE.name
    assert PurePosixPath(mount_path(container, "work-pool")) == template_path.parent
    (generated,) = _kustomization()["configMapGenerator"]
    assert volume(worker, "work-pool")["configMap"]["name"] == generated["name"]
    assert (
        _argument(container, "--pool") == "govdeploy-kubernetes"
        and _argument(container, "--type") == "kubernetes"
    )
    assert "govdeploy-kubernetes" in PREFECT_YAML.read_text(encoding="utf-8")
    role = _find("Role", "govdeploy-prefect-worker")
    jobs = next(rule for rule in role["rules"] if rule["resources"] == ["jobs"])
    assert {"create", "delete", "watch"} <= set(jobs["verbs"])
    assert not [rule for rule in role["rules"] if "secrets" in rule["resources"] or "*" in rule["verbs"]]
    names = {e["name"]: e.get("value") for e in container["env"]}
    assert (
        names["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_AUTH_STRING_SECRET_NAME"]
        == "govdeploy-prefect-auth"
    )
    assert names["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"] == _kustomization()["namespace"]


def _secret_names() -> set[str]:
    """Every Secret the manifests, the job template and prefect.yaml refer to."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            found.update(
                node[key]["name"] for key in ("secretKeyRef", "secret") if "name" in node.get(key, {})
            )
            found.update([node["secret"]["secretName"]] if "secretName" in node.get("secret", {}) else [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk([doc for _, doc in kubernetes_documents()] + [job_template(), sample_job()])
    roles = set(re.findall(r"role_keys_secret: ([a-z0-9-]+)", PREFECT_YAML.read_text(encoding="utf-8")))
    return {name for name in found | roles if "{{" not in name}


def test_every_secret_is_documented_in_the_production_path() -> None:
    readme = (ROOT / "infra" / "README.md").read_text(encoding="utf-8")
    secrets = _secret_names()
    assert "govdeploy-keys" in secrets and "govdeploy-candidate-key" in secrets
    assert [name for name in sorted(secrets) if f"`{name}`" not in readme] == []
