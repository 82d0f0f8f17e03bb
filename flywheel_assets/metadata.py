"""What every Delta asset says in Dagster: its description, group and column schema from the
catalog, on each materialization its version, rows, rows added, table URI and a preview of a few
rows; and on each check the version its verdict is about.

Dagster's event log keeps every materialization's metadata for good, out of erasure's reach, so
a preview of a table that holds personal data shows only columns that cannot carry a user's
text: its ids and times (the columns the Delta log may hold too) and numbers."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable

from . import catalog
from .lake.tables import Lake, table_stats
from .lake.verifications import Outcome

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
    preview = preview_columns(catalog.table(table))
    if preview and rows:
        metadata["preview"] = dg.MetadataValue.md(preview_markdown(dt, preview))
    return {**metadata, **extra}


def preview_columns(entry: catalog.CatalogTable) -> list[str]:
    """The catalog's preview columns that may be shown in the event log: all of them for a table
    without personal data, only ids, times and numbers for one with it."""
    if not entry.personal:
        return list(entry.preview)
    safe = set(entry.spec.safe_columns or ())
    return [c for c in entry.preview if c in safe or not _may_hold_text(entry.schema.field(c).type)]


def _may_hold_text(t: pa.DataType) -> bool:
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return True
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return True
    return any(_may_hold_text(t.field(i).type) for i in range(t.num_fields))


def preview_markdown(dt: DeltaTable, columns: list[str]) -> str:
    """The first few rows of a redacted table as a markdown table (long text cut short)."""
    rows = first_rows(dt, columns, PREVIEW_ROWS)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def first_rows(dt: DeltaTable, columns: list[str], n: int) -> list[dict]:
    """The table's first `n` rows, read from its first files a few pages at a time.

    Every materialization shows a preview, also on a run that changed nothing: the dataset's
    `head` decodes the whole first row group (a second per million rows of text), a Parquet
    reader with a small buffer stops after the first pages.
    """
    dataset = dt.to_pyarrow_dataset()
    rows: list[dict] = []
    for fragment in dataset.get_fragments():
        file = pq.ParquetFile(
            fragment.path, filesystem=dataset.filesystem, pre_buffer=False, buffer_size=1 << 16
        )
        if not set(columns) <= set(file.schema_arrow.names):
            # A file written before a column was added: the dataset fills the column in.
            return dataset.head(n, columns=columns).to_pylist()
        for batch in file.iter_batches(batch_size=n, columns=columns):
            rows += batch.to_pylist()
            if len(rows) >= n:
                return rows[:n]
    return rows


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


def check_result(
    table: str, outcome: Outcome, *, severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR
) -> dg.AssetCheckResult:
    """A check's result with the version it verified, and whether it read the table this run
    (`re_run`) or reports the pass it earned on that same version in an earlier run."""
    extra: dict = {"re_run": outcome.re_run}
    if outcome.verified is not None:
        extra["verified_version"] = outcome.verified.version
    if not outcome.re_run:
        extra["verified_in_run"] = outcome.verified_in_run or ""
        extra["verified_at"] = outcome.verified_at.isoformat() if outcome.verified_at else ""
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(table),
        check_name=outcome.check,
        passed=outcome.passed,
        severity=severity,
        metadata={**check_metadata(outcome.metadata), **extra},
    )


def check_metadata(values: Mapping[str, object]) -> dict:
    """Plain values as they are, lists and mappings as JSON (as the UI shows them)."""
    return {
        k: v if isinstance(v, bool | int | float | str) else dg.MetadataValue.json(v)
        for k, v in values.items()
    }
