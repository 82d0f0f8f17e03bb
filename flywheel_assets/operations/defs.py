"""Cross-stage jobs and schedules."""

import dagster as dg

from .jobs import redact_again_job, refresh_job
from .schedules import daily_refresh_schedule

defs = dg.Definitions(jobs=[refresh_job, redact_again_job], schedules=[daily_refresh_schedule])
