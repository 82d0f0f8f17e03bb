"""The curated tables (tagged rows, eval cases, review queue, SFT, DPO and KTO sets) and the
feedback metrics: their schemas and how the lake keeps them.

Curated rows are pseudonymous and redacted but still about people (each carries the user's keyed
hash), so they are kept like the redacted tables: no change feed, log statistics on ids and times.
"""

from __future__ import annotations

import pyarrow as pa

from ..contract.records import MESSAGE, TIMESTAMP
from ..lake.tables import TableSpec

# Every curated row says where it came from: the requests, the model that answered, the feedback
# kinds that made it, and the Delta versions of the redacted tables it was built from.
PROVENANCE = [
    pa.field("source_request_ids", pa.list_(pa.string())),
    pa.field("model_version", pa.string()),
    pa.field("feedback_kinds", pa.list_(pa.string())),
    pa.field("source_versions", pa.string()),  # JSON: {"redacted_logs": 3, ...}
    pa.field("_curated_at", TIMESTAMP),
]


def _spec(name: str, fields: list[pa.Field], id_field: str) -> TableSpec:
    safe = (id_field, "ts", "_curated_at")
    return TableSpec(name, pa.schema(fields + PROVENANCE), safe_columns=safe)


TAGGED_ROWS = _spec(
    "tagged_rows",
    [
        pa.field("request_id", pa.string()),
        pa.field("ts", TIMESTAMP),
        pa.field("prompt", pa.string()),
        pa.field("messages", pa.list_(MESSAGE)),
        pa.field("response", pa.string()),
        pa.field("normalized_prompt", pa.string()),
        pa.field("user_hash", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("label", pa.string()),  # positive | negative | unknown
        pa.field("confidence", pa.float64()),
        pa.field("signal_score", pa.float64()),
        pa.field("correction", pa.string()),  # the corrected answer, if any
        pa.field("correction_source", pa.string()),  # operator | user | null
        pa.field("edited_response", pa.string()),  # the user's own edit of the answer
        pa.field("preferred_over", pa.list_(pa.string())),  # request ids this answer beat
        pa.field("verdict", pa.string()),  # the latest operator verdict: good | bad | null
        pa.field("safety_flags", pa.list_(pa.string())),
        pa.field("feedback_user_hashes", pa.list_(pa.string())),
        pa.field("over_cap", pa.bool_()),  # some feedback on it came from a user over the cap
    ],
    "request_id",
)
EVAL_CASES = _spec(
    "eval_cases",
    [
        pa.field("case_id", pa.string()),
        pa.field("kind", pa.string()),  # golden | regression
        pa.field("input", pa.string()),
        pa.field("input_messages", pa.list_(MESSAGE)),
        pa.field("expected", pa.string()),
        pa.field("holdout", pa.bool_()),
        pa.field("source_request_id", pa.string()),
        pa.field("normalized_prompt", pa.string()),
        pa.field("ts", TIMESTAMP),
    ],
    "case_id",
)
REVIEW_QUEUE = _spec(
    "review_queue",
    [
        pa.field("request_id", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("ts", TIMESTAMP),
        pa.field("prompt", pa.string()),
        pa.field("response", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("user_hash", pa.string()),
    ],
    "request_id",
)
SFT_SET = _spec(
    "sft_set",
    [
        pa.field("example_id", pa.string()),
        pa.field("messages", pa.list_(MESSAGE)),  # whole conversation; last turn = assistant target
        pa.field("prompt", pa.string()),
        pa.field("completion", pa.string()),
        # response | user_correction | operator_correction | edit
        pa.field("target_source", pa.string()),
        pa.field("normalized_prompt", pa.string()),
        pa.field("user_hash", pa.string()),
        pa.field("ts", TIMESTAMP),
    ],
    "example_id",
)
DPO_SET = _spec(
    "dpo_set",
    [
        pa.field("pair_id", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("prompt_messages", pa.list_(MESSAGE)),
        pa.field("chosen", pa.string()),
        pa.field("rejected", pa.string()),
        pa.field("similarity", pa.float64()),  # normalized Levenshtein similarity of the two
        pa.field("pair_source", pa.string()),  # correction | edit | comparison
        pa.field("normalized_prompt", pa.string()),
        pa.field("user_hash", pa.string()),
        pa.field("ts", TIMESTAMP),
    ],
    "pair_id",
)
KTO_SET = _spec(
    "kto_set",
    [
        pa.field("example_id", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("prompt_messages", pa.list_(MESSAGE)),
        pa.field("completion", pa.string()),
        pa.field("label", pa.bool_()),  # desirable
        pa.field("normalized_prompt", pa.string()),
        pa.field("user_hash", pa.string()),
        pa.field("ts", TIMESTAMP),
    ],
    "example_id",
)

# Aggregates only: no personal data, so it keeps a change feed like any derived table.
# What the curated sets' global steps read of every local row (curation/local.py), so a build
# after new tagged rows derives only the request ids that changed. One row per local row:
# (set, row_id, request_id).
CURATION_STATE = TableSpec(
    "curation_state",
    pa.schema(
        [
            pa.field("set", pa.string()),  # golden | regression | sft | dpo | kto | review | ...
            pa.field("row_id", pa.string()),  # the row's id in its set
            pa.field("request_id", pa.string()),  # the tagged row that gave it
            pa.field("sub", pa.int64()),  # order among one request id's rows
            pa.field("normalized_prompt", pa.string()),
            pa.field("rank", pa.int64()),  # priority (SFT, DPO) or label_key (KTO)
            pa.field("confidence", pa.float64()),
            pa.field("ts", TIMESTAMP),
            pa.field("user_hash", pa.string()),
            pa.field("holdout", pa.bool_()),
            pa.field("source_request_ids", pa.list_(pa.string())),
        ]
    ),
    safe_columns=("set", "row_id", "request_id", "ts"),
)
CURATION_STATE_KEY = ("set", "row_id", "request_id")

FEEDBACK_METRICS = TableSpec(
    "feedback_metrics",
    pa.schema(
        [
            pa.field("day", pa.date32()),
            pa.field("model_version", pa.string()),
            pa.field("interactions", pa.int64()),  # everything logged, kept or not
            pa.field("kept", pa.int64()),
            pa.field("with_feedback", pa.int64()),
            pa.field("positive", pa.int64()),
            pa.field("negative", pa.int64()),
            pa.field("corrected", pa.int64()),
            pa.field("safety_flagged", pa.int64()),
            pa.field("feedback_rate", pa.float64()),
            pa.field("positive_rate", pa.float64()),
            pa.field("negative_rate", pa.float64()),
            pa.field("correction_rate", pa.float64()),
            pa.field("safety_flag_rate", pa.float64()),
        ]
    ),
)

# Clusters hold redacted prompts and the request ids of their rows (source_request_ids, as the
# curated sets name their provenance, so erasure finds a user's clusters): kept like them.
FAILURE_CLUSTERS = TableSpec(
    "failure_clusters",
    pa.schema(
        [
            pa.field("cluster_id", pa.string()),  # hash of the representative: stable
            pa.field("representative", pa.string()),  # normalized prompt, digits masked
            pa.field("size", pa.int64()),  # failing rows: negative, corrected or edited
            pa.field("rows", pa.int64()),  # every row of the cluster's prompts
            pa.field("negative_rate", pa.float64()),  # size / rows
            pa.field("corrected", pa.int64()),  # rows with a correction or a user's edit
            pa.field("examples", pa.list_(pa.string())),  # redacted prompts of failing rows
            pa.field("first_seen", TIMESTAMP),  # first and last failing row
            pa.field("last_seen", TIMESTAMP),
            pa.field("sets", pa.list_(pa.string())),  # curated sets its rows feed
            pa.field("source_request_ids", pa.list_(pa.string())),  # every row of the cluster
        ]
    ),
    safe_columns=("cluster_id", "first_seen", "last_seen"),
)
