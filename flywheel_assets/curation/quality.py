"""Rules the curated tables must keep, as plain functions over Arrow tables."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# Free text per curated table: what the no_residual_pii check scans.
TEXT_COLUMNS: dict[str, tuple[list[str], list[str]]] = {
    "tagged_rows": (["prompt", "response", "correction", "edited_response"], ["messages"]),
    "eval_cases": (["input", "expected"], ["input_messages"]),
    "review_queue": (["prompt", "response"], []),
    "sft_set": (["prompt", "completion"], ["messages"]),
    "dpo_set": (["prompt", "chosen", "rejected"], ["prompt_messages"]),
    "kto_set": (["prompt", "completion"], ["prompt_messages"]),
}
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
