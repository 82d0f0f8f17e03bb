"""The training stage's resource: the base model, the model store, and the retrain thresholds."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from ..settings import retrain_min_pairs


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
