"""Turn each kept interaction's feedback and annotations into tags, a label and a confidence.

Columnar: Arrow tables in, Arrow tables out, Polars expressions in between. Every function works on
any key group of interactions given the feedback and annotations about them (see `tag_rows`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..privacy.sampling import DriftWindow, in_any_window
from .lists import exploded, sorted_sets
from .normalize import normalize_text

POSITIVE, NEGATIVE, UNKNOWN = "positive", "negative", "unknown"


@dataclass(frozen=True)
class SignalWeights:
    """How much each implicit or explicit signal moves an answer towards good (+) or bad (-)."""

    thumbs_up: float = 1.0
    thumbs_down: float = -1.0
    rating_per_star: float = 0.5  # (score - 3) stars: 5 -> +1.0, 1 -> -1.0
    copy: float = 0.5
    accept: float = 0.75
    regenerate: float = -0.5
    report: float = -1.0
    edit: float = -0.25  # the user had to change it, but kept most of it
    comparison_won: float = 0.5
    comparison_lost: float = -0.5
    operator_verdict: float = 2.0  # an operator outweighs a single user
    positive_at: float = 0.5  # label thresholds on the summed score
    negative_at: float = -0.5
    low_logprob: float = -3.0

    def kind_weights(self) -> dict[str, float]:
        """The weight of one event of each kind but `rating` (see `rating_per_star`); a kind not
        named here weighs nothing."""
        kinds = ("thumbs_up", "thumbs_down", "copy", "accept", "regenerate", "report", "edit")
        return {k: getattr(self, k) for k in kinds} | {"comparison": self.comparison_won}


POSITIVE_KINDS = {"thumbs_up", "copy", "accept"}
NEGATIVE_KINDS = {"thumbs_down", "regenerate", "report"}

# The flag tags, in no particular order: a row's tags are sorted.
FLAG_TAGS = (
    "user_positive",
    "user_negative",
    "corrected",
    "edited",
    "compared",
    "low_confidence",
    "drift_window",
    "conflict",
    "over_cap",
)
_FEEDBACK_COLUMNS = ["request_id", "ts", "kind", "score", "correction", "other_request_id"]
_ANNOTATION_COLUMNS = ["request_id", "ts", "tags", "correction", "verdict"]
_STRINGS = pl.List(pl.String)


def collect_signals(
    feedback: pa.Table,
    annotations: pa.Table,
    over_cap: pa.Array | pa.ChunkedArray,
    weights: SignalWeights,
) -> pl.DataFrame:
    """One row per request id that feedback or an annotation is about, or that lost a
    comparison: the summed feedback score, the kinds and users seen, the user's and the
    operator's latest correction, the latest verdict, and the flags tagging needs.

    Feedback marked `over_cap` (a user past the per-window cap) is noted (its kind, its user,
    the `over_cap` flag) but does not count. "Latest" is the greatest `ts`, ties going to the row
    read last.
    """
    events = _feedback_events(feedback, over_cap, weights)
    # The row order is the order the score is summed in: float addition is not associative.
    by_request = (
        events.sort("seq")
        .group_by("request_id")
        .agg(
            (pl.lit(0.0) + pl.col("value").drop_nulls().cum_sum().last().fill_null(0.0)).alias(
                "score"
            ),
            pl.col("kind").drop_nulls().unique().sort().alias("feedback_kinds"),
            pl.col("user").drop_nulls().unique().sort().alias("feedback_user_hashes"),
            pl.col("positive").any(),
            pl.col("negative").any(),
            pl.col("compared").any(),
            pl.col("capped").any().alias("over_cap"),
            pl.col("won_over").drop_nulls().unique().sort().alias("preferred_over"),
            _latest("user_correction"),
            _latest("edit").alias("edited_response"),
        )
    )
    notes = pl.from_arrow(annotations.select(_ANNOTATION_COLUMNS)).with_row_index("seq")
    by_annotation = notes.group_by("request_id").agg(
        pl.col("tags")
        .list.explode(keep_nulls=False, empty_as_null=False)
        .unique()
        .alias("operator_tags"),
        _latest(_truthy("correction")).alias("operator_correction"),
        _latest(_truthy("verdict")).alias("verdict"),
    )
    return by_request.join(
        by_annotation, on="request_id", how="full", coalesce=True, nulls_equal=True
    )


def _feedback_events(
    feedback: pa.Table, over_cap: pa.Array | pa.ChunkedArray, weights: SignalWeights
) -> pl.DataFrame:
    """What each feedback event does to the request it is about and, for a comparison, to the
    request that lost it: one row each, `seq` keeping the order they happened to the score in."""
    rows = pl.from_arrow(feedback.select([*_FEEDBACK_COLUMNS, "user_hash"])).with_columns(
        capped=pl.Series(over_cap, dtype=pl.Boolean), seq=pl.int_range(pl.len(), dtype=pl.Int64)
    )
    kind, stars, counts = pl.col("kind"), pl.col("score"), ~pl.col("capped")
    # `score or 3`: a missing (or zero) rating is neutral.
    neutral = pl.when(stars.is_null() | (stars == 0)).then(3).otherwise(stars)
    weight = (
        pl.when(kind == "rating")
        .then(weights.rating_per_star * (neutral - 3).cast(pl.Float64))
        .otherwise(
            kind.replace_strict(weights.kind_weights(), default=0.0, return_dtype=pl.Float64)
        )
    )
    rating = kind == "rating"
    won = counts & (kind == "comparison") & _truthy("other_request_id").is_not_null()
    own = rows.select(
        "request_id",
        "ts",
        "kind",
        "capped",
        seq=pl.col("seq") * 2,
        user=_truthy("user_hash"),
        value=pl.when(counts).then(weight),
        positive=(counts & (kind.is_in(POSITIVE_KINDS) | (rating & (stars >= 4)))).fill_null(False),
        negative=(counts & (kind.is_in(NEGATIVE_KINDS) | (rating & (stars <= 2)))).fill_null(False),
        compared=won,
        won_over=pl.when(won).then(pl.col("other_request_id")),
        user_correction=pl.when(counts & (kind == "thumbs_down")).then(_truthy("correction")),
        edit=pl.when(counts & (kind == "edit")).then(_truthy("correction")),
    )
    # The loser of a comparison: a comparison it took part in, and the lost weight, counted right
    # after the winner's own event (they are the same request when an answer beat itself).
    lost = rows.filter(won).select(
        pl.col("other_request_id").alias("request_id"),
        "ts",
        kind=pl.lit("comparison"),
        capped=pl.lit(False),
        seq=pl.col("seq") * 2 + 1,
        user=pl.lit(None, pl.String),
        value=pl.lit(weights.comparison_lost, pl.Float64),
        positive=pl.lit(False),
        negative=pl.lit(False),
        compared=pl.lit(True),
        won_over=pl.lit(None, pl.String),
        user_correction=pl.lit(None, pl.String),
        edit=pl.lit(None, pl.String),
    )
    return pl.concat([own, lost], how="vertical")


def _truthy(name: str) -> pl.Expr:
    """The column where it is neither null nor empty, else null."""
    return pl.when(pl.col(name) != "").then(pl.col(name))


def _latest(value: str | pl.Expr) -> pl.Expr:
    """In a group ordered by `seq`: the non-null value with the greatest `ts`, the last one of
    those on a tie."""
    value = pl.col(value) if isinstance(value, str) else value
    return value.sort_by("ts", maintain_order=True).drop_nulls().last()


def tag_rows(
    logs: pa.Table,
    signals: pl.DataFrame,
    drift_windows: list[DriftWindow],
    weights: SignalWeights,
    *,
    extra_tags: Mapping[str, pa.Array | pa.ChunkedArray] | None = None,
) -> pa.Table:
    """One row per interaction in `logs` with tags, label, confidence and its best correction.

    `signals` is `collect_signals` over the feedback about these interactions and the
    comparisons they lost (over_cap computed over each user's whole history) and their
    annotations: tagging a key group of interactions needs nothing else, except that `conflict`
    compares rows with the same normalized prompt and answer, which must be in the same group.
    `extra_tags` adds a tag by name where its mask (one entry per row of `logs`) is true.
    """
    normalized = normalize_text(logs["prompt"])
    rows = pl.from_arrow(
        pa.table(
            {
                "request_id": logs["request_id"],
                "low_confidence": pc.fill_null(
                    pc.less(logs["response_logprob"], weights.low_logprob), False
                ),
                "drift_window": in_any_window(logs["ts"], drift_windows),
                # An integer per distinct key: windows over it are far cheaper than over text.
                "key": pc.dictionary_encode(conflict_key(normalized, logs["response"])).indices,
                **{f"extra:{name}": mask for name, mask in (extra_tags or {}).items()},
            }
        )
    )
    extra = list(extra_tags or {})
    out = _tagged(
        rows.lazy().join(
            signals.lazy(), on="request_id", how="left", maintain_order="left", nulls_equal=True
        ),
        weights,
        extra,
    ).collect()
    flags = {name: out[f"flag:{name}"] for name in (*FLAG_TAGS, *extra)}
    out = out.with_columns(
        signal_score=_python_round(out["signal_score"]),
        confidence=_python_round(out["confidence"]),
        tags=_tag_lists(out["operator_tags"], flags),
    )
    table = logs.append_column("normalized_prompt", normalized)
    for name, kind in _TYPES.items():
        table = table.append_column(name, out[name].to_arrow().cast(kind))
    return table


def _tagged(joined: pl.LazyFrame, weights: SignalWeights, extra: list[str]) -> pl.LazyFrame:
    """Each logged interaction joined to its signals -> its label, score, correction and flags."""
    empty = pl.lit([], _STRINGS)
    missing = {"score": 0.0, "positive": False, "negative": False, "compared": False}
    missing |= {"over_cap": False, "preferred_over": empty, "feedback_kinds": empty}
    missing |= {"feedback_user_hashes": empty, "operator_tags": empty}
    verdict, score = pl.col("verdict"), pl.col("score")
    operator, user = pl.col("operator_correction"), pl.col("user_correction")
    sign = pl.when(verdict == "good").then(1).otherwise(-1)  # any other verdict counts as bad
    with_verdict = score + weights.operator_verdict * sign
    scored = joined.with_columns(
        pl.col(name).fill_null(value) for name, value in missing.items()
    ).with_columns(
        score=pl.when(verdict.is_not_null()).then(with_verdict).otherwise(score),
        correction=operator.fill_null(user),
        correction_source=pl.when(operator.is_not_null())
        .then(pl.lit("operator"))
        .when(user.is_not_null())
        .then(pl.lit("user")),
    )
    # A correction says the answer was wrong, whatever else was clicked.
    wrong = pl.col("correction").is_not_null() & (verdict.is_null() | (verdict != "good"))
    negative_at = weights.negative_at
    scored = scored.with_columns(
        signal_score=pl.when(wrong & (negative_at < score)).then(negative_at).otherwise(score)
    )
    score = pl.col("signal_score")
    magnitude = score.abs() / 2.0
    labelled = scored.with_columns(
        label=pl.when(score >= weights.positive_at)
        .then(pl.lit(POSITIVE))
        .when(score <= negative_at)
        .then(pl.lit(NEGATIVE))
        .otherwise(pl.lit(UNKNOWN)),
        confidence=pl.when(magnitude < 1.0).then(magnitude).otherwise(1.0),
        key=pl.col("key").fill_null(-1),  # rows without a key compare with each other
    )
    # The same answer to the same normalized prompt with opposite labels.
    key, label = pl.col("key"), pl.col("label")
    contested = key.is_in(key.filter(label == POSITIVE).implode()) & key.is_in(
        key.filter(label == NEGATIVE).implode()
    )
    flags = {
        "user_positive": pl.col("positive"),
        "user_negative": pl.col("negative"),
        "corrected": pl.col("correction").is_not_null(),
        "edited": pl.col("edited_response").is_not_null(),
        "compared": pl.col("compared"),
        "low_confidence": pl.col("low_confidence"),
        "drift_window": pl.col("drift_window"),
        "conflict": (pl.col("positive") & pl.col("negative")) | contested,
        "over_cap": pl.col("over_cap"),
        **{name: pl.col(f"extra:{name}") for name in extra},
    }
    return labelled.with_columns(
        c.fill_null(False).alias(f"flag:{name}") for name, c in flags.items()
    )


def _tag_lists(operator_tags: pl.Series, flags: dict[str, pl.Series]) -> pl.Series:
    """Per row, the sorted set of its operator tags and of the flags true on it."""
    rows, values = exploded(operator_tags.to_arrow())
    pairs = [(rows, values)]
    for name, on in flags.items():
        hit = np.flatnonzero(on.to_numpy())
        pairs.append((hit, pa.repeat(pa.scalar(name, pa.string()), len(hit))))
    rows, values = zip(*pairs, strict=True)
    return pl.from_arrow(sorted_sets(len(operator_tags), rows, values))


def _python_round(values: pl.Series) -> pl.Series:
    """Python's `round(x, 6)` (correctly rounded; Polars' scale-and-round differs in the last
    digit now and then), computed once per distinct value: scores take few."""
    distinct = values.drop_nulls().unique()
    return values.replace_strict(
        distinct, [round(v, 6) for v in distinct.to_list()], return_dtype=pl.Float64
    )


_TYPES = {
    "label": pa.string(),
    "signal_score": pa.float64(),
    "confidence": pa.float64(),
    "tags": pa.list_(pa.string()),
    "correction": pa.string(),
    "correction_source": pa.string(),
    "edited_response": pa.string(),
    "preferred_over": pa.list_(pa.string()),
    "verdict": pa.string(),
    "feedback_kinds": pa.list_(pa.string()),
    "feedback_user_hashes": pa.list_(pa.string()),
    "over_cap": pa.bool_(),
}


def conflict_key(normalized_prompt: pa.ChunkedArray | pa.Array, response) -> pa.Array:
    """What `conflict` compares: the normalized prompt and the normalized answer."""
    return pc.binary_join_element_wise(normalized_prompt, normalize_text(response), "\x1f")
