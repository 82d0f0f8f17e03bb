"""Sensors of the ingest stage: new landing files trigger an ingestion run."""

import hashlib
import json

import dagster as dg

from ..resources import LakeResource, LandingResource
from .jobs import ingest_job
from .pipeline import new_landing_files

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def run_in_flight(instance: dg.DagsterInstance, job_name: str) -> str | None:
    """The id of a run of `job_name` that is queued or running, if any."""
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT), limit=1)
    return runs[0].run_id if runs else None


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests an ingest run when landing files appear that the ingest ledger has "
    "not seen.",
)
def landing_sensor(
    context: dg.SensorEvaluationContext, landing: LandingResource, lake: LakeResource
) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    in_flight = run_in_flight(context.instance, ingest_job.name)
    if in_flight:
        return dg.SensorResult(
            skip_reason=f"ingest run {in_flight} is still in progress", cursor=context.cursor
        )
    files = new_landing_files(landing.zone(), lake.lake())
    if not files:
        return dg.SensorResult(skip_reason="no new landing files", cursor=context.cursor)
    # The key names exactly these files, so the same set never triggers two runs.
    listing = "\n".join(f"{f.path}\t{f.size}" for f in files)
    run_key = "landing-" + hashlib.sha256(listing.encode()).hexdigest()[:16]
    if cursor.get("last_run_key") == run_key:
        return dg.SensorResult(
            skip_reason=f"{len(files)} new files already requested in {run_key}",
            cursor=context.cursor,
        )
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key, tags={"flywheel/new_files": str(len(files))})],
        cursor=json.dumps({"last_run_key": run_key, "files": len(files)}),
    )
