"""Jobs of the ingest stage."""

import dagster as dg

from .assets import GROUP

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Ingest new landing files into the bronze tables and run their checks.",
)
