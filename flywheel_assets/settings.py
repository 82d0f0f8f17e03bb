"""Where the landing zone and the lake are: the one place the environment is read."""

from __future__ import annotations

import os

DEFAULT_LANDING = "data/landing"
DEFAULT_LAKE = "data/lake"


def landing_root(configured: str | None = None) -> str:
    return configured or os.environ.get("FLYWHEEL_LANDING") or DEFAULT_LANDING


def lake_root(configured: str | None = None) -> str:
    return configured or os.environ.get("FLYWHEEL_LAKE") or DEFAULT_LAKE


DEFAULT_RETRAIN_MIN_PAIRS = 5000


def retrain_min_pairs(configured: int | None = None) -> int:
    """The curated-rows threshold of the retrain sensor: configured, $FLYWHEEL_RETRAIN_MIN_PAIRS,
    else 5000."""
    if configured is not None:
        return configured
    value = os.environ.get("FLYWHEEL_RETRAIN_MIN_PAIRS")
    if not value:
        return DEFAULT_RETRAIN_MIN_PAIRS
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"FLYWHEEL_RETRAIN_MIN_PAIRS must be an integer, got {value!r}") from None
