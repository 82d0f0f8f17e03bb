"""The resources every stage shares: the lake and the landing zone producers write to.

Stage resources (privacy, training) live in their stage folders."""

from __future__ import annotations

import dagster as dg
from pydantic import Field, PrivateAttr

from .contract.landing import LandingZone
from .lake.tables import Lake
from .settings import landing_root, open_lake


class LakeResource(dg.ConfigurableResource):
    """The Delta lake: one folder (or object-store prefix) per table under `root`."""

    root: str | None = Field(
        default=None,
        description="Lake root: a folder or deltalake URI. Empty: $FLYWHEEL_LAKE, else data/lake.",
    )
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="deltalake storage options (endpoint, region, credentials) for object stores. "
        "Empty: $FLYWHEEL_STORAGE_OPTIONS (a JSON object), else none.",
    )

    rollback_window_days: int | None = Field(
        default=None,
        description="Days every version stays restorable: vacuum and log cleanup keep them, and "
        "the tables' retention properties are set to match. Empty: "
        "$FLYWHEEL_ROLLBACK_WINDOW_DAYS, else 30.",
    )
    _run_id: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Every commit made in a run names it, so a table's history leads back to the run.
        self._run_id = context.run.run_id if context.run else None

    def lake(self) -> Lake:
        return open_lake(
            self.root,
            options=self.storage_options,
            window_days=self.rollback_window_days,
            commit_info={"dagster.run_id": self._run_id} if self._run_id else None,
        )


class LandingResource(dg.ConfigurableResource):
    """The landing zone: one folder per stream of JSON Lines files written by producers."""

    root: str | None = Field(
        default=None,
        description="Landing root: a folder or URI. Empty: $FLYWHEEL_LANDING, else data/landing.",
    )

    def zone(self) -> LandingZone:
        return LandingZone(landing_root(self.root))
