"""The versioning stage's Dagster definitions."""

import dagster as dg

from .assets import ASSETS
from .jobs import rollback_table_job, table_maintenance_job
from .schedules import table_maintenance_schedule

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[rollback_table_job, table_maintenance_job],
    schedules=[table_maintenance_schedule],
)
