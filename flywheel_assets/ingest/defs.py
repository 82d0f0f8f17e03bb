"""The ingest stage's Dagster definitions."""

import dagster as dg

from .assets import ingest_landing_asset
from .checks import CHECKS
from .jobs import ingest_job
from .sensors import landing_sensor

defs = dg.Definitions(
    assets=[ingest_landing_asset],
    asset_checks=CHECKS,
    jobs=[ingest_job],
    sensors=[landing_sensor],
)
