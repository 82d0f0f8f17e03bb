"""What starts a retrain: enough new curated rows, a drift event with enough corrections, or a
failure cluster that grew past a size."""

from __future__ import annotations

import json

import dagster as dg
import pyarrow.compute as pc

from ..catalog.curated import FAILURE_CLUSTERS, TAGGED_ROWS
from ..contract.records import DRIFT_EVENTS
from ..curation.failures import size_bucket
from ..ingest.sensors import run_in_flight
from ..lake.tables import MAINTENANCE_OPERATIONS, Lake
from ..resources import LakeResource
from .assets import TRIGGER_TAG
from .drift import corrected_rows_in_window
from .jobs import retrain_job
from .resources import TrainingResource
from .snapshot import (
    FAILURE_CLUSTER_TAG,
    describe_counts,
    last_snapshot,
    new_rows_since,
    versions_key,
)


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests retrain_job once min_new_pairs curated training rows (SFT + DPO + KTO) "
    "were added since the last training snapshot, counted from the Delta log alone. The run key "
    "names the dataset versions, so the same data never triggers twice.",
)
def curated_pairs_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, training: TrainingResource
) -> dg.SensorResult:
    the_lake = lake.lake()
    in_flight = run_in_flight(context.instance, retrain_job.name)
    if in_flight:
        return dg.SensorResult(
            skip_reason=f"retrain run {in_flight} is still in progress", cursor=context.cursor
        )
    previous = last_snapshot(the_lake)
    versions, added = new_rows_since(the_lake, previous["versions"] if previous else None)
    total = sum(added.values())
    threshold = training.retrain_threshold()
    counts = describe_counts(added)
    if total < threshold:
        return dg.SensorResult(
            skip_reason=f"{total} new curated training rows ({counts}); retrain at {threshold}",
            cursor=context.cursor,
        )
    run_key = f"retrain-threshold-{versions_key(versions)}"
    cursor = json.loads(context.cursor) if context.cursor else {}
    if cursor.get("last_run_key") == run_key:
        return dg.SensorResult(
            skip_reason=f"these dataset versions were already requested in {run_key}",
            cursor=context.cursor,
        )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=run_key,
                tags={
                    TRIGGER_TAG: "threshold",
                    "flywheel/new_rows": str(total),
                    "flywheel/dataset_versions": json.dumps(versions, sort_keys=True),
                },
            )
        ],
        cursor=json.dumps({"last_run_key": run_key, "versions": versions}),
    )


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="On each new drift event, requests retrain_job when at least drift_min_corrected "
    "corrected rows lie in the event's window; otherwise skips and says the counts. One run per "
    "drift event.",
)
def drift_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, training: TrainingResource
) -> dg.SensorResult:
    the_lake = lake.lake()
    cursor = json.loads(context.cursor) if context.cursor else {"batch": -1}
    seen_batch = int(cursor.get("batch", -1))
    events = the_lake.read(
        DRIFT_EVENTS.table,
        columns=["event_id", "ts", "window_hours", "metric", "_ingest_batch"],
        filter=pc.field("_ingest_batch") > seen_batch,
    )
    if events is None or events.num_rows == 0:
        return dg.SensorResult(skip_reason="no new drift events", cursor=context.cursor)
    # Corrections are counted in tagged_rows: wait until curation has seen these events.
    drift_version = last_addition(the_lake, DRIFT_EVENTS.table)
    curated_from = built_from(the_lake, TAGGED_ROWS.name).get(DRIFT_EVENTS.table, -1)
    if curated_from < drift_version:
        return dg.SensorResult(
            skip_reason=f"{events.num_rows} new drift event(s); waiting for tagged_rows to be "
            f"rebuilt from drift_events version {drift_version}",
            cursor=context.cursor,
        )
    requests, skipped = [], []
    for event in sorted(events.to_pylist(), key=lambda e: (e["ts"], e["event_id"])):
        corrected = corrected_rows_in_window(the_lake, event["ts"], event["window_hours"])
        if corrected < training.drift_min_corrected:
            skipped.append(
                f"{event['event_id']} ({event['metric']}): {corrected} corrected rows in its "
                f"window, {training.drift_min_corrected} needed"
            )
            continue
        requests.append(
            dg.RunRequest(
                run_key=f"retrain-drift-{event['event_id']}",
                tags={
                    TRIGGER_TAG: "drift",
                    "flywheel/drift_event": event["event_id"],
                    "flywheel/corrected_rows": str(corrected),
                },
            )
        )
    new_cursor = json.dumps({"batch": max(events["_ingest_batch"].to_pylist())})
    return dg.SensorResult(
        run_requests=requests,
        skip_reason=None if requests else "; ".join(skipped),
        cursor=new_cursor,
    )


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests retrain_job for each failure cluster that reached "
    "failure_cluster_min_size failing rows, and again each time it doubles: the run key names "
    "the cluster and its size bucket (the threshold times a power of two), and the run's "
    "snapshot records the cluster so training can weight its rows.",
)
def failure_cluster_sensor(
    context: dg.SensorEvaluationContext, lake: LakeResource, training: TrainingResource
) -> dg.SensorResult:
    in_flight = run_in_flight(context.instance, retrain_job.name)
    if in_flight:
        return dg.SensorResult(
            skip_reason=f"retrain run {in_flight} is still in progress", cursor=context.cursor
        )
    clusters = lake.lake().read(FAILURE_CLUSTERS.name, columns=["cluster_id", "size"])
    if clusters is None:
        return dg.SensorResult(skip_reason="no failure_clusters table yet", cursor=context.cursor)
    threshold = training.failure_cluster_min_size
    sizes = sorted(
        zip(clusters["cluster_id"].to_pylist(), clusters["size"].to_pylist(), strict=True),
        key=lambda c: (-c[1], c[0]),
    )
    crossing = {cid: (size, size_bucket(size, threshold)) for cid, size in sizes}
    crossing = {cid: sb for cid, sb in crossing.items() if sb[1] is not None}
    if not crossing:
        largest = f"; largest {sizes[0][0]} with {sizes[0][1]}" if sizes else ""
        return dg.SensorResult(
            skip_reason=f"no failure cluster has {threshold} failing rows or more "
            f"({len(sizes)} clusters{largest})",
            cursor=context.cursor,
        )
    requested = (json.loads(context.cursor) if context.cursor else {}).get("requested", {})
    requests = [
        dg.RunRequest(
            run_key=f"retrain-cluster-{cid}-{bucket}",
            tags={
                TRIGGER_TAG: "failure_cluster",
                FAILURE_CLUSTER_TAG: cid,
                "flywheel/cluster_size": str(size),
            },
        )
        for cid, (size, bucket) in sorted(crossing.items())
        if requested.get(cid) != bucket
    ]
    # Only clusters still over the threshold stay in the cursor; the run keys are what keep a
    # bucket from being requested twice, also after a cursor is lost.
    cursor = json.dumps({"requested": {cid: b for cid, (_, b) in sorted(crossing.items())}})
    if not requests:
        each = ", ".join(f"{cid} ({size})" for cid, (size, _) in sorted(crossing.items()))
        return dg.SensorResult(
            skip_reason=f"every cluster at {threshold} or more was requested at its size: {each}",
            cursor=cursor,
        )
    return dg.SensorResult(run_requests=requests, cursor=cursor)


# Commits that only take rows out for privacy (an erasure, a retention run): they bring nothing
# new to build from, and they carry no build's stamps.
PRIVACY_DELETES = ("erase", "expire")


def _data_commits(lake: Lake, table: str):
    dt = lake.open(table)
    for commit in dt.history(limit=200) if dt is not None else []:
        if commit.get("operation") in MAINTENANCE_OPERATIONS:
            continue
        if commit.get("flywheel.operation") in PRIVACY_DELETES:
            continue
        yield commit


def last_addition(lake: Lake, table: str) -> int:
    """The version of the table's latest commit that could bring new rows (-1: none)."""
    return next((int(c["version"]) for c in _data_commits(lake, table)), -1)


def built_from(lake: Lake, table: str) -> dict[str, int]:
    """The source versions stamped by the latest build of `table`, looking past the deletes an
    erasure or retention made since (those keep the build's stamps valid)."""
    for commit in _data_commits(lake, table):
        return json.loads(commit.get("source_versions") or "{}")
    return {}
