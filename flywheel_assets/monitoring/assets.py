"""The drift monitor: the app's own feedback watched for drift, its events stored in the lake; and
what each promoted model improved, from the registry."""

import json

import dagster as dg
from pydantic import Field

from ..catalog.curated import FEEDBACK_METRICS
from ..catalog.models import DRIFT_MONITOR, MODEL_IMPROVEMENT, MODEL_REGISTRY, REGISTRY_AUDIT
from ..contract.records import DRIFT_EVENTS
from ..curation.builds import FINGERPRINT_KEY
from ..ingest.pipeline import ingest_records
from ..metadata import asset_args, rows_now, table_metadata, version_of
from ..reports import DriftReport
from ..resources import LakeResource
from ..training.registry import Registry
from .improvement import DEFAULT_TARGET, improvement_rows, meets_target
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


class ImprovementConfig(dg.Config):
    target: float = Field(
        default=DEFAULT_TARGET,
        description="The held-out gain the latest promotion should reach: relative to the "
        "holdout pass rate before (0.03 = 3%), or in points where production passed none.",
    )


IMPROVEMENT_CHECK = "model_improvement_meets_target"


@dg.asset(
    name=MODEL_IMPROVEMENT.name,
    **asset_args(MODEL_IMPROVEMENT.name),
    deps=[MODEL_REGISTRY.name, REGISTRY_AUDIT.name],
    check_specs=[
        dg.AssetCheckSpec(
            IMPROVEMENT_CHECK,
            asset=MODEL_IMPROVEMENT.name,
            description="The latest promotion raised the held-out pass rate by at least the "
            "target (warns).",
        )
    ],
)
def model_improvement(config: ImprovementConfig, lake: LakeResource):
    the_lake = lake.lake()
    before = rows_now(the_lake, MODEL_IMPROVEMENT.name)
    # The table is small and rebuilt whole, but only when the registry or its audit changed.
    fingerprint = json.dumps(
        {t: version_of(the_lake, t) for t in (MODEL_REGISTRY.name, REGISTRY_AUDIT.name)},
        sort_keys=True,
    )
    registry = Registry(the_lake)
    improvement = improvement_rows(registry.models(), audit=registry.audit())
    rebuilt = the_lake.last_commit_metadata(MODEL_IMPROVEMENT.name).get(FINGERPRINT_KEY) != (
        fingerprint
    )
    if rebuilt:
        the_lake.overwrite(MODEL_IMPROVEMENT, improvement, metadata={FINGERPRINT_KEY: fingerprint})
    verdict = meets_target(improvement, config.target)
    latest = next((r for r in improvement.to_pylist() if r["model_id"] == verdict.model_id), None)
    plots = {}
    if latest is not None:
        # Float entries are what the asset's Plots tab draws over materializations.
        for column in (
            "likelihood_gain",
            "relative_gain",
            "pass_rate_gain",
            "mean_gain",
            "gain_low",
            "gain_high",
        ):
            if latest[column] is not None:
                plots[f"latest_{column}"] = dg.FloatMetadataValue(latest[column])
    yield dg.MaterializeResult(
        metadata=table_metadata(
            the_lake,
            MODEL_IMPROVEMENT.name,
            before,
            rebuilt=rebuilt,
            promoted_models=improvement.num_rows,
            latest_model=verdict.model_id or "",
            **plots,
        )
    )
    metadata: dict = {"target": dg.FloatMetadataValue(config.target), "summary": verdict.message}
    if verdict.model_id:
        metadata["model_id"] = verdict.model_id
    if verdict.gain is not None:
        metadata["gain"] = dg.FloatMetadataValue(verdict.gain)
        metadata["measure"] = verdict.measure
    yield dg.AssetCheckResult(
        check_name=IMPROVEMENT_CHECK,
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=verdict.message,
        metadata=metadata,
    )


ASSETS = [drift_monitor, model_improvement]
