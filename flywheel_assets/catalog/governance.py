"""The tables every stage honours: erasure tombstones, and the rollback audit and exclusions."""

from __future__ import annotations

import pyarrow as pa

from ..contract.records import TIMESTAMP
from ..lake.tables import TableSpec

TOMBSTONES = TableSpec(
    "erasure_tombstones",
    pa.schema(
        [
            pa.field("user_hash", pa.string()),
            pa.field("request_ids", pa.list_(pa.string())),
            pa.field("erased_at", TIMESTAMP),
            pa.field("reason", pa.string()),
            pa.field("tables", pa.list_(pa.string())),
            pa.field("erasure_id", pa.string()),  # the erasure's commits carry it too
        ]
    ),
)
ROLLBACK_AUDIT = TableSpec(
    "rollback_audit",
    pa.schema(
        [
            pa.field("rollback_id", pa.string()),
            pa.field("action", pa.string()),  # rollback | readmit
            pa.field("table", pa.string()),
            pa.field("from_version", pa.int64()),
            pa.field("to_version", pa.int64()),
            pa.field("restored_version", pa.int64()),
            pa.field("rows_before", pa.int64()),
            pa.field("rows_after", pa.int64()),
            pa.field("ids_count", pa.int64()),  # ids excluded or re-admitted
            pa.field("erased_rows_removed", pa.int64()),
            pa.field("affected_models", pa.list_(pa.string())),
            pa.field("reason", pa.string()),
            pa.field("actor", pa.string()),
            pa.field("run_id", pa.string()),
            pa.field("at", TIMESTAMP),
        ]
    ),
)
ROLLBACK_EXCLUSIONS = TableSpec(
    "rollback_exclusions",
    pa.schema(
        [
            pa.field("rollback_id", pa.string()),
            pa.field("table", pa.string()),
            pa.field("scope", pa.string()),
            pa.field("id_column", pa.string()),
            pa.field("id", pa.string()),
            pa.field("excluded_at", TIMESTAMP),
        ]
    ),
    # Ids only, no text; still kept out of log statistics like the tables they point into.
    safe_columns=("rollback_id", "table", "scope", "id_column", "excluded_at"),
)
