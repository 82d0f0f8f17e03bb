"""Checks on the model registry."""

import dagster as dg

from ..catalog.models import MODEL_REGISTRY
from ..resources import LakeResource
from .registry import PROMOTED, Registry


@dg.asset_check(
    asset=MODEL_REGISTRY.name,
    name="at_most_one_promoted_model",
    blocking=True,
    description="Exactly one model (or none yet) is promoted: production is never ambiguous.",
)
def at_most_one_promoted_model(lake: LakeResource) -> dg.AssetCheckResult:
    promoted = [m["model_id"] for m in Registry(lake.lake()).models() if m["status"] == PROMOTED]
    return dg.AssetCheckResult(
        passed=len(promoted) <= 1, metadata={"promoted": dg.MetadataValue.json(promoted)}
    )


CHECKS = [at_most_one_promoted_model]
