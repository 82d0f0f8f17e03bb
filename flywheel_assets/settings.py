"""The environment, read in one place, and the one way to open the lake from settings."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

from .lake.tables import Lake

DEFAULT_LANDING = "data/landing"
DEFAULT_LAKE = "data/lake"


def landing_root(configured: str | None = None) -> str:
    return configured or os.environ.get("FLYWHEEL_LANDING") or DEFAULT_LANDING


def lake_root(configured: str | None = None) -> str:
    return configured or os.environ.get("FLYWHEEL_LAKE") or DEFAULT_LAKE


STORAGE_OPTIONS_ENV = "FLYWHEEL_STORAGE_OPTIONS"


def storage_options(configured: Mapping[str, str] | None = None) -> dict[str, str]:
    """deltalake storage options: configured, else $FLYWHEEL_STORAGE_OPTIONS (a JSON object of
    strings), else none."""
    if configured:
        return dict(configured)
    value = os.environ.get(STORAGE_OPTIONS_ENV)
    if not value:
        return {}
    try:
        options = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{STORAGE_OPTIONS_ENV} is not JSON: {exc}") from None
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        raise ValueError(f"{STORAGE_OPTIONS_ENV} must be a JSON object of strings")
    return options


def open_lake(
    root: str | None = None,
    *,
    options: Mapping[str, str] | None = None,
    window_days: int | None = None,
    commit_info: Mapping[str, str] | None = None,
) -> Lake:
    """The lake from settings: each value as given, else from the environment, else the default.

    The lake resource and every CLI command open the lake here, so a table first created from
    either gets the same rollback window and reaches the same object store.
    """
    return Lake(
        lake_root(root),
        storage_options(options) or None,
        commit_info=commit_info,
        retention_days=rollback_window_days(window_days),
    )


DEFAULT_RETRAIN_MIN_PAIRS = 5000
DEFAULT_RETRAIN_CRON = "0 4 * * 1"  # Mondays 04:00 UTC, after the daily refresh
_CRON_FIELD = re.compile(r"[0-9A-Za-z*?,/#-]+")


def retrain_cron() -> str:
    """The retrain schedule's cron: $FLYWHEEL_RETRAIN_CRON (five fields), else weekly."""
    value = os.environ.get("FLYWHEEL_RETRAIN_CRON", "").strip()
    if not value:
        return DEFAULT_RETRAIN_CRON
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
        raise ValueError(
            f"FLYWHEEL_RETRAIN_CRON must be a cron schedule of five fields, e.g. "
            f"{DEFAULT_RETRAIN_CRON!r}; got {value!r}"
        )
    return " ".join(fields)


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
