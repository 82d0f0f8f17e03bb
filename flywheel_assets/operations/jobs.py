"""Jobs that span every stage."""

import dagster as dg

from ..training.assets import RETRAIN_ASSETS

refresh_job = dg.define_asset_job(
    "refresh_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*RETRAIN_ASSETS),
    description="Materialize every dataset asset, landing to curated tables and the drift monitor, "
    "with its checks (retraining is retrain_job's).",
)
