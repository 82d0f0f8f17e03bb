"""Blocking checks on the curated tables: no PII, no held-out prompt in training, real pairs."""

import dagster as dg

from ..privacy.checks import no_residual_pii_check
from ..resources import LakeResource
from .quality import TEXT_COLUMNS, TRAINING_SETS, holdout_leaks, identical_pairs


def _no_holdout_leakage(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=table,
        name="no_holdout_leakage",
        blocking=True,
        additional_deps=["eval_cases"],
        description=f"No held-out eval prompt appears in {table}: no training on the exam.",
    )
    def check(lake: LakeResource) -> dg.AssetCheckResult:
        the_lake = lake.lake()
        leaks = holdout_leaks(the_lake.read("eval_cases"), the_lake.read(table))
        return dg.AssetCheckResult(
            passed=not leaks,
            metadata={"leaked_prompts": len(leaks), "sample": dg.MetadataValue.json(leaks[:5])},
        )

    return check


@dg.asset_check(
    asset="dpo_set",
    name="chosen_differs_from_rejected",
    blocking=True,
    description="Every preference pair has two different texts.",
)
def chosen_differs_from_rejected(lake: LakeResource) -> dg.AssetCheckResult:
    same = identical_pairs(lake.lake().read("dpo_set", columns=["chosen", "rejected"]))
    return dg.AssetCheckResult(passed=same == 0, metadata={"identical_pairs": same})


CHECKS = [
    *(no_residual_pii_check(table, *cols) for table, cols in TEXT_COLUMNS.items()),
    *(_no_holdout_leakage(t) for t in TRAINING_SETS),
    chosen_differs_from_rejected,
]
