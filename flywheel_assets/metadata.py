"""Materialization metadata every Delta asset reports: version, rows, rows added, table URI, and
for tables of redacted text a preview of a few rows."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa
from deltalake import DeltaTable

from .lake.tables import Lake, table_stats

# Shown in the UI: only tables whose text went through redaction, never the raw ones.
PREVIEW_COLUMNS = {
    "redacted_logs": ["request_id", "keep_reason", "prompt", "response"],
    "redacted_feedback": ["feedback_id", "request_id", "kind", "correction"],
    "redacted_annotations": ["annotation_id", "request_id", "verdict", "correction"],
    "tagged_rows": ["request_id", "label", "confidence", "tags", "prompt"],
    "eval_cases": ["case_id", "kind", "holdout", "input", "expected"],
    "review_queue": ["request_id", "reason", "prompt", "response"],
    "sft_set": ["example_id", "target_source", "prompt", "completion"],
    "dpo_set": ["pair_id", "similarity", "prompt", "chosen", "rejected"],
    "kto_set": ["example_id", "label", "prompt", "completion"],
}
PREVIEW_ROWS = 5
PREVIEW_CELL_CHARS = 80


def table_metadata(lake: Lake, table: str, rows_before: int, **extra) -> dict:
    dt = lake.open(table)  # opened once for the stats and the preview
    stats = table_stats(dt) if dt is not None else None
    version, rows = (stats.version, stats.rows) if stats else (-1, 0)
    metadata = {
        "delta_version": version,
        "dagster/row_count": rows,
        "rows_added": rows - rows_before,
        "table_uri": dg.MetadataValue.path(lake.uri(table)),
    }
    if table in PREVIEW_COLUMNS and rows:
        metadata["preview"] = dg.MetadataValue.md(preview_markdown(dt, PREVIEW_COLUMNS[table]))
    return {**metadata, **extra}


def preview_markdown(dt: DeltaTable, columns: list[str]) -> str:
    """The first few rows of a redacted table as a markdown table (long text cut short)."""
    rows = dt.to_pyarrow_dataset().head(PREVIEW_ROWS, columns=columns).to_pylist()
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    text = " ".join(str(value).split()).replace("|", "\\|")
    if len(text) > PREVIEW_CELL_CHARS:
        text = text[: PREVIEW_CELL_CHARS - 1] + "…"
    return text


def version_of(lake: Lake, table: str) -> int:
    stats = lake.stats(table)
    return stats.version if stats else -1


def rows_now(lake: Lake, table: str) -> int:
    stats = lake.stats(table)
    return stats.rows if stats else 0


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(f.name, str(f.type)) for f in schema],
    )
