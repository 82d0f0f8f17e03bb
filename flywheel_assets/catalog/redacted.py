"""The redacted tables: raw rows after PII redaction and keyed hashing, the sampled interactions.

Pseudonymous, redacted rows are still about people: no change feed, log statistics on ids only.
"""

from __future__ import annotations

import pyarrow as pa

from ..contract.records import MESSAGE, TIMESTAMP
from ..lake.tables import TableSpec

# Detections per PII kind in a row.
PII_COUNTS_TYPE = pa.map_(pa.string(), pa.int64())
_REDACTION = [
    pa.field("pii_counts", PII_COUNTS_TYPE),
    pa.field("pii_total", pa.int64()),
    pa.field("_ingest_batch", pa.int64()),
    pa.field("_redacted_at", TIMESTAMP),
]


def _spec(name: str, fields: list[pa.Field], id_field: str) -> TableSpec:
    safe = tuple(dict.fromkeys([id_field, "request_id", "ts", "_ingest_batch", "_redacted_at"]))
    return TableSpec(name, pa.schema(fields + _REDACTION), safe_columns=safe)


REDACTED_LOGS = _spec(
    "redacted_logs",
    [
        pa.field("request_id", pa.string()),
        pa.field("ts", TIMESTAMP),
        pa.field("prompt", pa.string()),
        pa.field("messages", pa.list_(MESSAGE)),
        pa.field("response", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("user_hash", pa.string()),
        pa.field("session_hash", pa.string()),
        pa.field("latency_ms", pa.int64()),
        pa.field("response_logprob", pa.float64()),
        pa.field("metadata", pa.string()),
        pa.field("extra", pa.string()),
        pa.field("keep_reason", pa.string()),
    ],
    "request_id",
)
REDACTED_FEEDBACK = _spec(
    "redacted_feedback",
    [
        pa.field("feedback_id", pa.string()),
        pa.field("request_id", pa.string()),
        pa.field("ts", TIMESTAMP),
        pa.field("kind", pa.string()),
        pa.field("score", pa.int64()),
        pa.field("correction", pa.string()),
        pa.field("other_request_id", pa.string()),
        pa.field("comment", pa.string()),
        pa.field("user_hash", pa.string()),
        pa.field("extra", pa.string()),
    ],
    "feedback_id",
)
REDACTED_ANNOTATIONS = _spec(
    "redacted_annotations",
    [
        pa.field("annotation_id", pa.string()),
        pa.field("request_id", pa.string()),
        pa.field("ts", TIMESTAMP),
        pa.field("operator", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("correction", pa.string()),
        pa.field("verdict", pa.string()),
        pa.field("extra", pa.string()),
    ],
    "annotation_id",
)
