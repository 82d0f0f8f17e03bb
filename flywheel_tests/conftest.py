"""Shared fixtures: a landing zone and a lake on tmp_path, the hash key, a clean environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.lake.tables import Lake
from flywheel_tests.support.records import TEST_HASH_KEY

# In CI the property tests replay the same examples every run, so a failure is reproducible, never
# a matter of luck; locally they keep exploring new ones.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

# The suite trains the tiny random-init base unless a test asks for the pretrained default (which
# has its own slow tests). Set for the whole session, so module-scoped fixtures and the processes
# tests start see it too.
os.environ["FLYWHEEL_BASE_MODEL"] = "tiny"


@pytest.fixture(autouse=True)
def _no_flywheel_env(monkeypatch):
    # Tests always name their landing zone and lake; the developer's environment must not leak in.
    monkeypatch.delenv("FLYWHEEL_LANDING", raising=False)
    monkeypatch.delenv("FLYWHEEL_LAKE", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("FLYWHEEL_RETRAIN_MIN_PAIRS", raising=False)
    monkeypatch.delenv("FLYWHEEL_RETRAIN_CRON", raising=False)
    monkeypatch.setenv("DAGSTER_DISABLE_TELEMETRY", "1")


@pytest.fixture
def hash_key(monkeypatch) -> None:
    """FLYWHEEL_HASH_KEY set to TEST_HASH_KEY for the test (and the processes it starts)."""
    monkeypatch.setenv("FLYWHEEL_HASH_KEY", TEST_HASH_KEY)


@pytest.fixture
def landing_dir(tmp_path: Path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


@pytest.fixture
def zone(landing_dir: Path) -> LandingZone:
    return LandingZone(str(landing_dir))


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))
