"""What every Delta asset says in Dagster: its description, group and column schema from the
catalog, and on each materialization its version, rows, rows added, table URI and, for tables of
redacted text, a preview of a few rows."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa
from deltalake import DeltaTable

from . import catalog
from .lake.tables import Lake, table_stats

PREVIEW_ROWS = 5
PREVIEW_CELL_CHARS = 80


def asset_args(table: str) -> dict:
    """What the catalog fixes for a Delta asset: what one row is, its stage's group, its kind and
    its column schema. Pass the name (or key) beside it."""
    entry = catalog.table(table)
    return {
        "description": entry.description,
        "group_name": entry.stage,
        "kinds": {"delta"},
        "metadata": {"dagster/column_schema": column_schema(entry.schema)},
    }


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
    preview = catalog.table(table).preview
    if preview and rows:
        metadata["preview"] = dg.MetadataValue.md(preview_markdown(dt, list(preview)))
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
