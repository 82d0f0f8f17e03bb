"""The training stage's jobs: the retrain, and promotion changes made by hand."""

import dagster as dg
from pydantic import Field

from ..catalog.models import MODEL_REGISTRY, REGISTRY_AUDIT
from ..resources import LakeResource
from .assets import RETRAIN_ASSETS
from .registry import Registry, RegistryError

retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=dg.AssetSelection.assets(*RETRAIN_ASSETS),
    description="Pin the curated sets' versions, train a LoRA adapter on them, evaluate it against "
    "the production model, and promote it only through the gate; every model is registered.",
    tags={"flywheel/trigger": "manual"},
)


class PromoteConfig(dg.Config):
    model_id: str = Field(description="The registered model to promote (see `flywheel models`).")
    reason: str = Field(default="promoted by hand", description="Why; recorded in the audit.")


class RollbackModelConfig(dg.Config):
    reason: str = Field(default="rolled back by hand", description="Why; recorded in the audit.")


def _record_changes(
    context: dg.OpExecutionContext, registry: Registry, changes: list[tuple[str, str, str]]
) -> list[tuple[str, str, str]]:
    lake = registry.lake
    for table in (MODEL_REGISTRY.name, REGISTRY_AUDIT.name):
        stats = lake.stats(table)
        context.log_event(
            dg.AssetMaterialization(
                table,
                metadata={
                    "delta_version": stats.version,
                    "dagster/row_count": stats.rows,
                    "status_changes": dg.MetadataValue.json([list(c) for c in changes]),
                },
            )
        )
    for model_id, before, after in changes:
        context.log.info(f"{model_id}: {before} -> {after}")
    return changes


@dg.op(description="Promote a registered model by hand; the model promoted before it is retired.")
def promote_registered_model(
    context: dg.OpExecutionContext, config: PromoteConfig, lake: LakeResource
) -> list[tuple[str, str, str]]:
    registry = Registry(lake.lake())
    try:
        changes = registry.promote(config.model_id, reason=config.reason, actor=context.run_id)
    except RegistryError as exc:
        raise dg.Failure(str(exc)) from None
    return _record_changes(context, registry, changes)


@dg.job(description="Promote one registered model (`flywheel promote`); the change is audited.")
def promote_model_job():
    promote_registered_model()


@dg.op(description="Retire the promoted model and re-promote the one promoted before it.")
def roll_back_promoted_model(
    context: dg.OpExecutionContext, config: RollbackModelConfig, lake: LakeResource
) -> list[tuple[str, str, str]]:
    registry = Registry(lake.lake())
    try:
        changes = registry.rollback(reason=config.reason, actor=context.run_id)
    except RegistryError as exc:
        raise dg.Failure(str(exc)) from None
    return _record_changes(context, registry, changes)


@dg.job(
    description="Roll production back to the model promoted before (`flywheel rollback-model`)."
)
def rollback_model_job():
    roll_back_promoted_model()
