"""Where the landing zone and the lake are: the one place the environment is read."""

from __future__ import annotations

import os

DEFAULT_LANDING = "data/landing"
DEFAULT_LAKE = "data/lake"


def landing_root(configured: str | None = None) -> str:
    return configured or os.environ.get("FLYWHEEL_LANDING") or DEFAULT_LANDING


def lake_root(configured: str | None = None) -> str:
    return configured or os.environ.get("FLYWHEEL_LAKE") or DEFAULT_LAKE
