"""Drift from the app's own feedback: the negative-feedback rate per model version over a rolling
window, and a drift event for each breach, stored in drift_events like any detector's."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.curated import FEEDBACK_METRICS
from ..catalog.models import DRIFT_MONITOR
from ..contract.records import DRIFT_EVENTS
from ..curation.builds import FINGERPRINT_KEY
from ..ingest.pipeline import IngestInProgress
from ..lake.tables import Lake

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


def drift_event_records(evaluations: pa.Table, known_ids: set[str]) -> list[dict]:
    """Records in the drift_events contract for breaches not yet stored."""
    records = []
    for r in evaluations.filter(pc.field("breached")).to_pylist():
        if r["event_id"] in known_ids:
            continue
        ts = datetime.combine(r["window_end"], datetime.max.time(), UTC).replace(microsecond=0)
        records.append(
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
    return records


@dataclass
class MonitorReport:
    committed: bool
    breaches: dict[str, float]
    events: list[dict]
    stored: int = 0  # events stored in drift_events (an erased or repeated one is not)
    deferred: str | None = None  # why the events and the evaluation wait for the next run


def monitor(
    lake: Lake,
    policy: MonitorPolicy,
    store_events: Callable[[list[dict]], int],
) -> MonitorReport:
    """Evaluate the window over feedback_metrics; store new drift events, then the evaluation.

    `store_events` validates and stores the events in drift_events and returns how many it stored.

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
    events = drift_event_records(evaluations, _known_event_ids(lake))
    # Events first, the evaluation only once every event is in drift_events: otherwise the next
    # run evaluates again and makes them again (a stored one is known by its id).
    try:
        stored = store_events(events) if events else 0
    except IngestInProgress as exc:
        return MonitorReport(False, breaches, events, deferred=str(exc))
    missing = {e["event_id"] for e in events} - _ids_in(lake, DRIFT_EVENTS.table)
    if missing:
        return MonitorReport(
            False, breaches, events, stored, deferred=f"{len(missing)} event(s) not stored yet"
        )
    lake.append(DRIFT_MONITOR, evaluations, metadata={FINGERPRINT_KEY: fingerprint})
    return MonitorReport(True, breaches, events, stored)


def _known_event_ids(lake: Lake) -> set[str]:
    # The monitor's own evaluations count too: an event withdrawn by a rollback of drift_events
    # is not made again.
    return _ids_in(lake, DRIFT_MONITOR.name) | _ids_in(lake, DRIFT_EVENTS.table)


def _ids_in(lake: Lake, table: str) -> set[str]:
    ids = lake.read(table, columns=["event_id"])
    return set() if ids is None else {i for i in ids["event_id"].to_pylist() if i}
