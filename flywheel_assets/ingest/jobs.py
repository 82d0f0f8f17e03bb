"""Jobs of the ingest stage."""

import dagster as dg

from .assets import ingest_landing_asset

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets(ingest_landing_asset),
    description="Ingest new landing files into the bronze tables and run their checks.",
)
