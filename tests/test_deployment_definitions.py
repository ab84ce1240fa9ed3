"""One deployment definition: prefect.yaml (workers) declares exactly the deployments flows/serve.py
serves (`govdeploy up`), with the same entrypoints, descriptions, parameters, schedules and triggers;
the deployments process's health check waits for every served deployment; the job variables of
prefect.yaml are variables of both work pools it deploys to."""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
from prefect.cli.deploy._triggers import _initialize_deployment_triggers
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.utilities.schema_tools import validate
from prefect.workers.process import ProcessWorker

from flows.serve import deployments
from govdeploy.config.catalog import load_catalog
from govdeploy.config.policy import load_policy
from govdeploy.stack.components import DEPLOYMENTS

ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = ROOT / "prefect.yaml"
K8S_JOB_TEMPLATE = ROOT / "infra" / "k8s" / "work-pool" / "base-job-template.json"
FIELDS = ("entrypoint", "description", "parameters", "schedules", "triggers")
WORK_POOL = "{{ $GOVDEPLOY_WORK_POOL }}"

Definition = dict[str, Any]  # one deployment: FIELDS -> comparable value


def _schedule(schedule: DeploymentScheduleCreate) -> dict[str, Any]:
    """A schedule without its anchor date (an interval schedule anchors at its creation time)."""
    dumped = schedule.model_dump()
    dumped["schedule"].pop("anchor_date", None)
    return dumped


def served_definitions() -> dict[str, Definition]:
    """What `govdeploy up` serves, by full name (flow/deployment)."""
    return {
        d.full_name: {
            "entrypoint": d.entrypoint,
            "description": d.description,
            "parameters": d.parameters,
            "schedules": [_schedule(s) for s in d.schedules or []],
            "triggers": [t.model_dump() for t in d.triggers],
        }
        for d in deployments()
    }


def _flow_name(entrypoint: str) -> str:
    path, function = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return str(getattr(module, function).name)


def declared_definitions(spec: dict[str, Any]) -> dict[str, Definition]:
    """What prefect.yaml declares, read as `prefect deploy` reads it (schedules and triggers)."""
    found = {}
    for raw in spec["deployments"]:
        d = copy.deepcopy(raw)
        schedules = [
            DeploymentScheduleCreate(**_schedule_config_to_deployment_schedule(s))
            for s in d.get("schedules") or []
        ]
        found[f"{_flow_name(d['entrypoint'])}/{d['name']}"] = {
            "entrypoint": d["entrypoint"],
            "description": d.get("description"),
            "parameters": d.get("parameters") or {},
            "schedules": [_schedule(s) for s in schedules],
            "triggers": [
                t.model_dump() for t in _initialize_deployment_triggers(d["name"], d.get("triggers") or [])
            ],
        }
    return found


def disagreements(served: dict[str, Definition], declared: dict[str, Definition]) -> list[str]:
    """Each difference, named: a deployment on one side only, or a field that differs."""
    found = [
        f"{name}: served by flows/serve.py, missing from prefect.yaml"
        for name in sorted(served.keys() - declared.keys())
    ]
    found += [
        f"{name}: in prefect.yaml, not served by flows/serve.py"
        for name in sorted(declared.keys() - served.keys())
    ]
    for name in sorted(served.keys() & declared.keys()):
        found += [
            f"{name}: {field} differ: flows/serve.py {served[name][field]!r}, prefect.yaml {declared[name][field]!r}"
            for field in FIELDS
            if served[name][field] != declared[name][field]
        ]
    return found


@pytest.fixture(scope="module")
def served() -> dict[str, Definition]:
    return served_definitions()


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    return loaded


def test_prefect_yaml_declares_every_served_deployment_alike(
    served: dict[str, Definition], spec: dict[str, Any]
) -> None:
    assert disagreements(served, declared_definitions(spec)) == []


def _drop_drift(spec: dict[str, Any]) -> None:
    spec["deployments"] = [d for d in spec["deployments"] if d["name"] != "drift"]


def _add_extra(spec: dict[str, Any]) -> None:
    spec["deployments"].append({"name": "extra", "entrypoint": "flows/train.py:train", "description": "x"})


def _change_parameter(spec: dict[str, Any]) -> None:
    spec["deployments"][-1]["parameters"] = {"model": "other"}


def _change_cron(spec: dict[str, Any]) -> None:
    spec["deployments"][0]["schedules"][0]["cron"] = "0 3 * * *"


def _drop_interval(spec: dict[str, Any]) -> None:
    next(d for d in spec["deployments"] if d["name"] == "canary-watch").pop("schedules")


def _change_trigger(spec: dict[str, Any]) -> None:
    retrain = next(d for d in spec["deployments"] if d["name"] == "retrain")
    retrain["triggers"][0]["expect"] = ["govdeploy.rollback.requested"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_drop_drift, "drift/drift: served by flows/serve.py, missing from prefect.yaml"),
        (_add_extra, "train/extra: in prefect.yaml, not served by flows/serve.py"),
        (_change_parameter, "release/release: parameters differ"),
        (_change_cron, "drift/nightly-credit-risk: schedules differ"),
        (_drop_interval, "canary-watch/canary-watch: schedules differ"),
        (_change_trigger, "retrain/retrain: triggers differ"),
    ],
)
def test_a_deployment_changed_on_one_side_only_is_named(
    served: dict[str, Definition],
    spec: dict[str, Any],
    mutate: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    changed = copy.deepcopy(spec)
    mutate(changed)
    found = disagreements(served, declared_definitions(changed))
    assert len(found) == 1 and found[0].startswith(expected), found


def test_the_nightly_drift_runs_on_the_policys_cron_for_every_catalogued_model(spec: dict[str, Any]) -> None:
    by_name = {d["name"]: d for d in spec["deployments"]}
    policy = load_policy(ROOT / "config" / "policy.yaml")
    for model in load_catalog(ROOT / "config" / "models.yaml").models:
        nightly = by_name[f"nightly-{model}"]
        assert nightly["parameters"] == {"model": model}
        assert [(s["cron"], s["timezone"]) for s in nightly["schedules"]] == [(policy.drift.schedule, "UTC")]


def test_the_health_check_waits_for_every_served_deployment(served: dict[str, Definition]) -> None:
    """``up`` reports the deployments process healthy once these exist (the scheduled nightly ones
    are not waited for: the drift ones follow the catalog, and none is started by hand)."""
    assert set(DEPLOYMENTS) == {name for name in served if "/nightly-" not in name}


def test_the_nightly_compliance_runs_on_the_policys_retention_cron(spec: dict[str, Any]) -> None:
    (nightly,) = [d for d in spec["deployments"] if d["name"] == "nightly-compliance"]
    policy = load_policy(ROOT / "config" / "policy.yaml")
    assert [(s["cron"], s["timezone"]) for s in nightly["schedules"]] == [(policy.retention.schedule, "UTC")]


def test_each_deployment_goes_to_the_pool_chosen_at_deploy_time(spec: dict[str, Any]) -> None:
    assert {d["name"]: d["work_pool"]["name"] for d in spec["deployments"]} == {
        d["name"]: WORK_POOL for d in spec["deployments"]
    }
    (step,) = spec["pull"]
    assert step == {
        "prefect.deployments.steps.set_working_directory": {"directory": "{{ $GOVDEPLOY_PROJECT_DIR }}"}
    }


def test_job_variables_are_variables_of_both_work_pools(spec: dict[str, Any]) -> None:
    """The process pool ignores the Kubernetes-only ones; the Kubernetes pool defines every one."""
    kubernetes = json.loads(K8S_JOB_TEMPLATE.read_text(encoding="utf-8"))["variables"]
    process = ProcessWorker.get_default_base_job_template()["variables"]
    for deployment in spec["deployments"]:
        variables = deployment["work_pool"].get("job_variables", {})
        assert set(variables) <= set(kubernetes["properties"]), deployment["name"]
        validate(variables, kubernetes, raise_on_error=True, ignore_required=True)
        validate(variables, process, raise_on_error=True, ignore_required=True)


def test_runs_get_the_private_keys_of_the_role_they_sign_as(spec: dict[str, Any]) -> None:
    secrets = {
        d["name"]: d["work_pool"].get("job_variables", {}).get("role_keys_secret")
        for d in spec["deployments"]
    }
    assert secrets == {
        "train": "govdeploy-candidate-key",
        "retrain": "govdeploy-candidate-key",
        "release": "govdeploy-release-keys",  # promotion, then the canary it starts
        "canary": "govdeploy-serving-key",
        "canary-abort": "govdeploy-serving-key",
        "canary-watch": "govdeploy-serving-key",
        "rollback": "govdeploy-serving-key",
        "drift": None,
        "nightly-credit-risk": None,
        "nightly-compliance": None,
    }
