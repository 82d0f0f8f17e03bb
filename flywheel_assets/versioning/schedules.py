"""Schedules of the versioning stage."""

import dagster as dg

from .jobs import table_maintenance_job

table_maintenance_schedule = dg.ScheduleDefinition(
    name="table_maintenance_schedule",
    job=table_maintenance_job,
    cron_schedule="30 4 * * 0",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Sundays at 04:30 UTC, compact every table and vacuum within the rollback window.",
)
