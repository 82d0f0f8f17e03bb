"""Dagster resources: the landing zone producers write to and the lake every stage uses."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field, PrivateAttr

from .ingest.landing import LandingZone
from .lake.tables import Lake
from .privacy.hashing import KEY_ENV, load_key
from .privacy.pii import PATTERNS_ENV, Detector, PatternSpec, load_patterns_file
from .settings import lake_root, landing_root, retrain_min_pairs, rollback_window_days


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
        return Lake(
            lake_root(self.root),
            self.storage_options or None,
            commit_info={"dagster.run_id": self._run_id} if self._run_id else None,
            retention_days=rollback_window_days(self.rollback_window_days),
        )


class LandingResource(dg.ConfigurableResource):
    """The landing zone: one folder per stream of JSON Lines files written by producers."""

    root: str | None = Field(
        default=None,
        description="Landing root: a folder or URI. Empty: $FLYWHEEL_LANDING, else data/landing.",
    )

    def zone(self) -> LandingZone:
        return LandingZone(landing_root(self.root))


class PiiPattern(dg.Config):
    """A house-specific kind of personal data to redact, added to the built-in detectors."""

    name: str = Field(description="Kind name, lower_snake_case, e.g. 'employee_id'.")
    regex: str = Field(description="RE2 regular expression; a group (?P<value>...) limits the hit.")
    placeholder: str = Field(description="Replacement text, e.g. '[EMPLOYEE_ID]'.")
    validator: str | None = Field(
        default=None, description="Optional built-in validator name (e.g. 'luhn', 'iban')."
    )


class PrivacyResource(dg.ConfigurableResource):
    """Keyed hashing of identifiers and PII detection, shared by every stage that touches text."""

    hash_key_env: str = Field(
        default=KEY_ENV,
        description="Environment variable holding the HMAC key for user ids. Only its name is "
        "configured: the key never appears in run config, logs or tables.",
    )
    extra_patterns: list[PiiPattern] = Field(
        default_factory=list,
        description="Extra PII patterns, applied before the built-in ones.",
    )
    patterns_file: str | None = Field(
        default=None,
        description="A JSON file with a list of extra patterns ({name, regex, placeholder, "
        "validator}). Empty: $FLYWHEEL_PII_PATTERNS, if set.",
    )

    def key(self) -> bytes:
        return load_key(self.hash_key_env)

    def detector(self) -> Detector:
        specs = [
            PatternSpec(p.name, p.regex, p.placeholder, p.validator) for p in self.extra_patterns
        ]
        path = self.patterns_file or os.environ.get(PATTERNS_ENV)
        return Detector([*specs, *(load_patterns_file(path) if path else [])])


class TrainingResource(dg.ConfigurableResource):
    """The base model retrains start from, where adapters are kept, and what triggers a retrain."""

    base_model: str = Field(
        default="tiny",
        description="A Hugging Face model id or a local path. 'tiny' builds a small random-init "
        "Llama-style model and tokenizer from the data on first use: the offline demo and tests.",
    )
    model_store: str | None = Field(
        default=None,
        description="Folder for adapters and the tiny base. Empty: models/ under the lake root.",
    )
    min_new_pairs: int | None = Field(
        default=None,
        description="curated_pairs_sensor requests a retrain once this many curated training rows "
        "(SFT + DPO + KTO) were added since the last training snapshot. Empty: "
        "$FLYWHEEL_RETRAIN_MIN_PAIRS, else 5000.",
    )
    drift_min_corrected: int = Field(
        default=100,
        description="drift_sensor requests a retrain for a drift event only when at least this "
        "many corrected rows lie in the event's window.",
    )

    def retrain_threshold(self) -> int:
        return retrain_min_pairs(self.min_new_pairs)
