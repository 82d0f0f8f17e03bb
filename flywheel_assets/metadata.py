"""Materialization metadata every Delta asset reports: version, rows, rows added, table URI."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

from .lake.tables import Lake


def table_metadata(lake: Lake, table: str, rows_before: int, **extra) -> dict:
    stats = lake.stats(table)
    version, rows = (stats.version, stats.rows) if stats else (-1, 0)
    return {
        "delta_version": version,
        "dagster/row_count": rows,
        "rows_added": rows - rows_before,
        "table_uri": dg.MetadataValue.path(lake.uri(table)),
        **extra,
    }


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
