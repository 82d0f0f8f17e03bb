"""Jobs that span every stage: the refresh, and re-redaction (privacy rewrites, curation
rebuilds)."""

import dagster as dg
from pydantic import Field

from ..catalog.curated import CURATION_STATE, TAGGED_ROWS
from ..curation.assets import CurationConfig
from ..curation.pipeline import CURATED, build_curated_sets, build_tagged_rows
from ..privacy.reredaction import (
    ReredactionError,
    ReredactionReport,
    TableReport,
    redact_again,
    vacuum_reporting,
)
from ..privacy.resources import PrivacyResource
from ..resources import LakeResource
from ..training.assets import RETRAIN_ASSETS

refresh_job = dg.define_asset_job(
    "refresh_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*RETRAIN_ASSETS),
    description="Materialize every dataset asset, landing to curated tables and the drift monitor, "
    "with its checks (retraining is retrain_job's).",
)


class RedactAgainConfig(dg.Config):
    since_version: str = Field(
        default="",
        description="Redact again only the rows this detector version, and any other version "
        "after it, wrote. Empty: every row a detector other than the current one wrote.",
    )
    curation: CurationConfig = Field(
        default_factory=CurationConfig,
        description="The settings the curated sets are rebuilt with: give the ones "
        "refresh_job's curation assets use, so the sets change only where the text did.",
    )


@dg.op(
    description="Redact again, with the current detector, the rows an older detector wrote to "
    "the redacted tables (from the raw rows, or the stored text where retention expired them), "
    "rebuild the curated sets from them and vacuum, so no version holding the old text loads."
)
def redact_rows_again(
    context: dg.OpExecutionContext,
    config: RedactAgainConfig,
    lake: LakeResource,
    privacy: PrivacyResource,
) -> ReredactionReport:
    the_lake, detector, key = lake.lake(), privacy.detector(), privacy.key()
    try:
        report = redact_again(
            the_lake, detector, key, since_version=config.since_version.strip() or None
        )
    except ReredactionError as exc:
        raise dg.Failure(str(exc)) from None
    for name, table in report.tables.items():
        stats = the_lake.stats(name)
        context.log_event(
            dg.AssetMaterialization(
                name,
                description=f"redacted again with detector {report.detector_version}: "
                f"{table.rows_rewritten} of {table.rows_checked} rows rewritten",
                metadata={
                    "delta_version": stats.version,
                    "dagster/row_count": stats.rows,
                    "detector_version": report.detector_version,
                    "rows_checked": table.rows_checked,
                    "rows_rewritten": table.rows_rewritten,
                    "rows_from_raw": table.rows_from_raw,
                    "rows_from_stored_text": table.rows_from_stored,
                    "unrestorable_versions": dg.MetadataValue.json(table.unrestorable_versions),
                },
            )
        )
    if not report.rows_rewritten:
        context.log.info(
            f"detector {report.detector_version}: no redacted row changed"
            + (f" ({len(report.tables)} table(s) checked)" if report.tables else "")
        )
        return report
    # The curated tables hold text derived from the rewritten rows: rebuilt whole from them,
    # then vacuumed like the redacted tables.
    policy = config.curation.policy()
    tagging = build_tagged_rows(
        the_lake, detector, config.curation.weights(), config.curation.cap(), policy
    )
    curated = build_curated_sets(the_lake, detector, key, policy)
    failed = [c for c in (*tagging.checks, *curated.checks) if not c.passed]
    if not (tagging.committed and curated.committed) or failed:
        raise dg.Failure(
            "the redacted tables were redacted again, but the curated sets were not rebuilt "
            f"(checks failed: {', '.join(sorted({c.check for c in failed})) or 'none'}); they "
            "still hold the old text until a refresh_job run rebuilds them"
        )
    for name in (TAGGED_ROWS.name, *(spec.name for spec in CURATED), CURATION_STATE.name):
        gone = vacuum_reporting(the_lake, name)
        if gone:
            table = report.tables.setdefault(name, TableReport(name))
            table.unrestorable_versions = gone
        stats = the_lake.stats(name)
        context.log_event(
            dg.AssetMaterialization(
                name,
                description=f"rebuilt after re-redaction with detector {report.detector_version}",
                metadata={
                    "delta_version": stats.version,
                    "dagster/row_count": stats.rows,
                    "unrestorable_versions": dg.MetadataValue.json(gone),
                },
            )
        )
    context.log.info(
        f"detector {report.detector_version}: {report.rows_rewritten} row(s) rewritten; "
        "versions no longer restorable: "
        + (
            "; ".join(
                f"{n} {t.unrestorable_versions}"
                for n, t in report.tables.items()
                if t.unrestorable_versions
            )
            or "none"
        )
    )
    return report


@dg.job(
    description="Redact again with the current detector: rows older detectors redacted are "
    "rewritten in place, the curated sets rebuilt, and the versions holding the old text "
    "vacuumed away (re-redaction wins over rollback, like erasure)."
)
def redact_again_job():
    redact_rows_again()
