"""Shared fixtures: a landing zone and a lake on tmp_path, and helpers to write landing files."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from hypothesis import settings

from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.lake.tables import Lake

# In CI the property tests replay the same examples every run, so a failure is reproducible, never
# a matter of luck; locally they keep exploring new ones.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _no_flywheel_env(monkeypatch):
    # Tests always name their landing zone and lake; the developer's environment must not leak in.
    monkeypatch.delenv("FLYWHEEL_LANDING", raising=False)
    monkeypatch.delenv("FLYWHEEL_LAKE", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("FLYWHEEL_RETRAIN_MIN_PAIRS", raising=False)
    monkeypatch.setenv("DAGSTER_DISABLE_TELEMETRY", "1")


TEST_HASH_KEY = "a-test-secret-of-enough-length"


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


def write_lines(root: Path, rel: str, lines: list) -> Path:
    """Write landing lines: dicts become JSON, str and bytes are written as they are."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = b"".join(_encode(line) + b"\n" for line in lines)
    path.write_bytes(gzip.compress(raw, mtime=0) if rel.endswith(".gz") else raw)
    return path


def _encode(line) -> bytes:
    if isinstance(line, bytes):
        return line
    if isinstance(line, str):
        return line.encode()
    return json.dumps(line).encode()


def interaction(request_id: str, **over) -> dict:
    record = {
        "request_id": request_id,
        "ts": "2026-11-20T10:00:00+00:00",
        "prompt": f"question {request_id}?",
        "response": f"answer {request_id}.",
        "model_version": "m-2026-11-01",
    }
    record.update(over)
    return record


def drift_event(event_id: str, ts: str, **over) -> dict:
    record = {"event_id": event_id, "ts": ts, "metric": "neg", "value": 0.3, "threshold": 0.2}
    record.update(over)
    return record


def feedback(feedback_id: str, request_id: str, kind: str = "thumbs_up", **over) -> dict:
    record = {
        "feedback_id": feedback_id,
        "request_id": request_id,
        "ts": "2026-11-20T10:05:00Z",
        "kind": kind,
    }
    record.update(over)
    return record
