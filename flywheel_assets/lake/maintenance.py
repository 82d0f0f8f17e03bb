"""Table upkeep that never costs a rollback: compaction, and vacuum and log retention held to the
rollback window.

Compaction rewrites small files into large ones without changing a row. Vacuum only deletes files
removed more than the window ago, so every version committed inside the window keeps its files; the
tables' retention properties are set to the same window so Delta's own log cleanup agrees.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .tables import Lake, table_stats

RETENTION_PROPERTIES = ("delta.logRetentionDuration", "delta.deletedFileRetentionDuration")


@dataclass(frozen=True)
class MaintenanceReport:
    table: str
    files_before: int
    files_after: int
    rows: int
    compacted: bool
    files_vacuumed: int
    properties_set: dict[str, str]


def retention_properties(days: int) -> dict[str, str]:
    return dict.fromkeys(RETENTION_PROPERTIES, f"interval {days} days")


def maintain(
    lake: Lake, table: str, *, window_days: int, min_files: int = 2, vacuum: bool = True
) -> MaintenanceReport | None:
    """Align retention with the window, compact when there are `min_files` or more files, and
    vacuum files removed before the window. None when the table does not exist."""
    if window_days < 1:
        raise ValueError(f"the rollback window must be at least 1 day, got {window_days}")
    dt = lake.open(table)
    if dt is None:
        return None
    wanted = retention_properties(window_days)
    current = dt.metadata().configuration or {}
    changed = {k: v for k, v in wanted.items() if current.get(k) != v}
    if changed:
        dt.alter.set_table_properties(
            changed,
            raise_if_not_exists=False,
            commit_properties=lake.commit_properties({"flywheel.operation": "set retention"}),
        )
    before = table_stats(dt)
    compacted = False
    if before.files >= min_files:
        dt.optimize.compact(
            commit_properties=lake.commit_properties({"flywheel.operation": "compact"})
        )
        compacted = True
    vacuumed = []
    if vacuum:
        vacuumed = dt.vacuum(
            retention_hours=window_days * 24,
            enforce_retention_duration=False,
            dry_run=False,
            commit_properties=lake.commit_properties({"flywheel.operation": "vacuum"}),
        )
    after = table_stats(dt)
    return MaintenanceReport(
        table=table,
        files_before=before.files,
        files_after=after.files,
        rows=after.rows,
        compacted=compacted,
        files_vacuumed=len(vacuumed),
        properties_set=changed,
    )


def maintain_all(
    lake: Lake, tables: Iterable[str], *, min_files: int, vacuum: bool
) -> Iterator[MaintenanceReport]:
    """`maintain` every table that exists, held to the lake's rollback window."""
    for table in tables:
        report = maintain(
            lake, table, window_days=lake.retention_days, min_files=min_files, vacuum=vacuum
        )
        if report is not None:
            yield report
