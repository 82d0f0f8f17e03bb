"""The drift monitor: the app's own feedback watched for drift, its events stored in the lake."""

import dagster as dg
from pydantic import Field

from ..catalog.curated import FEEDBACK_METRICS
from ..catalog.models import DRIFT_MONITOR
from ..contract.records import DRIFT_EVENTS
from ..ingest.pipeline import ingest_records
from ..metadata import asset_args, rows_now, table_metadata
from ..reports import DriftReport
from ..resources import LakeResource
from .monitor import MonitorPolicy, monitor


class MonitorConfig(dg.Config):
    window_days: int = Field(default=7, description="Rolling window of the negative-feedback rate.")
    threshold: float = Field(
        default=0.20, description="A model version above this negative-feedback rate drifts."
    )
    min_feedback: int = Field(
        default=20, description="Fewer feedback events in the window than this: not judged."
    )


@dg.asset(
    name=DRIFT_MONITOR.name,
    **asset_args(DRIFT_MONITOR.name),
    deps=[FEEDBACK_METRICS.name],
)
def drift_monitor(
    context: dg.AssetExecutionContext, config: MonitorConfig, lake: LakeResource
) -> dg.MaterializeResult:
    the_lake = lake.lake()
    before = rows_now(the_lake, DRIFT_MONITOR.name)
    events_before = rows_now(the_lake, DRIFT_EVENTS.table)

    def store(events: list[dict]) -> int:
        # The same validation, de-duplication and ledger as a detector's landing file.
        report = ingest_records(
            the_lake,
            DRIFT_EVENTS,
            events,
            source=f"_drift_monitor/{context.run.run_id}.jsonl",
            run_id=context.run.run_id,
        )
        return report.totals()["valid"]

    report = monitor(
        the_lake, MonitorPolicy(config.window_days, config.threshold, config.min_feedback), store
    )
    if report.deferred:
        context.log.warning(
            f"drift events and this evaluation wait for the next run: {report.deferred}"
        )
    elif report.events:
        ids = ", ".join(e["event_id"] for e in report.events)
        context.log.warning(f"drift event(s) stored in drift_events: {ids}")
    if report.stored:
        # drift_events is ingest's asset; the monitor's commit to it shows on its timeline too.
        context.log_event(
            dg.AssetMaterialization(
                DRIFT_EVENTS.table,
                description=f"drift_monitor stored {report.stored} drift event(s)",
                metadata=table_metadata(the_lake, DRIFT_EVENTS.table, events_before),
            )
        )
    drift = DriftReport(breaches=report.breaches, events_stored=report.stored)
    return dg.MaterializeResult(
        metadata=table_metadata(
            the_lake, DRIFT_MONITOR.name, before, evaluated=report.committed, **drift.metadata()
        )
    )


ASSETS = [drift_monitor]
