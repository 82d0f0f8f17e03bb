"""The retrain job: snapshot, train, evaluate and gate, register."""

import dagster as dg

from .assets import RETRAIN_ASSETS

retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=dg.AssetSelection.assets(*RETRAIN_ASSETS),
    description="Pin the curated sets' versions, train a LoRA adapter on them, evaluate it against "
    "the production model, and promote it only through the gate; every model is registered.",
    tags={"flywheel/trigger": "manual"},
)
