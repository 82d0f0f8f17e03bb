"""Dagster resources: the landing zone producers write to and the lake every stage uses."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from .ingest.landing import LandingZone
from .lake.tables import Lake
from .settings import lake_root, landing_root


class LakeResource(dg.ConfigurableResource):
    """The Delta lake: one folder (or object-store prefix) per table under `root`."""

    root: str | None = Field(
        default=None,
        description="Lake root: a folder or deltalake URI. Empty: $FLYWHEEL_LAKE, else data/lake.",
    )
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="deltalake storage options (endpoint, region, credentials) for object stores.",
    )

    def lake(self) -> Lake:
        return Lake(lake_root(self.root), self.storage_options or None)


class LandingResource(dg.ConfigurableResource):
    """The landing zone: one folder per stream of JSON Lines files written by producers."""

    root: str | None = Field(
        default=None,
        description="Landing root: a folder or URI. Empty: $FLYWHEEL_LANDING, else data/landing.",
    )

    def zone(self) -> LandingZone:
        return LandingZone(landing_root(self.root))
