"""Jobs of the versioning stage: roll a table back from the Launchpad, and keep tables compact."""

from datetime import datetime

import dagster as dg
from pydantic import Field

from .. import catalog
from ..catalog.governance import ROLLBACK_AUDIT
from ..lake.maintenance import MaintenanceReport, maintain_all
from ..lake.versions import VersionUnavailable
from ..privacy.resources import PrivacyResource
from ..resources import LakeResource
from .rollback import (
    TARGETS,
    ReadmitResult,
    RollbackError,
    RollbackResult,
    readmit,
    rollback_table,
)


class RollbackConfig(dg.Config):
    table: str = Field(description=f"The table to roll back: one of {', '.join(sorted(TARGETS))}.")
    to_version: int | None = Field(
        default=None, description="The version to restore (see `flywheel history TABLE`)."
    )
    to_timestamp: str | None = Field(
        default=None,
        description="Or: restore the version current at this ISO-8601 time, with a time zone "
        "(e.g. 2026-11-16T00:00:00+00:00).",
    )
    reason: str = Field(description="Why; recorded in rollback_audit.")


@dg.op(
    description="Restore a table to an earlier version (a new commit), exclude the rows it took "
    "away from later builds, audit it, and list the models trained on the rolled-back versions."
)
def restore_table_version(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    lake: LakeResource,
    privacy: PrivacyResource,
) -> RollbackResult:
    try:
        when = datetime.fromisoformat(config.to_timestamp) if config.to_timestamp else None
    except ValueError:
        raise dg.Failure(f"to_timestamp {config.to_timestamp!r} is not an ISO-8601 time") from None
    the_lake = lake.lake()
    try:
        result = rollback_table(
            the_lake,
            config.table,
            key=privacy.key(),
            reason=config.reason,
            to_version=config.to_version,
            to_timestamp=when,
            actor="dagster",
            run_id=context.run_id,
        )
    except (RollbackError, VersionUnavailable) as exc:
        raise dg.Failure(str(exc)) from None
    models = result.affected_models
    context.log_event(
        dg.AssetMaterialization(
            config.table,
            description=f"rolled back to version {result.to_version}: {config.reason}",
            metadata={
                "delta_version": the_lake.stats(config.table).version,
                "dagster/row_count": result.rows_after,
                "rows_added": result.rows_after - result.rows_before,
                "rolled_back_from": result.from_version,
                "rolled_back_to": result.to_version,
                "rollback_id": result.rollback_id,
                "ids_excluded": result.ids_count,
                "erased_rows_removed": result.erased_rows_removed,
                "held_out_rows_removed": result.held_out_rows_removed,
                "affected_models": dg.MetadataValue.md(affected_models_markdown(models)),
                "affected_model_ids": dg.MetadataValue.json([m["model_id"] for m in models]),
            },
        )
    )
    context.log_event(
        dg.AssetMaterialization(
            ROLLBACK_AUDIT.name,
            metadata={
                "delta_version": the_lake.stats(ROLLBACK_AUDIT.name).version,
                "rollback_id": result.rollback_id,
            },
        )
    )
    context.log.info(
        f"{config.table}: version {result.from_version} -> {result.to_version} "
        f"(new version {result.restored_version}); {result.ids_count} id(s) excluded; "
        f"{len(models)} affected model(s): {', '.join(m['model_id'] for m in models) or 'none'}"
    )
    return result


@dg.job(
    description="Roll one table back to an earlier version or time, from the Launchpad: restore, "
    "exclude the rolled-back rows from later runs, audit, and name the affected models."
)
def rollback_table_job():
    restore_table_version()


class ReadmitConfig(dg.Config):
    rollback_id: str = Field(
        description="The rollback to lift (see `flywheel history --rollbacks`)."
    )
    reason: str = Field(description="Why; recorded in rollback_audit.")


@dg.op(
    description="Lift a rollback's exclusions: appended tables get the rows back from the version "
    "before the rollback, tables rebuilt whole get them on the next run. Erased users stay out."
)
def readmit_rolled_back_rows(
    context: dg.OpExecutionContext,
    config: ReadmitConfig,
    lake: LakeResource,
    privacy: PrivacyResource,
) -> ReadmitResult:
    the_lake = lake.lake()
    try:
        result = readmit(
            the_lake,
            config.rollback_id,
            key=privacy.key(),
            reason=config.reason,
            actor="dagster",
            run_id=context.run_id,
        )
    except (RollbackError, VersionUnavailable) as exc:
        raise dg.Failure(str(exc)) from None
    if result.rows_restored:
        stats = the_lake.stats(result.table)
        context.log_event(
            dg.AssetMaterialization(
                result.table,
                description=f"re-admitted {result.rows_restored} row(s) of {result.rollback_id}",
                metadata={
                    "delta_version": stats.version,
                    "dagster/row_count": stats.rows,
                    "rows_added": result.rows_restored,
                    "rollback_id": result.rollback_id,
                },
            )
        )
    context.log_event(
        dg.AssetMaterialization(
            ROLLBACK_AUDIT.name,
            metadata={
                "delta_version": the_lake.stats(ROLLBACK_AUDIT.name).version,
                "rollback_id": result.rollback_id,
                "ids_readmitted": result.ids_readmitted,
            },
        )
    )
    context.log.info(
        f"{result.rollback_id}: {result.ids_readmitted} id(s) re-admitted; {result.note}"
    )
    return result


@dg.job(
    description="Re-admit the rows a rollback took away, from the Launchpad or `flywheel readmit`."
)
def readmit_rollback_job():
    readmit_rolled_back_rows()


class MaintenanceConfig(dg.Config):
    min_files: int = Field(
        default=8, description="Compact a table once it has at least this many data files."
    )
    vacuum: bool = Field(
        default=True,
        description="Delete files removed longer ago than the rollback window (never sooner).",
    )


@dg.op(
    description="For every Delta table: set retention to the rollback window, compact small "
    "files (rows unchanged), and vacuum files removed before the window."
)
def compact_and_vacuum(
    context: dg.OpExecutionContext, config: MaintenanceConfig, lake: LakeResource
) -> list[MaintenanceReport]:
    reports = list(
        maintain_all(
            lake.lake(),
            [t.name for t in catalog.TABLES],
            min_files=config.min_files,
            vacuum=config.vacuum,
        )
    )
    for report in reports:
        context.log.info(
            f"{report.table}: files {report.files_before} -> {report.files_after}, "
            f"rows {report.rows}, {report.files_vacuumed} file(s) vacuumed"
        )
    return reports


@dg.job(
    description="Table upkeep: compaction and vacuum held to the rollback window, so file counts "
    "stay low and every version inside the window stays restorable."
)
def table_maintenance_job():
    compact_and_vacuum()


def affected_models_markdown(models: list[dict]) -> str:
    if not models:
        return "No registered model trained on the rolled-back versions."
    lines = ["| model | status | data versions |", "|---|---|---|"]
    for m in models:
        versions = " ".join(f"{t}@{v}" for t, v in sorted(m["dataset_versions"].items()))
        lines.append(f"| {m['model_id']} | {m['status']} | {versions} |")
    return "\n".join(lines)
