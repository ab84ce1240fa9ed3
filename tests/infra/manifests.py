"""What the infra tests read: the container and Kubernetes manifests, the environment variables they
may set, and the key files govdeploy's configuration expects in the keys directory."""

from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prefect.utilities.templating import apply_values

from govdeploy.config.approvers import load_approvers
from govdeploy.config.settings import Settings
from govdeploy.config.trust import load_trust
from govdeploy.serving.gateway.access import load_access

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"
K8S = ROOT / "infra" / "k8s"
COMPOSE = ROOT / "infra" / "compose.yaml"
JOB_TEMPLATE = K8S / "work-pool" / "base-job-template.json"
PREFECT_YAML = ROOT / "prefect.yaml"
KUBERNETES_VERSION = "1.33.0"
IMAGE = "govdeploy"  # the image name in the manifests; infra/k8s/kustomization.yaml pins it by digest
SAMPLE_IMAGE = "registry.example.com/govdeploy@sha256:" + "ab" * 32
ENV_PLACEHOLDER = re.compile(r"\{\{\s*\$([A-Za-z0-9_]+)\s*\}\}")
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def setting_variables() -> set[str]:
    """The environment variables ``Settings`` reads (``GOVDEPLOY_<FIELD>``, or a field's alias)."""
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", [alias]) if alias is not None else []
        names.update(c for c in choices if isinstance(c, str))
        if alias is None:
            names.add(f"GOVDEPLOY_{field_name.upper()}")
    return names


def deploy_variables() -> set[str]:
    """The variables prefect.yaml templates (``{{ $NAME }}``): set where deployments are made or run."""
    return set(ENV_PLACEHOLDER.findall(PREFECT_YAML.read_text(encoding="utf-8")))


def unknown_govdeploy_variables(names: set[str]) -> set[str]:
    """The GOVDEPLOY_* names among ``names`` that neither Settings nor prefect.yaml reads."""
    return {n for n in names if n.startswith("GOVDEPLOY_")} - setting_variables() - deploy_variables()


def kubernetes_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def kubernetes_documents() -> list[tuple[str, dict[str, Any]]]:
    """Every resource of infra/k8s, with the file it is in."""
    return [
        (path.name, doc)
        for path in kubernetes_files()
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if doc
    ]


def job_template() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(JOB_TEMPLATE.read_text(encoding="utf-8"))
    return loaded


def render_job(template: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The Job the Kubernetes worker submits for a run: the template's job manifest with the pool's
    variable defaults and ``values`` applied, ``args`` split as the worker splits a command."""
    defaults = {k: v["default"] for k, v in template["variables"]["properties"].items() if "default" in v}
    job: dict[str, Any] = apply_values(
        copy.deepcopy(template["job_configuration"]["job_manifest"]), {**defaults, **values}
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    if isinstance(container.get("args"), str):
        container["args"] = shlex.split(container["args"])
    return job


def sample_job(**values: Any) -> dict[str, Any]:
    """A rendered Job for a release run."""
    run = {
        "image": SAMPLE_IMAGE,
        "name": "happy-otter",
        "command": "prefect flow-run execute",
        "labels": {"prefect.io/flow-run-name": "happy-otter"},
        "annotations": {},
        "role_keys_secret": "govdeploy-release-keys",
    }
    return render_job(job_template(), {**run, **values})


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod spec: the workloads of infra/k8s and the work pool's flow-run Job."""
    for name, doc in kubernetes_documents():
        if doc["kind"] in WORKLOADS:
            yield f"{name}:{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]
    yield "work-pool/base-job-template.json", sample_job()["spec"]["template"]["spec"]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def volume(pod: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in pod["volumes"] if v["name"] == name)


def mount_path(container: dict[str, Any], volume_name: str) -> str:
    return next(
        m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume_name and "subPath" not in m
    )


def projected_files(pod: dict[str, Any], volume_name: str) -> dict[str, str]:
    """The files of a projected volume: path in the volume -> Secret it comes from."""
    return {
        item["path"]: source["secret"]["name"]
        for source in volume(pod, volume_name)["projected"]["sources"]
        for item in source["secret"]["items"]
    }


def approver_key_files() -> set[str]:
    return set(load_approvers(CONFIG / "approvers.yaml").key_files().values())


def api_digest_files() -> set[str]:
    return {
        str(p.key_sha256_file)
        for p in load_access(CONFIG / "access.yaml").principals.values()
        if p.key_sha256_file
    }


def trusted_key_files() -> set[str]:
    return {
        key.key_file
        for keys in load_trust(CONFIG / "trust.yaml").roles.values()
        for key in keys
        if key.key_file
    }
