"""Fixtures of the trust tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.govdeploy.trust.rotation_world import World, make_world


@pytest.fixture
def world(tmp_path: Path) -> World:
    """A state directory with development keys and the repository's config, for rotations."""
    return make_world(tmp_path)
