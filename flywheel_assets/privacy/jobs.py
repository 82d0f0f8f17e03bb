"""Privacy jobs: expire raw data on a schedule and erase one user on request."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from .. import catalog
from ..catalog.governance import TOMBSTONES
from ..catalog.raw import INGEST_IDS
from ..resources import LakeResource, LandingResource
from .erasure import ErasureReport, erase_user_hash
from .resources import PrivacyResource
from .retention import LandingAction, RetentionReport, expire_raw


class RetentionConfig(dg.Config):
    raw_days: int = Field(
        default=30,
        description="Raw rows (unredacted text) older than this many days, by event time or by "
        "ingestion time (whichever is older), are deleted and vacuumed away.",
    )
    landing_files: LandingAction = Field(
        default=LandingAction.DELETE,
        description="What to do with landing files ingested longer ago than raw_days: keep, "
        "archive (move under _archive/) or delete.",
    )


@dg.op(description="Delete raw rows and landing files older than the retention window.")
def expire_raw_data(
    context: dg.OpExecutionContext,
    config: RetentionConfig,
    lake: LakeResource,
    landing: LandingResource,
) -> RetentionReport:
    if config.raw_days < 1:
        raise dg.Failure("raw_days must be at least 1")
    cutoff = datetime.now(UTC) - timedelta(days=config.raw_days)
    the_lake = lake.lake()
    report = expire_raw(
        the_lake, landing.zone(), cutoff=cutoff, landing_action=config.landing_files
    )
    for table, deleted in report.rows_deleted.items():
        if deleted:
            stats = the_lake.stats(table)
            context.log_event(
                dg.AssetMaterialization(
                    table,
                    description=f"retention: {deleted} rows older than {cutoff:%Y-%m-%d} removed",
                    metadata={
                        "delta_version": stats.version,
                        "dagster/row_count": stats.rows,
                        "rows_deleted": deleted,
                    },
                )
            )
    context.log.info(
        f"retention cutoff {cutoff.isoformat()}: rows deleted {report.rows_deleted}; "
        f"landing files {config.landing_files.value}: {len(report.landing_files)}"
    )
    return report


@dg.job(description="Expire raw data: delete rows and landing files older than the window.")
def retention_job():
    expire_raw_data()


class EraseConfig(dg.Config):
    user_hash: str = Field(
        description="The keyed hash of the user id to erase (`flywheel forget USER_ID` computes "
        "it): run config is kept in Dagster's run storage, where erasure cannot reach, so the "
        "raw id is never passed."
    )
    reason: str = Field(
        default="", description="Why (for example a ticket number); never the user's name."
    )


@dg.op(description="Erase one user from every table and every readable version.")
def erase_user_rows(
    context: dg.OpExecutionContext,
    config: EraseConfig,
    lake: LakeResource,
    privacy: PrivacyResource,
) -> ErasureReport:
    the_lake = lake.lake()
    # The id ledger holds no user field and must keep every id (a record sent again stays out).
    tables = [t.name for t in catalog.TABLES if t.name not in (TOMBSTONES.name, INGEST_IDS.name)]
    try:
        report = erase_user_hash(
            the_lake, config.user_hash, privacy.key(), tables, reason=config.reason
        )
    except ValueError as exc:
        raise dg.Failure(str(exc)) from None
    for table, info in report.tables.items():
        context.log_event(
            dg.AssetMaterialization(
                table,
                description=f"erasure: {info['rows_deleted']} rows of one user removed",
                metadata={"delta_version": info["version_after"], **info},
            )
        )
    stats = the_lake.stats(TOMBSTONES.name)
    context.log_event(
        dg.AssetMaterialization(
            TOMBSTONES.name,
            metadata={
                "delta_version": stats.version,
                "dagster/row_count": stats.rows,
                "tables_touched": dg.MetadataValue.json(report.tables),
            },
        )
    )
    context.log.info(
        f"erasure {report.erasure_id}: {report.rows_deleted} rows in {len(report.tables)} "
        f"tables, {len(report.request_ids)} requests"
    )
    if report.models:
        context.log.warning(
            f"models trained on the erased rows (retire them): {', '.join(report.models)}"
        )
    return report


@dg.job(description="Right to erasure: remove one user's rows from every table, raw to curated.")
def erase_user_job():
    erase_user_rows()
