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
DEFAULT_ROLLBACK_WINDOW_DAYS = 30


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


def rollback_window_days(configured: int | None = None) -> int:
    """Days every table version stays restorable: configured, $FLYWHEEL_ROLLBACK_WINDOW_DAYS, else
    30."""
    value = (
        configured if configured is not None else os.environ.get("FLYWHEEL_ROLLBACK_WINDOW_DAYS")
    )
    if value is None or value == "":
        return DEFAULT_ROLLBACK_WINDOW_DAYS
    try:
        days = int(value)
    except ValueError:
        raise ValueError(
            f"FLYWHEEL_ROLLBACK_WINDOW_DAYS must be an integer, got {value!r}"
        ) from None
    if days < 1:
        raise ValueError(f"the rollback window must be at least 1 day, got {days}")
    return days
