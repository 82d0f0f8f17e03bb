"""The curated-set builders as they were before the columnar rewrite: row by row, in Python. Kept as
the reference the columnar builders must equal (flywheel_tests/curation/test_columnar_curation.py).

From tagged rows to the sets people and trainers use: eval cases, review queue, SFT, DPO, KTO.

Each builder takes the tagged rows (one per kept interaction) and returns an Arrow table in its
curated schema, without provenance columns; `with_provenance` adds them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz.distance import Levenshtein

from flywheel_assets.catalog.curated import DPO_SET, EVAL_CASES, KTO_SET, REVIEW_QUEUE, SFT_SET
from flywheel_assets.curation.caps import cap_user_share
from flywheel_assets.curation.dedup import keep_one_per_group, near_duplicate_groups
from flywheel_assets.curation.normalize import normalize_text
from flywheel_assets.curation.safety import SafetyPolicy, safety_flags
from flywheel_assets.curation.signals import NEGATIVE, POSITIVE
from flywheel_assets.gcpause import paused_gc
from flywheel_assets.governance.hashing import unit_interval
from flywheel_assets.privacy.pii import Detector

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
# Which corrected answer wins when one prompt has several.
TARGET_PRIORITY = {"operator_correction": 4, "user_correction": 3, "edit": 2, "response": 1}
PAIR_PRIORITY = {"correction": 3, "edit": 2, "comparison": 1}
# Columns of tagged_rows that can become a training target.
TARGET_COLUMNS = ("response", "correction", "edited_response")


@dataclass(frozen=True)
class CurationPolicy:
    holdout_share: float = 0.2
    similarity_min: float = 0.10  # below: a rewrite, the prompt was the problem
    similarity_max: float = 0.95  # above: a typo fix teaches nothing
    near_duplicate_threshold: float = 0.9
    max_user_share: float = 0.1
    min_rows_per_user: int = 5
    safety: SafetyPolicy = SafetyPolicy()

    def __post_init__(self):
        if not 0.0 <= self.holdout_share <= 1.0:
            raise ValueError(f"holdout_share must be within [0, 1], got {self.holdout_share}")
        if not 0.0 <= self.similarity_min < self.similarity_max <= 1.0:
            raise ValueError(
                "the similarity band needs 0 <= similarity_min < similarity_max <= 1, got "
                f"{self.similarity_min}..{self.similarity_max}"
            )


@dataclass
class Curated:
    eval_cases: pa.Table
    review_queue: pa.Table
    sft_set: pa.Table
    dpo_set: pa.Table
    kto_set: pa.Table
    stats: dict


ROW_COLUMNS = (
    "request_id",
    "ts",
    "prompt",
    "messages",
    "response",
    "normalized_prompt",
    "user_hash",
    "tags",
    "label",
    "confidence",
    "correction",
    "correction_source",
    "edited_response",
    "preferred_over",
    "verdict",
    "over_cap",
    "model_version",
    "feedback_kinds",
)


def curate(tagged: pa.Table, policy: CurationPolicy, key: bytes, detector: Detector) -> Curated:
    """Build every curated set from the tagged rows."""
    with paused_gc():
        return _curate(_candidates(tagged), policy, key, detector)


# What decides whether a tagged row is a candidate for any set.
CANDIDATE_COLUMNS = (
    "request_id",
    "label",
    "correction",
    "edited_response",
    "preferred_over",
    "over_cap",
    "tags",
)


def _candidates(tagged: pa.Table) -> pa.Table:
    return tagged.filter(candidate_mask(tagged)) if tagged.num_rows else tagged


def candidate_mask(tagged: pa.Table) -> pa.Array:
    """True for the rows any builder can take something from. Most interactions have no label,
    correction, edit, comparison, conflict or cap, and no set can use them."""
    if tagged.num_rows == 0:
        return pa.array([], pa.bool_())
    useful = pc.or_(
        pc.is_in(tagged["label"], value_set=pa.array([POSITIVE, NEGATIVE])),
        pc.or_(pc.is_valid(tagged["correction"]), pc.is_valid(tagged["edited_response"])),
    )
    useful = pc.or_(useful, pc.greater(pc.list_value_length(tagged["preferred_over"]), 0))
    useful = pc.or_(useful, pc.fill_null(tagged["over_cap"], False))
    # The losers of side-by-side choices: DPO looks their answers up.
    losers = pc.unique(pc.list_flatten(tagged["preferred_over"]))
    useful = pc.or_(useful, pc.is_in(tagged["request_id"], value_set=losers))
    tags = tagged["tags"].combine_chunks()
    conflict = pc.equal(pc.list_flatten(tags), "conflict")
    rows_in_conflict = pc.filter(pc.list_parent_indices(tags), conflict)
    in_conflict = np.zeros(tagged.num_rows, dtype=bool)
    in_conflict[rows_in_conflict.to_numpy()] = True
    return pc.or_(pc.fill_null(useful, False), pa.array(in_conflict))


def _curate(tagged: pa.Table, policy: CurationPolicy, key: bytes, detector: Detector) -> Curated:
    # Only the columns the builders read: converting the others to Python objects (timestamps
    # above all) doubled the time and the memory of this step.
    # Messages stay in Arrow: each output row keeps its source row's index (`_i`), and the
    # message columns are taken from there once the rows are tables.
    columns = [c for c in ROW_COLUMNS if c in tagged.column_names and c != "messages"]
    rows = tagged.select(columns).to_pylist()
    messages = tagged["messages"].combine_chunks()
    for i, r in enumerate(rows):
        r["_i"] = i
    # Ties (two golden answers equally confident and recent) go to the first row seen, so rows
    # are taken in request_id order: the result cannot depend on how tagged_rows is stored,
    # which differs between a full build and merged incremental ones.
    rows.sort(key=lambda r: r["request_id"])
    # Safety and normalization run vectorized over whole columns, once. Flags stay in Arrow:
    # most rows have none.
    flags = {col: _Flags(tagged[col], policy, detector) for col in TARGET_COLUMNS}
    prompt_flags = _Flags(tagged["prompt"], policy, detector)
    normalized = {col: normalize_text(tagged[col]).to_pylist() for col in TARGET_COLUMNS}

    def norm(row: dict, column: str) -> str:
        return normalized[column][row["_i"]] or ""

    by_id = {r["request_id"]: r for r in rows}
    unsafe: dict[str, list[str]] = {}

    def target_ok(row: dict, column: str) -> bool:
        """The training target in `column` (and the prompt before it) passes the breaker."""
        # A short prompt ("thanks!") is fine; a short answer to learn from is not.
        found = flags[column].at(row["_i"]) + [
            f for f in prompt_flags.at(row["_i"]) if f not in ("too_short", "empty")
        ]
        if found:
            unsafe.setdefault(row["request_id"], found)
        return not found

    evals = _eval_cases(rows, policy, key, target_ok, norm)
    holdout_prompts = {c["normalized_prompt"] for c in evals if c["holdout"]}
    sft, sft_leaks = _without(_sft_rows(rows, target_ok), holdout_prompts)
    dpo, dpo_leaks = _without(_dpo_rows(rows, by_id, policy, target_ok, norm), holdout_prompts)
    kto, kto_leaks = _without(_kto_rows(rows, target_ok), holdout_prompts)

    sft_t = _collapse(_table(sft, SFT_SET, messages), policy, "priority")
    dpo_t = _collapse(_table(dpo, DPO_SET, messages), policy, "priority")
    kto_t = _collapse(_table(kto, KTO_SET, messages), policy, "label_key")
    sets, capped = {}, {}
    for name, table in (("sft", sft_t), ("dpo", dpo_t), ("kto", kto_t)):
        sets[name], dropped = cap_user_share(
            table,
            max_share=policy.max_user_share,
            min_rows_per_user=policy.min_rows_per_user,
            order_by=[("ts", "ascending")],
        )
        capped[name] = dropped.num_rows
    review = _review_rows(rows, unsafe)
    return Curated(
        eval_cases=_table(evals, EVAL_CASES, messages),
        review_queue=_table(review, REVIEW_QUEUE, messages),
        sft_set=sets["sft"],
        dpo_set=sets["dpo"],
        kto_set=sets["kto"],
        stats={
            "holdout_leaks_removed": {"sft": sft_leaks, "dpo": dpo_leaks, "kto": kto_leaks},
            "dropped_by_user_share_cap": capped,
            "unsafe_targets": len(unsafe),
        },
    )


def _eval_cases(
    rows: list[dict], policy: CurationPolicy, key: bytes, target_ok, norm
) -> list[dict]:
    golden: dict[str, dict] = {}
    regression: dict[tuple[str, str], dict] = {}
    for r in rows:
        if r["over_cap"] or "conflict" in r["tags"]:
            continue
        if r["label"] == POSITIVE and r["correction"] is None:
            if not target_ok(r, "response"):
                continue
            case = _case(r, "golden", "response", policy, key, norm)
            best = golden.get(case["normalized_prompt"])
            if best is None or (r["confidence"], r["ts"]) > (best["_conf"], best["ts"]):
                golden[case["normalized_prompt"]] = case | {"_conf": r["confidence"]}
        elif r["label"] == NEGATIVE and r["correction"] is not None:
            if not target_ok(r, "correction"):
                continue
            case = _case(r, "regression", "correction", policy, key, norm)
            k = (case["normalized_prompt"], norm(r, "correction"))
            if k not in regression or r["ts"] > regression[k]["ts"]:
                regression[k] = case
    return [*golden.values(), *regression.values()]


def _case(r: dict, kind: str, column: str, policy: CurationPolicy, key: bytes, norm) -> dict:
    prompt = r["normalized_prompt"]
    return {
        "case_id": _id(kind, prompt, norm(r, column)),
        "kind": kind,
        "input": r["prompt"],
        "_i": r["_i"],
        "expected": r[column],
        # Keyed on the prompt: every case of one prompt is held out together.
        "holdout": unit_interval(prompt, key, "holdout") < policy.holdout_share,
        "source_request_id": r["request_id"],
        "normalized_prompt": prompt,
        "ts": r["ts"],
        **_prov(r, [r["request_id"]]),
    }


def _sft_rows(rows: list[dict], target_ok) -> list[dict]:
    out = []
    for r in rows:
        if r["over_cap"] or "conflict" in r["tags"]:
            continue
        column, source = _sft_target(r)
        if column is None or not target_ok(r, column):
            continue
        target = r[column]
        out.append(
            {
                "example_id": _id("sft", r["request_id"], source),
                "_i": r["_i"],  # messages: the row's history (or its prompt), then the target
                "prompt": r["prompt"],
                "completion": target,
                "target_source": source,
                "normalized_prompt": r["normalized_prompt"],
                "user_hash": r["user_hash"],
                "ts": r["ts"],
                "priority": TARGET_PRIORITY[source],
                "confidence": r["confidence"],
                **_prov(r, [r["request_id"]]),
            }
        )
    return out


def _sft_target(r: dict) -> tuple[str | None, str | None]:
    """The column holding the best answer to learn from, and what kind of answer it is."""
    if r["correction"] is not None and r["verdict"] != "good":
        return "correction", f"{r['correction_source']}_correction"
    if r["label"] == POSITIVE:
        return "response", "response"
    if r["edited_response"] is not None:
        return "edited_response", "edit"
    return None, None


def _dpo_rows(rows: list[dict], by_id: dict, policy: CurationPolicy, target_ok, norm) -> list[dict]:
    out = []
    for r in rows:
        if r["over_cap"]:
            continue
        # (source, chosen row, chosen column, rejected row, request ids)
        candidates = []
        if r["correction"] is not None and r["verdict"] != "good":
            candidates.append(("correction", r, "correction", r, [r["request_id"]]))
        if r["edited_response"] is not None:
            candidates.append(("edit", r, "edited_response", r, [r["request_id"]]))
        for other_id in r["preferred_over"]:
            other = by_id.get(other_id)
            # A side-by-side choice is a pair only when both answered the same question.
            if other is not None and other["normalized_prompt"] == r["normalized_prompt"]:
                candidates.append(("comparison", r, "response", other, [r["request_id"], other_id]))
        for source, winner, column, loser, ids in candidates:
            chosen, rejected = winner[column], loser["response"]
            if chosen is None or rejected is None:
                continue
            if norm(winner, column) == norm(loser, "response"):
                continue  # chosen must differ from rejected, beyond case and punctuation
            similarity = Levenshtein.normalized_similarity(chosen, rejected)
            in_band = policy.similarity_min <= similarity <= policy.similarity_max
            if source != "comparison" and not in_band:
                continue
            if not target_ok(winner, column):
                continue
            out.append(
                {
                    "pair_id": _id("dpo", source, *ids),
                    "prompt": r["prompt"],
                    "_i": r["_i"],
                    "chosen": chosen,
                    "rejected": rejected,
                    "similarity": round(similarity, 6),
                    "pair_source": source,
                    "normalized_prompt": r["normalized_prompt"],
                    "user_hash": r["user_hash"],
                    "ts": r["ts"],
                    "priority": PAIR_PRIORITY[source],
                    "confidence": r["confidence"],
                    **_prov(r, ids),
                }
            )
    return out


def _kto_rows(rows: list[dict], target_ok) -> list[dict]:
    out = []
    for r in rows:
        if r["over_cap"] or "conflict" in r["tags"] or r["label"] not in (POSITIVE, NEGATIVE):
            continue
        desirable = r["label"] == POSITIVE and r["correction"] is None
        if desirable and not target_ok(r, "response"):
            continue
        if not desirable and r["label"] != NEGATIVE:
            continue
        out.append(
            {
                "example_id": _id("kto", r["request_id"]),
                "prompt": r["prompt"],
                "_i": r["_i"],
                "completion": r["response"],
                "label": desirable,
                "normalized_prompt": r["normalized_prompt"],
                "user_hash": r["user_hash"],
                "ts": r["ts"],
                "label_key": 1 if desirable else 0,
                "confidence": r["confidence"],
                **_prov(r, [r["request_id"]]),
            }
        )
    return out


def _review_rows(rows: list[dict], unsafe: dict[str, list[str]]) -> list[dict]:
    out = []
    for r in rows:
        if r["verdict"] is not None or r["correction_source"] == "operator":
            continue  # an operator has looked at it: the loop is closed
        reasons = []
        if r["request_id"] in unsafe:
            reasons.append("safety:" + "+".join(sorted(set(unsafe[r["request_id"]]))))
        if "conflict" in r["tags"]:
            reasons.append("conflict")
        if r["over_cap"]:
            reasons.append("over_cap")
        if r["label"] == NEGATIVE and r["correction"] is None and r["edited_response"] is None:
            reasons.append("negative_without_correction")
        if reasons:
            out.append(
                {
                    "request_id": r["request_id"],
                    "reason": ",".join(reasons),
                    "ts": r["ts"],
                    "prompt": r["prompt"],
                    "response": r["response"],
                    "tags": r["tags"],
                    "user_hash": r["user_hash"],
                    **_prov(r, [r["request_id"]]),
                }
            )
    return out


class _Flags:
    """A text column's safety flags, looked up per row; only flagged rows become Python lists."""

    def __init__(self, texts, policy: CurationPolicy, detector: Detector):
        self.flags = safety_flags(texts, policy.safety, detector)
        self.any = pc.list_value_length(self.flags).to_numpy(zero_copy_only=False) > 0

    def at(self, i: int) -> list[str]:
        return self.flags[i].as_py() if self.any[i] else []


def _without(rows: list[dict], holdout_prompts: set[str]) -> tuple[list[dict], int]:
    """Drop rows whose prompt is a held-out eval case: a model must not train on its exam."""
    kept = [r for r in rows if r["normalized_prompt"] not in holdout_prompts]
    return kept, len(rows) - len(kept)


def _collapse(table: pa.Table, policy: CurationPolicy, rank: str) -> pa.Table:
    """Keep one row per group of near-duplicate prompts (per label for KTO), the best ranked."""
    if table.num_rows == 0:
        return table
    groups = near_duplicate_groups(
        table["normalized_prompt"], threshold=policy.near_duplicate_threshold
    )
    if rank == "label_key":  # desirable and undesirable answers to one prompt both stay
        groups = pc.add(pc.multiply(groups, 2), table[rank].cast(pa.int64()))
    table = table.append_column("_group", groups)
    kept = keep_one_per_group(
        table, "_group", [(rank, "descending"), ("confidence", "descending"), ("ts", "descending")]
    )
    return kept.drop_columns(["_group"])


# Per set, the column holding messages taken from the source row.
MESSAGE_COLUMNS = {
    EVAL_CASES.name: "input_messages",
    SFT_SET.name: "messages",
    DPO_SET.name: "prompt_messages",
    KTO_SET.name: "prompt_messages",
}


def _table(rows: list[dict], spec, messages: pa.ListArray) -> pa.Table:
    """Rows in the spec's schema, plus any ranking columns the builders carry along, with their
    messages taken from `messages` by each row's source index."""
    extra = [n for n in ("priority", "label_key", "confidence") if rows and n in rows[0]]
    schema = spec.schema
    for name in extra:
        schema = schema.append(pa.field(name, pa.float64() if name == "confidence" else pa.int64()))
    # Keys outside the schema (the builders' own, like `_i` and `_conf`) are ignored.
    table = pa.Table.from_pylist(rows, schema=schema)
    column = MESSAGE_COLUMNS.get(spec.name)
    if column is None:
        return table
    source = messages.take(pa.array([r["_i"] for r in rows], pa.int64()))
    if spec.name == SFT_SET.name:
        source = _with_reply(
            source, table["prompt"].combine_chunks(), table["completion"].combine_chunks()
        )
    index = schema.get_field_index(column)
    return table.set_column(index, schema.field(index), source.cast(schema.field(index).type))


def _with_reply(history: pa.ListArray, prompts: pa.Array, replies: pa.Array) -> pa.ListArray:
    """Each conversation (or, where there is none, the prompt as one user message) followed by
    the assistant's reply."""
    n = len(history)
    message = MESSAGES.value_type
    earlier = pc.list_flatten(history).cast(message)
    lengths = pc.fill_null(pc.list_value_length(history), 0).to_numpy(zero_copy_only=False)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    alone = lengths == 0
    own = np.where(alone, 1, lengths) + 1  # messages per row, the reply included
    offsets = np.concatenate([[0], np.cumsum(own)]).astype(np.int32)
    row = np.repeat(np.arange(n), own)
    position = np.arange(offsets[-1]) - np.repeat(offsets[:-1], own)
    # Values: the earlier messages, then one user message per row, then one reply per row.
    asked = pa.StructArray.from_arrays(
        [pa.array(["user"] * n, pa.string()), prompts.cast(pa.string())],
        fields=list(message),
    )
    said = pa.StructArray.from_arrays(
        [pa.array(["assistant"] * n, pa.string()), replies.cast(pa.string())],
        fields=list(message),
    )
    reply_at = len(earlier) + n + row
    first_at = len(earlier) + row
    take = np.where(
        position == own[row] - 1, reply_at, np.where(alone[row], first_at, starts[row] + position)
    )
    values = pa.concat_arrays([earlier, asked, said]).take(pa.array(take, pa.int64()))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, type=MESSAGES)


def finalize(table: pa.Table, spec, source_versions: dict[str, int]) -> pa.Table:
    """Exactly the spec's columns, stamped with the source versions and the build time."""
    n = table.num_rows
    table = table.set_column(
        table.schema.get_field_index("source_versions"),
        "source_versions",
        pa.array([json.dumps(source_versions, sort_keys=True)] * n, pa.string()),
    )
    table = table.set_column(
        table.schema.get_field_index("_curated_at"),
        "_curated_at",
        pa.array([datetime.now(UTC)] * n, spec.schema.field("_curated_at").type),
    )
    return table.select(spec.schema.names).cast(spec.schema)


def _prov(r: dict, request_ids: list[str]) -> dict:
    return {
        "source_request_ids": request_ids,
        "model_version": r["model_version"],
        "feedback_kinds": r["feedback_kinds"],
    }  # source_versions and _curated_at are stamped by `finalize`


def _id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]
