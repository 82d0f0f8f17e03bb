"""The training stage's Dagster definitions."""

import dagster as dg

from .assets import ASSETS
from .checks import CHECKS
from .jobs import promote_model_job, retrain_job, rollback_model_job
from .schedules import retrain_schedule
from .sensors import curated_pairs_sensor, drift_sensor, failure_cluster_sensor

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    jobs=[retrain_job, promote_model_job, rollback_model_job],
    sensors=[curated_pairs_sensor, drift_sensor, failure_cluster_sensor],
    schedules=[retrain_schedule],
)
