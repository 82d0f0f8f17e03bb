"""A table's versions: history with row counts, which versions can still be restored, and restore.

Plain deltalake and pyarrow, like the rest of the lake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from .tables import REWRITE_KEY, ROWS_ADDED_KEY, ROWS_REMOVED_KEY, Lake

RUN_ID_KEY = "dagster.run_id"


class VersionUnavailable(ValueError):
    """The version asked for cannot be restored (never existed, or its files or log are gone)."""


@dataclass(frozen=True)
class VersionInfo:
    version: int
    timestamp: datetime
    operation: str
    rows: int
    rows_added: int
    rows_removed: int
    run_id: str | None
    detail: str  # the flywheel operation or the restore target, when known


def history(lake: Lake, table: str, *, limit: int | None = None) -> list[VersionInfo]:
    """The table's versions still in its log, newest first, with rows added and removed.

    Counts come from the log's add actions (no data file is read): the rows a version holds,
    compared with the version before, and split by the commit's own metrics where it has them
    (an overwrite both removes and adds).
    """
    dt = _require(lake, table)
    commits = sorted(dt.history(limit), key=lambda c: c["version"])
    if not commits:
        return []
    first = commits[0]["version"]
    rows_before = _rows_at(lake, table, first - 1) if first > 0 else 0
    out = []
    for commit in commits:
        rows = _rows_at(lake, table, commit["version"])
        added, removed = _added_removed(commit, rows_before, rows)
        out.append(
            VersionInfo(
                version=commit["version"],
                timestamp=datetime.fromtimestamp(commit["timestamp"] / 1000, UTC),
                operation=commit.get("operation", ""),
                rows=rows,
                rows_added=added,
                rows_removed=removed,
                run_id=commit.get(RUN_ID_KEY),
                detail=_detail(commit),
            )
        )
        rows_before = rows
    return out[::-1]


def version_at(lake: Lake, table: str, when: datetime) -> int:
    """The version that was current at `when`: the last one committed at or before it."""
    if when.tzinfo is None:
        raise ValueError(f"timestamp {when.isoformat()} has no time zone; add one, e.g. +00:00")
    dt = _require(lake, table)
    commits = sorted(dt.history(), key=lambda c: c["version"])
    at = [c["version"] for c in commits if c["timestamp"] <= when.timestamp() * 1000]
    if not at:
        oldest = datetime.fromtimestamp(commits[0]["timestamp"] / 1000, UTC) if commits else None
        raise VersionUnavailable(
            f"{table} has no version at or before {when.isoformat()}; its oldest reachable "
            f"version was written at {oldest.isoformat() if oldest else 'never'}"
        )
    return at[-1]


def is_restorable(lake: Lake, table: str, version: int) -> bool:
    """True when the version's log and every one of its data files can still be read."""
    try:
        dt = lake.open(table, version=version)
        if dt is None:
            return False
        # Reading each file's footer proves it is there; no row data is read.
        dt.to_pyarrow_dataset().count_rows()
        return True
    except Exception:  # noqa: BLE001 - any failure to load means "not restorable"
        return False


def oldest_restorable(lake: Lake, table: str) -> int | None:
    """The oldest version from which every later version can still be restored (None when the
    table does not exist). Older versions may happen to load (an empty first version), but the
    unbroken run back from the current version is the rollback window that really exists."""
    dt = lake.open(table)
    if dt is None:
        return None
    oldest = dt.version()
    for version in sorted((c["version"] for c in dt.history()), reverse=True):
        if not is_restorable(lake, table, version):
            break
        oldest = version
    return oldest


def check_restorable(lake: Lake, table: str, version: int) -> None:
    """Raise VersionUnavailable, naming the oldest restorable version, unless `version` is."""
    current = _require(lake, table).version()
    if version < 0 or version > current:
        raise VersionUnavailable(
            f"{table} has versions 0 to {current}; there is no version {version}"
        )
    if not is_restorable(lake, table, version):
        oldest = oldest_restorable(lake, table)
        raise VersionUnavailable(
            f"{lake.why_unreadable(table, version)}; it cannot be restored, the oldest "
            f"restorable version is {oldest}"
        )


def restore(
    lake: Lake, table: str, version: int, *, metadata: Mapping[str, object] | None = None
) -> int:
    """Make a new commit whose content equals `version`; returns the new version."""
    check_restorable(lake, table, version)
    dt = _require(lake, table)
    dt.restore(version, commit_properties=lake.commit_properties(metadata))
    return dt.version()


def _require(lake: Lake, table: str) -> DeltaTable:
    dt = lake.open(table)
    if dt is None:
        raise VersionUnavailable(f"no table {table!r} under {lake.root}")
    return dt


def _rows_at(lake: Lake, table: str, version: int) -> int:
    try:
        dt = lake.open(table, version=version)
    except Exception:  # noqa: BLE001 - a version whose log was cleaned up
        return 0
    if dt is None:
        return 0
    actions = pa.table(dt.get_add_actions(flatten=True))
    return int(pc.sum(actions["num_records"]).as_py() or 0) if actions.num_rows else 0


def _added_removed(commit: Mapping, before: int, after: int) -> tuple[int, int]:
    metrics = commit.get("operationMetrics") or {}
    operation = commit.get("operation", "")
    mode = (commit.get("operationParameters") or {}).get("mode", "")
    if REWRITE_KEY in commit:  # the lake's own delete or replace, see Lake.replace
        return int(commit.get(ROWS_ADDED_KEY, 0)), int(commit.get(ROWS_REMOVED_KEY, 0))
    if operation == "WRITE" and mode == "Overwrite":
        return after, before
    if operation == "DELETE":
        return 0, int(metrics.get("num_deleted_rows", before - after))
    if operation == "MERGE":
        return (
            int(metrics.get("num_target_rows_inserted", 0)),
            int(metrics.get("num_target_rows_deleted", 0)),
        )
    # Appends, restores, compaction: the net change is the change.
    return max(after - before, 0), max(before - after, 0)


def _detail(commit: Mapping) -> str:
    if commit.get("operation") == "RESTORE":
        return f"to version {(commit.get('operationParameters') or {}).get('version')}"
    return str(commit.get("flywheel.operation", ""))
