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
from ..lake.tables import Lake

# Raw tables and the times that age their rows: a row expires when any of them is past the
# cutoff. The client's `ts` and the ingestion time we stamp (`_ingested_at`): a client clock far
# in the future must not keep a row forever. Quarantined lines have only arrival time.
RAW_TIME_COLUMNS = {
    INTERACTIONS.table: ("ts", "_ingested_at"),
    FEEDBACK.table: ("ts", "_ingested_at"),
    ANNOTATIONS.table: ("ts", "_ingested_at"),
    QUARANTINE.name: ("_ingested_at",),
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
    for table, columns in RAW_TIME_COLUMNS.items():
        if lake.open(table) is None:
            continue
        result = lake.delete(
            table,
            lambda data, columns=columns: _older_than(data, columns, cutoff),
            metadata={"flywheel.operation": "expire"},
            purge=True,
        )
        report.rows_deleted[table] = result.rows_deleted
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


def _older_than(data: pa.Table, columns: tuple[str, ...], cutoff: datetime) -> pa.Array:
    """True for rows where any of `columns` is before `cutoff` (a null time never expires)."""
    old = pa.repeat(False, data.num_rows)
    for column in columns:
        earlier = pc.less(data[column], pa.scalar(cutoff, data[column].type))
        old = pc.or_(old, pc.fill_null(earlier, False))
    return old


def _landing_files_ingested_before(lake: Lake, cutoff: datetime) -> list[str]:
    ledger = lake.read(LEDGER.name, columns=["path", "status", "recorded_at"])
    if ledger is None:
        return []
    done = ledger.filter(pc.equal(ledger["status"], "done"))
    old = done.filter(pc.less(done["recorded_at"], pa.scalar(cutoff, done["recorded_at"].type)))
    return sorted(set(old["path"].to_pylist()))
