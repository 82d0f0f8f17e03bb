"""The global steps of the curated sets: the choices that compare local rows with each other.

They read only the local rows' state (`local.STATE`: ids, normalized prompts, ranks, times,
users), never their text, so a build can run them over the whole history at the cost of a few
columns, and fetch text only for the rows a set newly takes:

- eval cases: the best golden answer per prompt (most confident, then most recent) and the most
  recent regression case per prompt and corrected answer;
- held-out prompts: no training set may hold a prompt whose eval case is held out;
- near-duplicates: one row per group of near-duplicate prompts (per label for KTO), the best
  ranked, then the most confident, then the most recent;
- caps: no user holds more than their share of a training set, their earliest rows kept.

Rows a rollback of a set took away (`excluded`, request ids per set) leave that set before any of
these steps, so they take no part in a group's best, a collapse or a cap: a set built with those
exclusions is the set a build would have made had those rows never been there.

Ties go to the earlier request id (then the earlier pair of one row), as they always have.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from .caps import cap_user_share
from .dedup import keep_one_per_group, near_duplicate_groups
from .rules import CurationPolicy

ORDER = ["request_id", "sub"]
CHOSEN = ["row_id", "request_id"]
TRAINING = ("sft", "dpo", "kto")


@dataclass
class Selection:
    """The row ids each published set holds, in their order, and what the steps left out."""

    # Per published set (eval_cases, review_queue, sft_set, dpo_set, kto_set): row_id and the
    # request_id that gave it (two rows can give one golden case id; the best one is chosen).
    ids: dict[str, pl.DataFrame]
    stats: dict = field(default_factory=dict)
    # Per published set, the local rows its exclusions took out before the global steps.
    left_out: dict[str, int] = field(default_factory=dict)


def select(
    state: pl.DataFrame,
    policy: CurationPolicy,
    excluded: Mapping[str, Sequence[str]] | None = None,
) -> Selection:
    """The rows each published set holds. `excluded`: per published set, the request ids a
    rollback of that set took away; a local row naming any of them leaves before the steps."""
    state = state.sort(ORDER, maintain_order=True)
    left_out: dict[str, int] = {}

    def of(name: str, published: str) -> pl.DataFrame:
        rows = _of(state, name)
        kept = _without(rows, (excluded or {}).get(published, ()))
        if kept.height < rows.height:
            left_out[published] = left_out.get(published, 0) + rows.height - kept.height
        return kept

    # Held-out prompts come from every eval case, excluded or not: a rollback of eval_cases
    # must not let a held-out prompt into a training set.
    every = _evals(_of(state, "golden"), _of(state, "regression"))
    held = every.filter(pl.col("holdout"))["normalized_prompt"].unique()
    golden, regression = of("golden", "eval_cases"), of("regression", "eval_cases")
    evals = every if "eval_cases" not in left_out else _evals(golden, regression)
    ids = {"eval_cases": evals.select(CHOSEN)}
    leaks, capped = {}, {}
    for name in TRAINING:
        rows = of(name, f"{name}_set")
        kept = rows.filter(~pl.col("normalized_prompt").is_in(held.implode(), nulls_equal=True))
        leaks[name] = rows.height - kept.height
        ids[f"{name}_set"], capped[name] = _collapse_and_cap(kept, policy, by_label=name == "kto")
    ids["review_queue"] = of("review", "review_queue").select(CHOSEN)
    stats = {
        "holdout_leaks_removed": leaks,
        "dropped_by_user_share_cap": capped,
        "unsafe_targets": _of(state, "unsafe").height,
    }
    return Selection(ids, stats, left_out)


def _evals(golden: pl.DataFrame, regression: pl.DataFrame) -> pl.DataFrame:
    """The best golden answer per prompt, then the most recent regression case per row id."""
    return pl.concat(
        [
            _best(golden, ["normalized_prompt"], ["confidence", "ts"]),
            _best(regression, ["row_id"], ["ts"]),
        ]
    )


def _of(state: pl.DataFrame, name: str) -> pl.DataFrame:
    return state.filter(pl.col("set") == name)


def _without(rows: pl.DataFrame, ids: Sequence[str]) -> pl.DataFrame:
    """`rows` less those whose source_request_ids name any of `ids`."""
    if not len(ids) or rows.height == 0:
        return rows
    gone = pl.Series(list(ids), dtype=pl.String).implode()
    hit = pl.col("source_request_ids").list.eval(pl.element().is_in(gone)).list.any()
    return rows.filter(~hit.fill_null(False))


def _best(rows: pl.DataFrame, by: list[str], rank: list[str]) -> pl.DataFrame:
    """One row per `by` group: the highest under `rank`, ties to the earliest; groups in the
    order of their first row."""
    rows = rows.with_row_index("_order")
    first = rows.group_by(by, maintain_order=True).agg(pl.col("_order").min().alias("_first"))
    best = (
        rows.sort([*rank, "_order"], descending=[True] * len(rank) + [False])
        .group_by(by, maintain_order=True)
        .first()
    )
    best = best.join(first, on=by, nulls_equal=True).sort("_first")
    return best.select(rows.columns).drop("_order")


def _small(dtype: pa.DataType) -> pa.DataType:
    return pa.string() if pa.types.is_large_string(dtype) else dtype


def _collapse_and_cap(
    rows: pl.DataFrame, policy: CurationPolicy, *, by_label: bool
) -> tuple[pl.DataFrame, int]:
    """The ids left after the near-duplicate collapse and the user-share caps, in order, and how
    many the caps dropped."""
    if rows.height == 0:
        return rows.select(CHOSEN), 0
    table = rows.select(*CHOSEN, "normalized_prompt", "rank", "confidence", "ts", "user_hash")
    # Polars gives large strings; the near-duplicate kernels take plain ones.
    table = table.to_arrow(compat_level=pl.CompatLevel.oldest())
    table = table.cast(pa.schema([f.with_type(_small(f.type)) for f in table.schema]))
    groups = near_duplicate_groups(
        table["normalized_prompt"], threshold=policy.near_duplicate_threshold
    )
    if by_label:  # desirable and undesirable answers to one prompt both stay
        groups = pc.add(pc.multiply(groups, 2), table["rank"].cast(pa.int64()))
    table = table.append_column("_group", groups)
    kept = keep_one_per_group(
        table,
        "_group",
        [("rank", "descending"), ("confidence", "descending"), ("ts", "descending")],
    )
    kept, dropped = cap_user_share(
        kept,
        max_share=policy.max_user_share,
        min_rows_per_user=policy.min_rows_per_user,
        order_by=[("ts", "ascending")],
    )
    chosen = pl.from_arrow(kept.select(CHOSEN))
    assert isinstance(chosen, pl.DataFrame)
    return chosen.cast(pl.String), dropped.num_rows
