"""The sampling budget: which interactions are worth keeping, and why.

Every interaction with a signal is kept (feedback, an annotation, a low-confidence answer, a drift
window); of the healthy rest a fixed share is kept, chosen by a keyed hash of the request id so a
re-run keeps exactly the same rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from ..governance.hashing import unit_interval

# In priority order: a row kept for several reasons reports the first.
KEEP_REASONS = ("feedback", "annotation", "low_confidence", "drift_window", "sampled")
DROPPED = "unsampled"
DEFAULT_DRIFT_WINDOW_HOURS = 12.0


@dataclass(frozen=True)
class SamplingPolicy:
    healthy_share: float = 0.05
    low_logprob: float = -3.0

    def __post_init__(self):
        if not 0.0 <= self.healthy_share <= 1.0:
            raise ValueError(f"healthy_share must be within [0, 1], got {self.healthy_share}")


@dataclass(frozen=True)
class DriftWindow:
    start: datetime
    end: datetime

    @classmethod
    def before(cls, ts: datetime, hours: float | None) -> DriftWindow:
        return cls(ts - timedelta(hours=hours or DEFAULT_DRIFT_WINDOW_HOURS), ts)


def keep_reasons(
    interactions: pa.Table,
    *,
    with_feedback: pa.Array,
    with_annotation: pa.Array,
    drift_windows: list[DriftWindow],
    policy: SamplingPolicy,
    key: bytes,
) -> pa.Array:
    """One reason per interaction: a KEEP_REASONS entry, or DROPPED."""
    ids = interactions["request_id"]
    logprob = interactions["response_logprob"]
    ts = interactions["ts"]
    low = pc.fill_null(pc.less(logprob, policy.low_logprob), False)
    in_drift = in_any_window(ts, drift_windows)
    sampled = pa.array(
        [unit_interval(i, key, "sample") < policy.healthy_share for i in ids.to_pylist()],
        pa.bool_(),
    )
    conditions = [
        pc.is_in(ids, value_set=with_feedback),
        pc.is_in(ids, value_set=with_annotation),
        low,
        in_drift,
        sampled,
    ]
    reason = pa.repeat(DROPPED, len(ids)).cast(pa.string())
    # Apply lowest priority first so higher priorities overwrite it.
    for name, cond in reversed(list(zip(KEEP_REASONS, conditions, strict=True))):
        reason = pc.if_else(cond, name, reason)
    return reason


def reason_counts(reasons: pa.Array) -> dict[str, int]:
    counts = Counter(dict(zip(*_value_counts(reasons), strict=True)))
    return {r: counts.get(r, 0) for r in (*KEEP_REASONS, DROPPED)}


def _value_counts(arr: pa.Array) -> tuple[list, list]:
    vc = pc.value_counts(arr)
    return vc.field("values").to_pylist(), vc.field("counts").to_pylist()


def drift_windows(events: pa.Table | None) -> list[DriftWindow]:
    """The window before each drift event (`ts`, `window_hours`)."""
    rows = events.select(["ts", "window_hours"]).to_pylist() if events is not None else []
    return [DriftWindow.before(e["ts"], e["window_hours"]) for e in rows]


def in_any_window(ts: pa.ChunkedArray | pa.Array, windows: list[DriftWindow]) -> pa.Array:
    """True where a timestamp falls inside any of the windows."""
    hit = pa.repeat(False, len(ts))
    for w in windows:
        inside = pc.and_(pc.greater_equal(ts, w.start), pc.less_equal(ts, w.end))
        hit = pc.or_(hit, pc.fill_null(inside, False))
    return hit
