"""Retention: raw (unredacted) data lives only for a window, in the tables and the landing zone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.raw import LEDGER, QUARANTINE
from ..contract.landing import LandingZone
from ..contract.records import ANNOTATIONS, FEEDBACK, INTERACTIONS
from ..lake import predicates as pred
from ..lake.tables import Lake

# Raw tables and the event time that ages their rows (quarantined lines have only arrival time).
RAW_TIME_COLUMNS = {
    INTERACTIONS.table: "ts",
    FEEDBACK.table: "ts",
    ANNOTATIONS.table: "ts",
    QUARANTINE.name: "_ingested_at",
}


class LandingAction(StrEnum):
    KEEP = "keep"
    ARCHIVE = "archive"  # moved under _archive/, which ingestion never reads
    DELETE = "delete"


@dataclass
class RetentionReport:
    cutoff: datetime
    rows_deleted: dict[str, int] = field(default_factory=dict)
    landing_files: list[str] = field(default_factory=list)


def expire_raw(
    lake: Lake,
    landing: LandingZone,
    *,
    cutoff: datetime,
    landing_action: LandingAction = LandingAction.DELETE,
) -> RetentionReport:
    """Delete raw rows older than `cutoff` and vacuum their files away; handle old landing files.

    Raw tables are vacuumed without a grace period: the point is that the text is gone, so versions
    that still held expired rows stop being readable.
    """
    report = RetentionReport(cutoff)
    for table, column in RAW_TIME_COLUMNS.items():
        dt = lake.open(table)
        if dt is None:
            continue
        metrics = dt.delete(
            f"{pred.column(column)} < {pred.literal(cutoff)}",
            commit_properties=lake.commit_properties({"flywheel.operation": "expire"}),
        )
        deleted = int(metrics.get("num_deleted_rows", 0))
        report.rows_deleted[table] = deleted
        if deleted:
            dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    if landing_action != LandingAction.KEEP:
        for path in _landing_files_ingested_before(lake, cutoff):
            if not landing.exists(path):
                continue
            if landing_action == LandingAction.DELETE:
                landing.delete(path)
            else:
                landing.move(path, f"_archive/{path}")
            report.landing_files.append(path)
    return report


def _landing_files_ingested_before(lake: Lake, cutoff: datetime) -> list[str]:
    ledger = lake.read(LEDGER.name, columns=["path", "status", "recorded_at"])
    if ledger is None:
        return []
    done = ledger.filter(pc.equal(ledger["status"], "done"))
    old = done.filter(pc.less(done["recorded_at"], pa.scalar(cutoff, done["recorded_at"].type)))
    return sorted(set(old["path"].to_pylist()))
