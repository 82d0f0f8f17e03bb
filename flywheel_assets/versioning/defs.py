"""The versioning stage's Dagster definitions."""

import dagster as dg

from .assets import ASSETS
from .jobs import readmit_rollback_job, rollback_table_job, table_maintenance_job
from .schedules import table_maintenance_schedule

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[rollback_table_job, readmit_rollback_job, table_maintenance_job],
    schedules=[table_maintenance_schedule],
)
