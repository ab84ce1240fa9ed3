"""The deployment definitions (prefect.yaml for workers, flows/serve.py for `govdeploy up`) agree."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

from flows.serve import automations
from govdeploy.config.policy import load_policy

ROOT = Path(__file__).resolve().parent.parent


def test_prefect_yaml_entrypoints_exist_and_the_nightly_cron_is_the_policys() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    by_name = {d["name"]: d for d in spec["deployments"]}
    for deployment in by_name.values():
        path, function = deployment["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert callable(getattr(module, function)), deployment["entrypoint"]
    policy = load_policy(ROOT / "config" / "policy.yaml")
    assert [s["cron"] for s in by_name["nightly-credit-risk"]["schedules"]] == [policy.drift.schedule]
    served = automations()
    for name in ("retrain", "rollback"):
        (trigger,) = by_name[name]["triggers"]
        assert set(trigger["expect"]) == served[name].expect
        assert trigger["parameters"] == served[name].parameters
