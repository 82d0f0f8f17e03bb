"""Blocking checks on the curated tables, evaluated on the staged rows before they are published.

Write-audit-publish: tagged_rows and curated_sets build their tables in memory, run these rules on
them, and commit only when every rule passes. A failing rule is reported as a failed check and the
run fails with the published tables untouched.
"""

import dagster as dg

from ..metadata import check_metadata
from .quality import TRAINING_SETS, CheckOutcome

_DESCRIPTIONS = {
    "no_residual_pii": "No PII detector fires on the table's text columns (checked before "
    "publish).",
    "no_holdout_leakage": "No held-out eval prompt appears in the training set: no training on "
    "the exam (checked before publish).",
    "chosen_differs_from_rejected": "Every preference pair has two different texts (checked "
    "before publish).",
}


def check_specs(tables: list[str]) -> list[dg.AssetCheckSpec]:
    specs = [_spec(table, "no_residual_pii") for table in tables]
    specs += [_spec(t, "no_holdout_leakage", ["eval_cases"]) for t in tables if t in TRAINING_SETS]
    if "dpo_set" in tables:
        specs.append(_spec("dpo_set", "chosen_differs_from_rejected"))
    return specs


def check_results(
    specs: list[dg.AssetCheckSpec], outcomes: list[CheckOutcome], published_versions: dict
) -> list[dg.AssetCheckResult]:
    """One result per spec: the staged audit when the tables were rebuilt, otherwise the published
    version stands as it was audited when it was published (nothing is read again)."""
    by_key = {(o.table, o.check): o for o in outcomes}
    results = []
    for spec in specs:
        table = spec.asset_key.to_user_string()
        outcome = by_key.get((table, spec.name))
        version = _verified(spec, published_versions)
        if outcome is None:
            results.append(
                dg.AssetCheckResult(
                    asset_key=spec.asset_key,
                    check_name=spec.name,
                    passed=True,
                    metadata={"rebuilt": False, "re_run": False, **version},
                )
            )
            continue
        results.append(
            dg.AssetCheckResult(
                asset_key=spec.asset_key,
                check_name=spec.name,
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "rebuilt": True,
                    "re_run": True,
                    **check_metadata(outcome.metadata),
                    **version,
                },
            )
        )
    return results


def failure_message(outcomes: list[CheckOutcome]) -> str:
    failed = [f"{o.table}.{o.check} {o.metadata}" for o in outcomes if not o.passed]
    return "not published, the published tables are unchanged; failed checks: " + "; ".join(failed)


def _spec(table: str, name: str, deps: list[str] | None = None) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name,
        asset=table,
        blocking=True,
        additional_deps=deps,
        description=_DESCRIPTIONS[name],
    )


def _verified(spec: dg.AssetCheckSpec, published_versions: dict) -> dict:
    """The version the verdict is about (the one this build published, or the one that stands),
    and that of every other table the check reads; nothing when the build was not published."""
    table = spec.asset_key.to_user_string()
    if table not in published_versions:
        return {}
    out = {"verified_version": published_versions[table]}
    reads = [d.asset_key.to_user_string() for d in spec.additional_deps]
    if reads:
        out["input_versions"] = dg.MetadataValue.json(
            {t: published_versions.get(t, -1) for t in [table, *reads]}
        )
    return out
