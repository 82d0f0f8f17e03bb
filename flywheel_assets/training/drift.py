"""Drift from the app's own feedback: the negative-feedback rate per model version over a rolling
window, and the evidence (corrected rows) a drift event has to retrain on."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from ..curation.builds import FINGERPRINT_KEY
from ..curation.metrics import FEEDBACK_METRICS
from ..ingest.contract import DRIFT_EVENTS, TIMESTAMP
from ..ingest.landing import LandingZone
from ..lake.tables import Lake, TableSpec
from ..privacy.sampling import DriftWindow

DRIFT_MONITOR = TableSpec(
    "drift_monitor",
    pa.schema(
        [
            pa.field("window_end", pa.date32()),
            pa.field("model_version", pa.string()),
            pa.field("window_days", pa.int32()),
            pa.field("with_feedback", pa.int64()),
            pa.field("negative", pa.int64()),
            pa.field("negative_rate", pa.float64()),
            pa.field("threshold", pa.float64()),
            pa.field("breached", pa.bool_()),
            pa.field("event_id", pa.string()),  # the drift event written, when breached
            pa.field("evaluated_at", TIMESTAMP),
        ]
    ),
)
METRIC = "negative_feedback_rate"


@dataclass(frozen=True)
class MonitorPolicy:
    window_days: int = 7
    threshold: float = 0.20
    min_feedback: int = 20  # fewer feedback events than this in the window: too noisy to judge


def rolling_negative_rate(
    metrics: pa.Table, policy: MonitorPolicy, *, window_end: date | None = None
) -> pa.Table:
    """One row per model_version: feedback and negative counts over the window ending on
    `window_end` (default: the last day with metrics), with the rate and whether it breaches."""
    if metrics.num_rows == 0:
        return DRIFT_MONITOR.schema.empty_table()
    end = window_end or max(metrics["day"].to_pylist())
    start = end - timedelta(days=policy.window_days - 1)
    recent = metrics.filter((pc.field("day") >= start) & (pc.field("day") <= end))
    sums = recent.group_by("model_version").aggregate(
        [("with_feedback", "sum"), ("negative", "sum")]
    )
    rows = []
    now = datetime.now(UTC)
    for r in sorted(sums.to_pylist(), key=lambda r: r["model_version"] or ""):
        fb, neg = int(r["with_feedback_sum"] or 0), int(r["negative_sum"] or 0)
        rate = neg / fb if fb else 0.0
        breached = fb >= policy.min_feedback and rate > policy.threshold
        rows.append(
            {
                "window_end": end,
                "model_version": r["model_version"],
                "window_days": policy.window_days,
                "with_feedback": fb,
                "negative": neg,
                "negative_rate": rate,
                "threshold": policy.threshold,
                "breached": breached,
                "event_id": event_id(r["model_version"], end) if breached else None,
                "evaluated_at": now,
            }
        )
    return pa.Table.from_pylist(rows, schema=DRIFT_MONITOR.schema)


def event_id(model_version: str, window_end: date) -> str:
    # One event per model version and window end: re-running the monitor never repeats it.
    return f"drift-monitor-{model_version}-{window_end:%Y%m%d}"


def drift_event_lines(evaluations: pa.Table, known_ids: set[str]) -> list[str]:
    """Landing lines (the drift_events contract) for breaches not yet written."""
    lines = []
    for r in evaluations.filter(pc.field("breached")).to_pylist():
        if r["event_id"] in known_ids:
            continue
        ts = datetime.combine(r["window_end"], datetime.max.time(), UTC).replace(microsecond=0)
        lines.append(
            json.dumps(
                {
                    "event_id": r["event_id"],
                    "ts": ts.isoformat(),
                    "metric": METRIC,
                    "value": round(r["negative_rate"], 6),
                    "threshold": r["threshold"],
                    "window_hours": float(r["window_days"] * 24),
                    "model_version": r["model_version"],
                    "detector": "flywheel.drift_monitor",
                }
            )
        )
    return lines


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


@dataclass
class MonitorReport:
    committed: bool
    breaches: dict[str, float]
    events: list[str]
    landing_file: str | None = None


def monitor(lake: Lake, zone: LandingZone, policy: MonitorPolicy) -> MonitorReport:
    """Evaluate the window over feedback_metrics; record it and land new drift events.

    Commits nothing when feedback_metrics and the policy are what the last evaluation saw.
    """
    stats = lake.stats(FEEDBACK_METRICS.name)
    fingerprint = json.dumps(
        {"feedback_metrics": stats.version if stats else -1, "policy": asdict(policy)},
        sort_keys=True,
    )
    if lake.last_commit_metadata(DRIFT_MONITOR.name).get(FINGERPRINT_KEY) == fingerprint:
        return MonitorReport(False, {}, [])
    metrics = lake.read(FEEDBACK_METRICS.name) if stats else None
    evaluations = rolling_negative_rate(
        metrics if metrics is not None else FEEDBACK_METRICS.schema.empty_table(), policy
    )
    breaches = {
        r["model_version"]: round(r["negative_rate"], 4)
        for r in evaluations.filter(pc.field("breached")).to_pylist()
    }
    events = drift_event_lines(evaluations, _known_event_ids(lake))
    landing_file = None
    if events:
        # Through the landing zone like any detector's events: ingest stores each exactly once.
        end = evaluations["window_end"][0].as_py()
        landing_file = zone.write_lines(
            "drift_events", f"drift_monitor-{end:%Y%m%d}-{len(events)}.jsonl", events
        )
    lake.append(DRIFT_MONITOR, evaluations, metadata={FINGERPRINT_KEY: fingerprint})
    return MonitorReport(True, breaches, events, landing_file)


def _known_event_ids(lake: Lake) -> set[str]:
    known = set()
    for table in (DRIFT_MONITOR.name, DRIFT_EVENTS.table):
        ids = lake.read(table, columns=["event_id"])
        if ids is not None:
            known.update(i for i in ids["event_id"].to_pylist() if i)
    return known
