"""The local steps of the curated sets: what each candidate tagged row gives each set on its own.

A row's local rows depend on that row alone and, for a side-by-side choice, on the answer it beat:
which column is its training target, whether the safety breaker stops it, whether a pair is in
the similarity band. The steps that compare rows (best answer per prompt, held-out prompts,
near-duplicates, caps) are in `selection`; because these do not, an incremental build derives
local rows again only for the request ids that changed.

Every local frame carries the state columns `selection` reads (`STATE`), and the text the
published row needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from ..governance.hashing import unit_interval
from ..privacy.pii import Detector
from .normalize import normalize_text
from .rules import (
    PAIR_PRIORITY,
    ROW_COLUMNS,
    TARGET_COLUMNS,
    TARGET_PRIORITY,
    CurationPolicy,
    content_id,
)
from .safety import safety_flags
from .signals import NEGATIVE, POSITIVE

# The local sets, in the order the builders look at targets (which decides a row's first unsafe
# target), and the id column of each.
SETS = {
    "golden": "case_id",
    "regression": "case_id",
    "sft": "example_id",
    "dpo": "pair_id",
    "kto": "example_id",
    "review": "request_id",
}
# What the global steps read of every local row: no text beyond the normalized prompt. Two
# more kinds of state row: "unsafe" (a row whose target the breaker stopped, for the stats) and
# "beats" (row_id: an answer the row beat in a side-by-side choice).
STATE = {
    "set": pl.String,
    "row_id": pl.String,
    "request_id": pl.String,  # the row that gave it: local rows are replaced per request id
    "sub": pl.Int64,  # order among one request id's rows (a row's DPO pairs)
    "normalized_prompt": pl.String,
    "rank": pl.Int64,  # priority (SFT, DPO) or label_key (KTO)
    "confidence": pl.Float64,
    "ts": pl.Datetime("us", "UTC"),
    "user_hash": pl.String,
    "holdout": pl.Boolean,
    "source_request_ids": pl.List(pl.String),
}

# Safety reasons that do not stop a prompt: a short question ("thanks!") is fine, a short answer
# to learn from is not.
_PROMPT_MAY_BE = ["too_short", "empty"]
_FLAGS = pl.List(pl.String)


@dataclass
class LocalRows:
    """Each set's local rows (with `_i`, the source row's index into `messages`), the request
    ids whose target the breaker stopped, and the source rows' messages."""

    frames: dict[str, pl.DataFrame]
    unsafe: pl.DataFrame  # request_id, stop: the reasons of the first target stopped
    beaten: pl.DataFrame  # request_id, loser: each side-by-side choice a row won
    messages: pa.ListArray

    def state(self) -> pl.DataFrame:
        """Every local row's state columns, one frame (`STATE`)."""
        parts = []
        for name, frame in self.frames.items():
            columns = []
            for column, dtype in STATE.items():
                if column == "set":
                    value = pl.lit(name)
                elif column == "row_id":
                    value = pl.col(SETS[name])
                elif column == "rank":
                    rank = next((c for c in ("priority", "label_key") if c in frame.columns), None)
                    value = pl.col(rank) if rank else pl.lit(None)
                elif column in frame.columns:
                    value = pl.col(column)
                else:
                    value = pl.lit(None)
                columns.append(value.cast(dtype).alias(column))
            parts.append(frame.select(columns))
        unsafe = self.unsafe.select(
            pl.lit("unsafe").alias("set"), pl.col("request_id").alias("row_id"), "request_id"
        )
        parts.append(unsafe)
        # A row's pairs depend on the answers it beat: when one of those changes, so may they.
        beaten = self.beaten.select(
            pl.lit("beats").alias("set"), pl.col("loser").alias("row_id"), "request_id"
        )
        parts.append(beaten)
        return pl.concat(parts, how="diagonal_relaxed").select(
            pl.col(c).cast(t) for c, t in STATE.items()
        )


def derive(
    tagged: pa.Table,
    policy: CurationPolicy,
    key: bytes,
    detector: Detector,
    owners: pa.Array | None = None,
) -> LocalRows:
    """The local rows of the candidate rows in `tagged`; with `owners`, only those request ids
    give rows, and the others are there as the answers they beat."""
    messages = tagged["messages"].combine_chunks()
    rows = _frame(tagged, policy, detector)
    mine = (
        rows
        if owners is None
        else rows.filter(pl.col("request_id").is_in(pl.Series(owners).implode()))
    )
    # The pairs before the breaker: the breaker's first stop and the DPO set both read them.
    pairs = _dpo_candidates(mine, rows, policy)
    unsafe = _unsafe(mine, pairs)
    golden, regression = _eval_candidates(mine, policy, key)
    frames = {
        "golden": golden,
        "regression": regression,
        "sft": _sft_rows(mine),
        "dpo": _dpo_rows(mine, pairs),
        "kto": _kto_rows(mine),
        "review": _review_rows(mine, unsafe),
    }
    beaten = (
        mine.select("request_id", pl.col("preferred_over").alias("loser"))
        .explode("loser")
        .filter(pl.col("loser").is_not_null())
        .unique(maintain_order=True)
    )
    return LocalRows(frames, unsafe, beaten, messages)


def _frame(tagged: pa.Table, policy: CurationPolicy, detector: Detector) -> pl.DataFrame:
    """One row per candidate, in request_id order (`pos`), with what every rule reads: its
    normalized answers (`norm_*`) and, per target column, the safety reasons that stop it
    (`stop_*`: the column's own flags, then the prompt's)."""
    columns = [c for c in ROW_COLUMNS if c in tagged.column_names and c != "messages"]
    frame = pl.from_arrow(tagged.select(columns))
    assert isinstance(frame, pl.DataFrame)
    prompt_flags = pl.Series(safety_flags(tagged["prompt"], policy.safety, detector))
    extra = [
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"),
        pl.col("tags").list.contains("conflict").fill_null(False).alias("conflict"),
        pl.col("over_cap").fill_null(False).alias("capped"),
        prompt_flags.list.eval(pl.element().filter(~pl.element().is_in(_PROMPT_MAY_BE)))
        .fill_null([])
        .alias("_prompt_stop"),
    ]
    for column in TARGET_COLUMNS:
        extra.append(pl.Series(f"norm_{column}", normalize_text(tagged[column])).fill_null(""))
        extra.append(
            pl.Series(f"_flags_{column}", safety_flags(tagged[column], policy.safety, detector))
        )
    frame = frame.with_columns(extra).with_columns(
        pl.concat_list(pl.col(f"_flags_{c}").fill_null([]), "_prompt_stop")
        .cast(_FLAGS)
        .alias(f"stop_{c}")
        for c in TARGET_COLUMNS
    )
    frame = frame.drop([f"_flags_{c}" for c in TARGET_COLUMNS] + ["_prompt_stop"])
    frame = frame.sort("request_id", maintain_order=True)
    return frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("pos"))


def _ok(column: str) -> pl.Expr:
    """The target in `column` (and the prompt before it) passes the safety breaker."""
    return pl.col(f"stop_{column}").list.len() == 0


def _open_for_training() -> pl.Expr:
    return ~pl.col("capped") & ~pl.col("conflict")


_POSITIVE = pl.col("label") == POSITIVE
_NEGATIVE = pl.col("label") == NEGATIVE
_CORRECTED = pl.col("correction").is_not_null()
# An operator's "good" verdict overrides a correction: the answer was right after all.
_CORRECTION_STANDS = _CORRECTED & pl.col("verdict").ne_missing("good")


def _sft_target() -> tuple[pl.Expr, pl.Expr]:
    """The column holding the best answer to learn from, and what kind of answer it is."""
    column = (
        pl.when(_CORRECTION_STANDS)
        .then(pl.lit("correction"))
        .when(_POSITIVE)
        .then(pl.lit("response"))
        .when(pl.col("edited_response").is_not_null())
        .then(pl.lit("edited_response"))
    )
    source = (
        pl.when(_CORRECTION_STANDS)
        .then(pl.col("correction_source") + "_correction")
        .when(_POSITIVE)
        .then(pl.lit("response"))
        .when(pl.col("edited_response").is_not_null())
        .then(pl.lit("edit"))
    )
    return column, source


def _pick(column: pl.Expr, prefix: str) -> pl.Expr:
    """The value of `{prefix}{c}` for the target column named in `column`."""
    out = pl.lit(None)
    for c in reversed(TARGET_COLUMNS):
        out = pl.when(column == c).then(pl.col(f"{prefix}{c}")).otherwise(out)
    return out


def _golden_or_regression() -> tuple[pl.Expr, pl.Expr]:
    """Which rows may be eval cases, and the column each would expect."""
    golden = _open_for_training() & _POSITIVE & ~_CORRECTED
    regression = _open_for_training() & _NEGATIVE & _CORRECTED
    column = pl.when(golden).then(pl.lit("response")).when(regression).then(pl.lit("correction"))
    return golden | regression, column


def _unsafe(rows: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    """Per row whose target the breaker stopped, the reasons of the first target stopped, in the
    order the builders look at targets: the eval case's, then SFT's, then each DPO pair's
    (`pairs`, from `_dpo_candidates`)."""
    may_eval, eval_column = _golden_or_regression()
    sft_column, _ = _sft_target()
    calls = [
        rows.filter(may_eval).select(
            "request_id", "pos", pl.lit(0).alias("seq"), _pick(eval_column, "stop_").alias("stop")
        ),
        rows.filter(_open_for_training() & sft_column.is_not_null()).select(
            "request_id", "pos", pl.lit(1).alias("seq"), _pick(sft_column, "stop_").alias("stop")
        ),
        pairs.select("request_id", "pos", (pl.col("sub") + 2).alias("seq"), pl.col("stop")),
    ]
    calls = [
        c.with_columns(pl.col("stop").cast(_FLAGS), pl.col("seq").cast(pl.Int64)) for c in calls
    ]
    return (
        pl.concat(calls)
        .filter(pl.col("stop").list.len() > 0)
        .sort("pos", "seq")
        .group_by("request_id", maintain_order=True)
        .first()
        .select("request_id", "stop")
    )


def _provenance(ids: pl.Expr) -> list[pl.Expr]:
    return [ids.alias("source_request_ids"), pl.col("model_version"), pl.col("feedback_kinds")]


def _eval_candidates(
    rows: pl.DataFrame, policy: CurationPolicy, key: bytes
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every row that may be a golden case (a positive answer) or a regression case (a corrected
    negative one), before the best per prompt is chosen."""
    may_eval, column = _golden_or_regression()
    cases = rows.filter(may_eval & _pick(column, "stop_").list.len().eq(0)).with_columns(
        kind=pl.when(_POSITIVE).then(pl.lit("golden")).otherwise(pl.lit("regression")),
        expected=_pick(column, ""),
        _norm_expected=_pick(column, "norm_"),
    )
    ids = _ids(cases["kind"], cases["normalized_prompt"], cases["_norm_expected"])
    # Keyed on the prompt: every case of one prompt is held out together.
    prompts = cases["normalized_prompt"].unique()
    held = pl.DataFrame(
        {
            "normalized_prompt": prompts,
            "holdout": [unit_interval(p, key, "holdout") < policy.holdout_share for p in prompts],
        },
        schema={"normalized_prompt": pl.String, "holdout": pl.Boolean},
    )
    cases = cases.join(
        held, on="normalized_prompt", how="left", maintain_order="left", nulls_equal=True
    ).select(
        pl.Series("case_id", ids, pl.String),
        "kind",
        pl.col("prompt").alias("input"),
        "_i",
        "expected",
        "holdout",
        pl.col("request_id").alias("source_request_id"),
        "normalized_prompt",
        "ts",
        *_provenance(pl.concat_list("request_id")),
        "request_id",
        "confidence",
    )
    return cases.filter(pl.col("kind") == "golden"), cases.filter(pl.col("kind") == "regression")


def _sft_rows(rows: pl.DataFrame) -> pl.DataFrame:
    column, source = _sft_target()
    sft = rows.with_columns(_column=column, target_source=source).filter(
        _open_for_training()
        & pl.col("_column").is_not_null()
        & _pick(pl.col("_column"), "stop_").list.len().eq(0)
    )
    return sft.select(
        pl.Series("example_id", _ids("sft", sft["request_id"], sft["target_source"]), pl.String),
        "_i",  # messages: the row's history (or its prompt), then the target
        "prompt",
        _pick(pl.col("_column"), "").alias("completion"),
        "target_source",
        "normalized_prompt",
        "user_hash",
        "ts",
        pl.col("target_source")
        .replace_strict(TARGET_PRIORITY, return_dtype=pl.Int64)
        .alias("priority"),
        "confidence",
        *_provenance(pl.concat_list("request_id")),
        "request_id",
    )


def _dpo_candidates(
    rows: pl.DataFrame, lookup: pl.DataFrame, policy: CurationPolicy
) -> pl.DataFrame:
    """Every pair a row could give (its correction, its edit, each answer it beat on the same
    prompt), in order (`sub`), that survives the checks made before the safety breaker: both
    texts present, different beyond case and punctuation, and (except side-by-side choices,
    where the user chose) similar within the band. The answers beaten are looked up in
    `lookup`."""
    mine = rows.filter(~pl.col("capped"))
    correction = _own_pair(mine.filter(_CORRECTION_STANDS), 0, "correction", "correction")
    edits = mine.filter(pl.col("edited_response").is_not_null())
    edit = _own_pair(edits, 1, "edit", "edited_response")
    beaten = (
        mine.select(
            "request_id",
            "pos",
            "normalized_prompt",
            "response",
            "norm_response",
            "stop_response",
            "preferred_over",
        )
        .with_columns(pl.col("preferred_over").fill_null([]))
        .with_columns(pl.int_ranges(pl.col("preferred_over").list.len()).alias("_j"))
        .explode("preferred_over", "_j")
        .filter(pl.col("preferred_over").is_not_null())
    )
    losers = lookup.select(
        pl.col("request_id").alias("preferred_over"),
        pl.col("normalized_prompt").alias("_loser_prompt"),
        pl.col("response").alias("rejected"),
        pl.col("norm_response").alias("rejected_norm"),
    )
    # A side-by-side choice is a pair only when both answered the same question.
    comparison = (
        beaten.join(losers, on="preferred_over", how="inner", maintain_order="left")
        .filter(pl.col("normalized_prompt").eq_missing(pl.col("_loser_prompt")))
        .select(
            "request_id",
            "pos",
            (pl.col("_j") + 2).alias("sub"),
            pl.lit("comparison").alias("pair_source"),
            pl.lit("response").alias("column"),
            pl.col("response").alias("chosen"),
            pl.col("norm_response").alias("chosen_norm"),
            "rejected",
            "rejected_norm",
            pl.concat_list("request_id", "preferred_over").alias("ids"),
            pl.col("stop_response").alias("stop"),
        )
    )
    pairs = pl.concat(
        [f.with_columns(pl.col("sub").cast(pl.Int64)) for f in (correction, edit, comparison)]
    ).sort("pos", "sub")
    pairs = pairs.filter(
        pl.col("chosen").is_not_null()
        & pl.col("rejected").is_not_null()
        & (pl.col("chosen_norm") != pl.col("rejected_norm"))
    )
    similarity = process.cpdist(
        pairs["chosen"].to_list(),
        pairs["rejected"].to_list(),
        scorer=Levenshtein.normalized_similarity,
        dtype=np.float64,
        workers=-1,
    )
    pairs = pairs.with_columns(pl.Series("similarity", similarity, pl.Float64))
    in_band = pl.col("similarity").is_between(policy.similarity_min, policy.similarity_max)
    return pairs.filter((pl.col("pair_source") == "comparison") | in_band)


def _own_pair(rows: pl.DataFrame, sub: int, source: str, column: str) -> pl.DataFrame:
    """Each row's pair of its own `column` (chosen) against its answer (rejected)."""
    return rows.select(
        "request_id",
        "pos",
        pl.lit(sub).alias("sub"),
        pl.lit(source).alias("pair_source"),
        pl.lit(column).alias("column"),
        pl.col(column).alias("chosen"),
        pl.col(f"norm_{column}").alias("chosen_norm"),
        pl.col("response").alias("rejected"),
        pl.col("norm_response").alias("rejected_norm"),
        pl.concat_list("request_id").alias("ids"),
        pl.col(f"stop_{column}").alias("stop"),
    )


def _dpo_rows(rows: pl.DataFrame, pairs: pl.DataFrame) -> pl.DataFrame:
    pairs = pairs.filter(pl.col("stop").list.len() == 0)
    pairs = pairs.join(
        rows.select(
            "request_id",
            "_i",
            "prompt",
            "normalized_prompt",
            "user_hash",
            "ts",
            "confidence",
            "model_version",
            "feedback_kinds",
        ),
        on="request_id",
        how="left",
        maintain_order="left",
    )
    pair_ids = [
        content_id("dpo", source, *ids)
        for source, ids in zip(pairs["pair_source"].to_list(), pairs["ids"].to_list(), strict=True)
    ]
    return pairs.select(
        pl.Series("pair_id", pair_ids, pl.String),
        "prompt",
        "_i",
        "chosen",
        "rejected",
        # Python's round, as the stored figures always were: exact to the sixth decimal.
        pl.Series("similarity", [round(s, 6) for s in pairs["similarity"].to_list()], pl.Float64),
        "pair_source",
        "normalized_prompt",
        "user_hash",
        "ts",
        pl.col("pair_source")
        .replace_strict(PAIR_PRIORITY, return_dtype=pl.Int64)
        .alias("priority"),
        "confidence",
        pl.col("ids").alias("source_request_ids"),
        "model_version",
        "feedback_kinds",
        "request_id",
        "sub",
    )


def _kto_rows(rows: pl.DataFrame) -> pl.DataFrame:
    desirable = _POSITIVE & ~_CORRECTED
    kto = rows.filter(_open_for_training() & ((desirable & _ok("response")) | _NEGATIVE))
    kto = kto.with_columns(label=desirable)
    return kto.select(
        pl.Series("example_id", _ids("kto", kto["request_id"]), pl.String),
        "prompt",
        "_i",
        pl.col("response").alias("completion"),
        "label",
        "normalized_prompt",
        "user_hash",
        "ts",
        pl.col("label").cast(pl.Int64).alias("label_key"),
        "confidence",
        *_provenance(pl.concat_list("request_id")),
        "request_id",
    )


def _review_rows(rows: pl.DataFrame, unsafe: pl.DataFrame) -> pl.DataFrame:
    # An operator has looked at a row with a verdict or a correction: the loop is closed.
    open_rows = rows.filter(
        pl.col("verdict").is_null() & pl.col("correction_source").ne_missing("operator")
    ).join(unsafe, on="request_id", how="left", maintain_order="left")
    safety = pl.lit("safety:") + pl.col("stop").list.unique().list.sort().list.join("+")
    negative_alone = _NEGATIVE & ~_CORRECTED & pl.col("edited_response").is_null()
    reasons = pl.concat_list(
        pl.when(pl.col("stop").is_not_null()).then(safety),
        pl.when(pl.col("conflict")).then(pl.lit("conflict")),
        pl.when(pl.col("capped")).then(pl.lit("over_cap")),
        pl.when(negative_alone).then(pl.lit("negative_without_correction")),
    ).list.drop_nulls()
    review = open_rows.with_columns(reason=reasons).filter(pl.col("reason").list.len() > 0)
    return review.select(
        "request_id",
        pl.col("reason").list.join(","),
        "ts",
        "prompt",
        "response",
        "tags",
        "user_hash",
        *_provenance(pl.concat_list("request_id")),
    )


def _ids(*parts) -> list[str]:
    """`_id` of each row's parts (a str is the same for every row)."""
    columns = [p.to_list() if isinstance(p, pl.Series) else None for p in parts]
    n = next(len(c) for c in columns if c is not None)
    columns = [c if c is not None else [p] * n for c, p in zip(columns, parts, strict=True)]
    return [content_id(*row) for row in zip(*columns, strict=True)]
