"""Rules the curated tables must keep, as plain functions over Arrow tables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ..privacy.pii import Detector
from ..privacy.redact import residual_pii

TRAINING_SETS = ("sft_set", "dpo_set", "kto_set")


def holdout_leaks(eval_cases: pa.Table, training_set: pa.Table) -> list[str]:
    """Normalized prompts of held-out eval cases that also appear in a training set."""
    held = eval_cases.filter(pc.equal(eval_cases["holdout"], True))["normalized_prompt"]
    if len(held) == 0 or training_set.num_rows == 0:
        return []
    leaked = pc.is_in(training_set["normalized_prompt"], value_set=pc.unique(held))
    return sorted(set(training_set.filter(leaked)["normalized_prompt"].to_pylist()))


def identical_pairs(dpo: pa.Table) -> int:
    """Preference pairs whose chosen and rejected texts are the same."""
    if dpo.num_rows == 0:
        return 0
    return int(pc.sum(pc.equal(dpo["chosen"], dpo["rejected"])).as_py() or 0)


@dataclass(frozen=True)
class CheckOutcome:
    """One rule evaluated on one staged table, before anything is published."""

    table: str
    check: str
    passed: bool
    metadata: dict = field(default_factory=dict)


def holdout_checks(tables: Mapping[str, pa.Table]) -> list[CheckOutcome]:
    """`no_holdout_leakage` for each training set in `tables`, against `tables["eval_cases"]`."""
    out = []
    eval_cases = tables.get("eval_cases")
    for name in TRAINING_SETS:
        if name in tables and eval_cases is not None:
            leaks = holdout_leaks(eval_cases, tables[name])
            out.append(
                CheckOutcome(
                    name,
                    "no_holdout_leakage",
                    not leaks,
                    {"leaked_prompts": len(leaks), "sample": leaks[:5]},
                )
            )
    return out


def audit_curated(tables: Mapping[str, pa.Table], detector: Detector) -> list[CheckOutcome]:
    """Every blocking rule for the given curated tables: no residual PII, no held-out eval prompt
    in a training set, no pair whose chosen and rejected texts are the same."""
    out = []
    for name, table in tables.items():
        residual = residual_pii(table, detector)  # every string column of the schema
        out.append(CheckOutcome(name, "no_residual_pii", not residual, {"rows_with_pii": residual}))
    out += holdout_checks(tables)
    if "dpo_set" in tables:
        same = identical_pairs(tables["dpo_set"])
        out.append(
            CheckOutcome(
                "dpo_set", "chosen_differs_from_rejected", same == 0, {"identical_pairs": same}
            )
        )
    return out
