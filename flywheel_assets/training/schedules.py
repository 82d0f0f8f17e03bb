"""The retrain schedule: a retrain on a fixed cadence, whatever the thresholds say, when anything
is new since the last training snapshot."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from ..ingest.sensors import run_in_flight
from ..resources import LakeResource
from ..settings import DEFAULT_RETRAIN_CRON, retrain_cron
from .assets import TRIGGER_TAG
from .jobs import retrain_job
from .snapshot import describe_counts, last_snapshot, new_rows_since

# Read when the code location loads: Dagster needs a schedule's cron to define it.
CRON = retrain_cron()


@dg.schedule(
    name="retrain_schedule",
    job=retrain_job,
    cron_schedule=CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"At cron {CRON!r} UTC (weekly, {DEFAULT_RETRAIN_CRON!r}, unless "
    "FLYWHEEL_RETRAIN_CRON sets another), requests retrain_job when curated training rows were "
    "added since the last training snapshot; skips, saying why, when nothing is new or a retrain "
    "is in progress. One run per scheduled time.",
)
def retrain_schedule(context: dg.ScheduleEvaluationContext, lake: LakeResource):
    in_flight = run_in_flight(context.instance, retrain_job.name)
    if in_flight:
        return dg.SkipReason(f"retrain run {in_flight} is still in progress")
    the_lake = lake.lake()
    previous = last_snapshot(the_lake)
    _, added = new_rows_since(the_lake, previous["versions"] if previous else None)
    total = sum(added.values())
    if total == 0:
        since = f"snapshot {previous['snapshot_id']}" if previous else "the start"
        return dg.SkipReason(f"nothing new since {since} ({describe_counts(added)})")
    # The scheduled time names the run: a tick evaluated again (a daemon restart) asks for the
    # same run, and each week gets its own.
    when = context.scheduled_execution_time or datetime.now(UTC)
    return dg.RunRequest(
        run_key=f"retrain-schedule-{when.astimezone(UTC):%Y-%m-%dT%H:%MZ}",
        tags={TRIGGER_TAG: "schedule", "flywheel/new_rows": str(total)},
    )
