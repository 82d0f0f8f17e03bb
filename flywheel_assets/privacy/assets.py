"""Silver assets: redacted, user-hashed copies of the bronze tables, within a sampling budget."""

import dagster as dg
from pydantic import Field

from ..catalog.governance import TOMBSTONES
from ..catalog.redacted import REDACTED_ANNOTATIONS, REDACTED_FEEDBACK, REDACTED_LOGS
from ..contract.records import ANNOTATIONS, DRIFT_EVENTS, FEEDBACK, INTERACTIONS
from ..metadata import asset_args, rows_now, table_metadata
from ..reports import SamplingReport
from ..resources import LakeResource
from .pipeline import RedactionReport, redact_annotations, redact_feedback, redact_logs
from .resources import PrivacyResource
from .sampling import SamplingPolicy


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
    **asset_args(REDACTED_LOGS.name),
    deps=[INTERACTIONS.table, FEEDBACK.table, ANNOTATIONS.table, DRIFT_EVENTS.table],
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
        **SamplingReport(kept_by_reason=report.kept).metadata(),
        dropped=report.kept.get("unsampled", 0),
        late_signals_kept=report.late_kept,
    )
    return dg.MaterializeResult(metadata=meta)


@dg.asset(
    name=REDACTED_FEEDBACK.name,
    **asset_args(REDACTED_FEEDBACK.name),
    deps=[FEEDBACK.table],
)
def redacted_feedback(lake: LakeResource, privacy: PrivacyResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    before = rows_now(the_lake, REDACTED_FEEDBACK.name)
    report = redact_feedback(the_lake, privacy.detector(), privacy.key())
    return dg.MaterializeResult(metadata=_metadata(the_lake, REDACTED_FEEDBACK, before, report))


@dg.asset(
    name=REDACTED_ANNOTATIONS.name,
    **asset_args(REDACTED_ANNOTATIONS.name),
    deps=[ANNOTATIONS.table],
)
def redacted_annotations(lake: LakeResource, privacy: PrivacyResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    before = rows_now(the_lake, REDACTED_ANNOTATIONS.name)
    report = redact_annotations(the_lake, privacy.detector(), privacy.key())
    return dg.MaterializeResult(metadata=_metadata(the_lake, REDACTED_ANNOTATIONS, before, report))


erasure_tombstones = dg.AssetSpec(TOMBSTONES.name, **asset_args(TOMBSTONES.name))

ASSETS = [redacted_logs, redacted_feedback, redacted_annotations, erasure_tombstones]
