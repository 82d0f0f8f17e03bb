"""The rows appended to a table since an earlier version.

Personal tables keep no change data feed (it would hold copies of values an erasure must
remove), so the new rows are read from the data files the table gained since that version. Only
appends and maintenance qualify: after a delete, restore, merge or overwrite there is no exact
"new rows", and the caller rebuilds instead.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake.exceptions import DeltaError

from .tables import MAINTENANCE_OPERATIONS, REWRITE_KEY, Lake


def appended_since(
    lake: Lake, table: str, version: int, *, columns: list[str] | None = None
) -> pa.Table | None:
    """Rows written to `table` after `version` (-1: every row), or None when a commit since then
    did more than append. Compaction since `version` makes its rewritten rows count as new."""
    current = lake.open(table)
    if current is None:
        return None if version >= 0 else pa.table({})
    if version < 0:
        return lake.read(table, columns=columns)
    if current.version() < version:
        return None
    for commit in current.history(limit=max(1, current.version() - version)):
        if commit["version"] <= version:
            break
        operation = commit.get("operation")
        append = operation == "WRITE" and commit.get("operationParameters", {}).get("mode") == (
            "Append"
        )
        append = append and REWRITE_KEY not in commit  # a delete of rows, see Lake.delete
        if not append and operation not in MAINTENANCE_OPERATIONS:
            return None
    try:
        before = lake.open(table, version=version)
    except DeltaError:  # the log of that version is gone: no way to tell what is new
        return None
    if before is None:
        return None
    known = set(before.get_add_actions(flatten=True).column("path").to_pylist())
    dataset = current.to_pyarrow_dataset()
    added = [f for f in dataset.get_fragments() if f.path not in known]
    subset = ds.FileSystemDataset(added, dataset.schema, dataset.format, dataset.filesystem)
    return subset.to_table(columns=columns)
