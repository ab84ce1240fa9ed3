"""Loading the governance config (policy, catalog, suites) as a task."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from govdeploy.config.catalog import load_catalog
from govdeploy.config.governance import Governance, load_governance
from govdeploy.config.settings import get_settings


@task(cache_policy=NO_CACHE)
def load_config(model: str) -> Governance:
    """Load and cross-check config/ for one model; every decision records its digest."""
    return load_governance(get_settings().config_dir, model)


@task(cache_policy=NO_CACHE)
def catalogued_models() -> list[str]:
    """The models of config/models.yaml."""
    return sorted(load_catalog(get_settings().models_path).models)
