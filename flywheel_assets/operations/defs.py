"""Cross-stage jobs and schedules."""

import dagster as dg

from .jobs import refresh_job
from .schedules import daily_refresh_schedule

defs = dg.Definitions(jobs=[refresh_job], schedules=[daily_refresh_schedule])
