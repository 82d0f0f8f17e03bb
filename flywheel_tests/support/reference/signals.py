"""Reference copy of flywheel_assets/curation/signals.py as of commit 0af77c2, before the
columnar rewrite: the row-loop implementation the new one must match row for row. Do not edit.

Original docstring:
Turn each kept interaction's feedback and annotations into tags, a label and a confidence."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from flywheel_assets.curation.normalize import normalize_text
from flywheel_assets.privacy.sampling import DriftWindow, in_any_window

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

    def kind_weight(self, kind: str, score: int | None) -> float:
        if kind == "rating":
            return self.rating_per_star * ((score or 3) - 3)
        return getattr(self, kind, 0.0) if kind != "comparison" else self.comparison_won


POSITIVE_KINDS = {"thumbs_up", "copy", "accept"}
NEGATIVE_KINDS = {"thumbs_down", "regenerate", "report"}


@dataclass
class _Signals:
    score: float = 0.0
    kinds: set[str] = field(default_factory=set)
    positive: bool = False
    negative: bool = False
    user_correction: tuple[datetime, str] | None = None
    edit: tuple[datetime, str] | None = None
    preferred_over: set[str] = field(default_factory=set)
    compared: bool = False
    users: set[str] = field(default_factory=set)
    over_cap: bool = False
    operator_tags: set[str] = field(default_factory=set)
    operator_correction: tuple[datetime, str] | None = None
    verdict: tuple[datetime, str] | None = None


def _latest(current: tuple[datetime, str] | None, ts: datetime, value: str):
    return (ts, value) if current is None or ts >= current[0] else current


def collect_signals(
    feedback: pa.Table,
    annotations: pa.Table,
    over_cap: pa.Array,
    weights: SignalWeights,
) -> dict[str, _Signals]:
    """Fold every feedback event and annotation into per-request signals.

    Feedback marked `over_cap` (a user past the per-window cap) is noted but does not count.
    """
    signals: dict[str, _Signals] = defaultdict(_Signals)
    rows = feedback.select(
        ["request_id", "ts", "kind", "score", "correction", "other_request_id", "user_hash"]
    ).to_pylist()
    for row, capped in zip(rows, over_cap.to_pylist(), strict=True):
        s = signals[row["request_id"]]
        kind = row["kind"]
        s.kinds.add(kind)
        if row["user_hash"]:
            s.users.add(row["user_hash"])
        if capped:
            s.over_cap = True
            continue
        s.score += weights.kind_weight(kind, row["score"])
        stars = row["score"]
        if kind in POSITIVE_KINDS or (kind == "rating" and stars is not None and stars >= 4):
            s.positive = True
        if kind in NEGATIVE_KINDS or (kind == "rating" and stars is not None and stars <= 2):
            s.negative = True
        if kind == "thumbs_down" and row["correction"]:
            s.user_correction = _latest(s.user_correction, row["ts"], row["correction"])
        if kind == "edit" and row["correction"]:
            s.edit = _latest(s.edit, row["ts"], row["correction"])
        if kind == "comparison" and row["other_request_id"]:
            s.compared = True
            s.preferred_over.add(row["other_request_id"])
            loser = signals[row["other_request_id"]]
            loser.compared = True
            loser.kinds.add("comparison")
            loser.score += weights.comparison_lost
    for row in annotations.select(
        ["request_id", "ts", "tags", "correction", "verdict"]
    ).to_pylist():
        s = signals[row["request_id"]]
        s.operator_tags.update(row["tags"] or [])
        if row["correction"]:
            s.operator_correction = _latest(s.operator_correction, row["ts"], row["correction"])
        if row["verdict"]:
            s.verdict = _latest(s.verdict, row["ts"], row["verdict"])
    return signals


def tag_rows(
    logs: pa.Table,
    signals: dict[str, _Signals],
    drift_windows: list[DriftWindow],
    weights: SignalWeights,
) -> pa.Table:
    """One row per interaction in `logs` with tags, label, confidence and its best correction."""
    normalized = normalize_text(logs["prompt"])
    in_drift = in_any_window(logs["ts"], drift_windows).to_pylist()
    low = pc.fill_null(pc.less(logs["response_logprob"], weights.low_logprob), False).to_pylist()
    out: dict[str, list] = {name: [] for name in _TYPES}
    for i, rid in enumerate(logs["request_id"].to_pylist()):
        s = signals.get(rid) or _Signals()
        verdict = s.verdict[1] if s.verdict else None
        score = s.score
        if verdict:
            score += weights.operator_verdict * (1 if verdict == "good" else -1)
        correction, source = None, None
        if s.operator_correction:
            correction, source = s.operator_correction[1], "operator"
        elif s.user_correction:
            correction, source = s.user_correction[1], "user"
        if correction is not None and verdict != "good":
            # A correction says the answer was wrong, whatever else was clicked.
            score = min(score, weights.negative_at)
        label = (
            POSITIVE
            if score >= weights.positive_at
            else NEGATIVE
            if score <= weights.negative_at
            else UNKNOWN
        )
        tags = set(s.operator_tags)
        tags.update(
            name
            for name, on in [
                ("user_positive", s.positive),
                ("user_negative", s.negative),
                ("corrected", correction is not None),
                ("edited", s.edit is not None),
                ("compared", s.compared),
                ("low_confidence", low[i]),
                ("drift_window", in_drift[i]),
                ("conflict", s.positive and s.negative),
                ("over_cap", s.over_cap),
            ]
            if on
        )
        out["label"].append(label)
        out["signal_score"].append(round(score, 6))
        out["confidence"].append(round(min(1.0, abs(score) / 2.0), 6))
        out["tags"].append(sorted(tags))
        out["correction"].append(correction)
        out["correction_source"].append(source)
        out["edited_response"].append(s.edit[1] if s.edit else None)
        out["preferred_over"].append(sorted(s.preferred_over))
        out["verdict"].append(verdict)
        out["feedback_kinds"].append(sorted(s.kinds))
        out["feedback_user_hashes"].append(sorted(s.users))
        out["over_cap"].append(s.over_cap)
    table = logs.append_column("normalized_prompt", normalized)
    for name, values in out.items():
        table = table.append_column(name, pa.array(values, _TYPES[name]))
    return mark_prompt_conflicts(table)


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


def mark_prompt_conflicts(table: pa.Table) -> pa.Table:
    """Tag `conflict` where the same answer to the same normalized prompt got opposite labels."""
    key = conflict_key(table["normalized_prompt"], table["response"])
    labelled = pa.table({"key": key, "label": table["label"]}).filter(
        pc.is_in(table["label"], value_set=pa.array([POSITIVE, NEGATIVE]))
    )
    per_key = labelled.group_by("key").aggregate([("label", "count_distinct")])
    contested = per_key.filter(pc.greater(per_key["label_count_distinct"], 1))["key"]
    if len(contested) == 0:
        return table
    hit = pc.fill_null(pc.is_in(key, value_set=contested), False).to_pylist()
    tags = [
        sorted({*t, "conflict"}) if h else t
        for t, h in zip(table["tags"].to_pylist(), hit, strict=True)
    ]
    return table.set_column(
        table.schema.get_field_index("tags"), "tags", pa.array(tags, pa.list_(pa.string()))
    )


def conflict_key(normalized_prompt: pa.ChunkedArray | pa.Array, response) -> pa.Array:
    """What `conflict` compares: the normalized prompt and the normalized answer."""
    return pc.binary_join_element_wise(normalized_prompt, normalize_text(response), "\x1f")
