"""The privacy stage run directly on a test lake: one key and detector, the redacted tables built,
and a redacted sample lake."""

from __future__ import annotations

from pathlib import Path

from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.lake.tables import Lake
from flywheel_assets.privacy.pii import Detector
from flywheel_assets.privacy.pipeline import redact_annotations, redact_feedback, redact_logs
from flywheel_assets.privacy.sampling import SamplingPolicy
from flywheel_assets.sample import write_sample_landing

KEY = b"test-key-0123456789abcdef"
DETECTOR = Detector()


DEFAULT_POLICY = SamplingPolicy()


def build(lake: Lake, policy: SamplingPolicy = DEFAULT_POLICY) -> dict:
    """Build the three redacted tables from the lake's raw ones; each builder's result by stream."""
    return {
        "logs": redact_logs(lake, DETECTOR, KEY, policy),
        "feedback": redact_feedback(lake, DETECTOR, KEY),
        "annotations": redact_annotations(lake, DETECTOR, KEY),
    }


def redacted_sample(root: Path, n_interactions: int, seed: int) -> Lake:
    """A sample landing zone under root/landing, ingested and redacted into root/lake."""
    write_sample_landing(root / "landing", n_interactions=n_interactions, seed=seed)
    lake = Lake(str(root / "lake"))
    ingest_landing(LandingZone(str(root / "landing")), lake)
    build(lake)
    return lake
