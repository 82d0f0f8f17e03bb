"""The evidence a drift event has to retrain on: corrected rows inside its window."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from ..contract.records import TIMESTAMP
from ..lake.tables import Lake
from ..privacy.sampling import DriftWindow


def corrected_rows_in_window(lake: Lake, ts: datetime, window_hours: float | None) -> int:
    """Tagged rows with a correction in the window before a drift event (stats prune by ts)."""
    window = DriftWindow.before(ts, window_hours)
    expr = (pc.field("ts") >= pa.scalar(window.start, TIMESTAMP)) & (
        pc.field("ts") <= pa.scalar(window.end, TIMESTAMP)
    )
    rows = lake.read("tagged_rows", columns=["tags"], filter=expr)
    if rows is None or rows.num_rows == 0:
        return 0
    tags = pc.list_flatten(rows["tags"])
    return int(pc.sum(pc.equal(tags, "corrected").cast(pa.int64())).as_py() or 0)
