"""The raw tables: landing records as they arrived, the lines that were rejected, and the ledger.

Raw rows hold personal data as the app sent it: log statistics only on ids and times.
"""

from __future__ import annotations

import pyarrow as pa

from ..contract.records import ANNOTATIONS, DRIFT_EVENTS, FEEDBACK, INTERACTIONS, TIMESTAMP, Stream
from ..lake.tables import TableSpec


def _stream_spec(stream: Stream) -> TableSpec:
    names = [f.name for f in stream.fields]
    ids = [n for n in (stream.id_field, "request_id") if n in names]
    safe = tuple(dict.fromkeys([*ids, "ts", "_ingest_batch", "_ingested_at"]))
    return TableSpec(stream.table, stream.schema, safe_columns=safe)


RAW_LOGS = _stream_spec(INTERACTIONS)
RAW_FEEDBACK = _stream_spec(FEEDBACK)
RAW_ANNOTATIONS = _stream_spec(ANNOTATIONS)
RAW_DRIFT_EVENTS = _stream_spec(DRIFT_EVENTS)
# The table each stream's records land in, by stream name.
STREAM_TABLES = {
    s.name: spec
    for s, spec in (
        (INTERACTIONS, RAW_LOGS),
        (FEEDBACK, RAW_FEEDBACK),
        (ANNOTATIONS, RAW_ANNOTATIONS),
        (DRIFT_EVENTS, RAW_DRIFT_EVENTS),
    )
}

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("stream", pa.string()),
        pa.field("source_file", pa.string()),
        pa.field("line_number", pa.int64()),
        pa.field("reason_code", pa.string()),
        pa.field("reason", pa.string()),
        # The line as text (bad bytes replaced) for reading, and its exact bytes so nothing is lost.
        pa.field("raw_line", pa.string()),
        pa.field("raw_bytes", pa.binary()),
        pa.field("_ingest_batch", pa.int64()),
        pa.field("_ingested_at", TIMESTAMP),
    ]
)
QUARANTINE = TableSpec(
    "quarantine",
    QUARANTINE_SCHEMA,
    safe_columns=("stream", "line_number", "_ingest_batch", "_ingested_at"),
)

LEDGER_SCHEMA = pa.schema(
    [
        pa.field("batch", pa.int64()),
        pa.field("status", pa.string()),  # planned | done | missing
        pa.field("stream", pa.string()),
        pa.field("path", pa.string()),
        pa.field("size_bytes", pa.int64()),
        pa.field("mtime", TIMESTAMP),
        pa.field("sha256", pa.string()),
        pa.field("lines_read", pa.int64()),
        pa.field("valid", pa.int64()),
        pa.field("quarantined", pa.int64()),
        pa.field("duplicates", pa.int64()),
        pa.field("erased", pa.int64()),
        pa.field("recorded_at", TIMESTAMP),
        pa.field("dagster_run_id", pa.string()),
    ]
)
LEDGER = TableSpec("ingest_ledger", LEDGER_SCHEMA)

# The id of every record ever ingested, kept after retention or erasure removed the record itself,
# so a record sent again is a duplicate forever. Ids only: no content, no user.
INGEST_IDS_SCHEMA = pa.schema(
    [
        pa.field("stream", pa.string()),
        pa.field("id", pa.string()),
        pa.field("_ingest_batch", pa.int64()),
    ]
)
INGEST_IDS = TableSpec("ingest_ids", INGEST_IDS_SCHEMA)
