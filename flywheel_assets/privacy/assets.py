"""Silver assets: redacted, user-hashed copies of the bronze tables, within a sampling budget."""

import dagster as dg
from pydantic import Field

from ..ingest.contract import ANNOTATIONS, DRIFT_EVENTS, FEEDBACK, INTERACTIONS
from ..metadata import column_schema, rows_now, table_metadata
from ..resources import LakeResource, PrivacyResource
from .erasure import TOMBSTONES
from .pipeline import (
    REDACTED_ANNOTATIONS,
    REDACTED_FEEDBACK,
    REDACTED_LOGS,
    RedactionReport,
    redact_annotations,
    redact_feedback,
    redact_logs,
)
from .sampling import SamplingPolicy

GROUP = "privacy"


class SamplingConfig(dg.Config):
    healthy_share: float = Field(
        default=0.05,
        description="Share of healthy interactions (no feedback, annotation, low confidence or "
        "drift) kept, chosen by a keyed hash of request_id so re-runs keep the same rows.",
    )
    low_logprob: float = Field(
        default=-3.0,
        description="response_logprob below this marks a low-confidence answer, always kept.",
    )


def _metadata(lake, spec, before: int, report: RedactionReport) -> dict:
    return table_metadata(
        lake,
        spec.name,
        before,
        ingest_batches=dg.MetadataValue.json([report.watermark_before, report.watermark]),
        pii_redacted=dg.MetadataValue.json(report.pii_found),
        erased_rows_skipped=report.erased_skipped,
        rolled_back_rows_skipped=report.rolled_back_skipped,
    )


@dg.asset(
    name=REDACTED_LOGS.name,
    deps=[INTERACTIONS.table, FEEDBACK.table, ANNOTATIONS.table, DRIFT_EVENTS.table],
    group_name=GROUP,
    kinds={"delta"},
    description="One row per kept interaction (request_id): prompt, chat messages and response "
    "with PII replaced by typed placeholders, user and session as keyed hashes, why it was kept "
    "(feedback, annotation, low_confidence, drift_window or sampled) and PII counts by kind.",
    metadata={"dagster/column_schema": column_schema(REDACTED_LOGS.schema)},
)
def redacted_logs(
    context: dg.AssetExecutionContext,
    config: SamplingConfig,
    lake: LakeResource,
    privacy: PrivacyResource,
) -> dg.MaterializeResult:
    the_lake = lake.lake()
    before = rows_now(the_lake, REDACTED_LOGS.name)
    report = redact_logs(
        the_lake,
        privacy.detector(),
        privacy.key(),
        SamplingPolicy(config.healthy_share, config.low_logprob),
    )
    context.log.info(f"sampling: {report.kept}; late signals kept {report.late_kept}")
    meta = _metadata(the_lake, REDACTED_LOGS, before, report)
    meta.update(
        kept_by_reason=dg.MetadataValue.json(report.kept),
        dropped=report.kept.get("unsampled", 0),
        late_signals_kept=report.late_kept,
    )
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    name=REDACTED_FEEDBACK.name,
    deps=[FEEDBACK.table],
    group_name=GROUP,
    kinds={"delta"},
    description="One row per feedback event (feedback_id) with correction and comment redacted "
    "and the user as a keyed hash.",
    metadata={"dagster/column_schema": column_schema(REDACTED_FEEDBACK.schema)},
)
def redacted_feedback(lake: LakeResource, privacy: PrivacyResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    before = rows_now(the_lake, REDACTED_FEEDBACK.name)
    report = redact_feedback(the_lake, privacy.detector(), privacy.key())
    return dg.MaterializeResult(metadata=_metadata(the_lake, REDACTED_FEEDBACK, before, report))


@dg.asset(
    name=REDACTED_ANNOTATIONS.name,
    deps=[ANNOTATIONS.table],
    group_name=GROUP,
    kinds={"delta"},
    description="One row per operator annotation (annotation_id) with its correction redacted.",
    metadata={"dagster/column_schema": column_schema(REDACTED_ANNOTATIONS.schema)},
)
def redacted_annotations(lake: LakeResource, privacy: PrivacyResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    before = rows_now(the_lake, REDACTED_ANNOTATIONS.name)
    report = redact_annotations(the_lake, privacy.detector(), privacy.key())
    return dg.MaterializeResult(metadata=_metadata(the_lake, REDACTED_ANNOTATIONS, before, report))


erasure_tombstones = dg.AssetSpec(
    TOMBSTONES.name,
    group_name=GROUP,
    kinds={"delta"},
    description="One row per erasure request: the user's keyed hash (never the raw id), their "
    "request ids, when, why, and the tables touched. Written by erase_user_job.",
    metadata={"dagster/column_schema": column_schema(TOMBSTONES.schema)},
)

ASSETS = [redacted_logs, redacted_feedback, redacted_annotations, erasure_tombstones]
