"""Schedules that span every stage."""

import dagster as dg

from .jobs import refresh_job

daily_refresh_schedule = dg.ScheduleDefinition(
    name="daily_refresh_schedule",
    job=refresh_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day at 03:00 UTC, rebuild every table from what has landed.",
)
