"""Jobs that span every stage."""

import dagster as dg

refresh_job = dg.define_asset_job(
    "refresh_job",
    selection=dg.AssetSelection.all(),
    description="Materialize every dataset asset, landing to curated tables, with its checks.",
)
