"""The privacy stage's Dagster definitions."""

import dagster as dg

from .assets import ASSETS
from .checks import CHECKS
from .jobs import erase_user_job, retention_job
from .schedules import retention_schedule

defs = dg.Definitions(
    assets=ASSETS,
    asset_checks=CHECKS,
    jobs=[retention_job, erase_user_job],
    schedules=[retention_schedule],
)
