"""The drift monitor: negative-feedback rate per model version over a rolling window, and the drift
events it lands for ingestion."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pyarrow as pa
import pytest

from flywheel_assets.curation.metrics import FEEDBACK_METRICS
from flywheel_assets.ingest.landing import LandingZone
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.training.drift import MonitorPolicy, monitor, rolling_negative_rate

END = date(2026, 11, 20)


def metrics(rows: list[tuple[int, str, int, int]]) -> pa.Table:
    """(days before END, model_version, with_feedback, negative) rows of feedback_metrics."""
    records = [
        {"day": END - timedelta(days=d), "model_version": m, "with_feedback": fb, "negative": neg}
        for d, m, fb, neg in rows
    ]
    return pa.Table.from_pylist(records, schema=FEEDBACK_METRICS.schema)


def test_the_rate_sums_the_window_per_model_version():
    table = metrics([(0, "a", 50, 10), (6, "a", 50, 20), (7, "a", 1000, 1000), (0, "b", 40, 2)])
    out = {r["model_version"]: r for r in rolling_negative_rate(table, MonitorPolicy()).to_pylist()}
    assert (out["a"]["with_feedback"], out["a"]["negative"]) == (100, 30)  # day 7 is outside
    assert out["a"]["negative_rate"] == pytest.approx(0.30)
    assert out["a"]["breached"] and out["a"]["event_id"] == "drift-monitor-a-20261120"
    assert not out["b"]["breached"] and out["b"]["event_id"] is None


def test_the_threshold_is_exclusive_and_small_samples_are_not_judged():
    table = metrics([(0, "a", 100, 20), (0, "b", 19, 19)])
    out = {
        r["model_version"]: r["breached"]
        for r in rolling_negative_rate(table, MonitorPolicy()).to_pylist()
    }
    assert out == {"a": False, "b": False}


def test_a_breach_lands_one_drift_event_that_ingest_stores_once(lake, landing_dir):
    lake.overwrite(FEEDBACK_METRICS, metrics([(0, "a", 100, 40), (1, "b", 100, 5)]))
    zone = LandingZone(str(landing_dir))

    report = monitor(lake, zone, MonitorPolicy())

    assert report.committed and report.breaches == {"a": 0.4}
    (line,) = report.events
    event = json.loads(line)
    assert event["event_id"] == "drift-monitor-a-20261120"
    assert (event["metric"], event["value"], event["window_hours"]) == (
        "negative_feedback_rate",
        0.4,
        168.0,
    )
    assert (landing_dir / report.landing_file).exists()
    ingest_landing(zone, lake)
    drift = lake.read("drift_events").to_pylist()
    assert [d["event_id"] for d in drift] == ["drift-monitor-a-20261120"]
    assert json.loads(drift[0]["extra"])["model_version"] == "a"


def test_unchanged_metrics_commit_nothing_and_a_known_event_is_not_repeated(lake, landing_dir):
    lake.overwrite(FEEDBACK_METRICS, metrics([(0, "a", 100, 40)]))
    zone = LandingZone(str(landing_dir))
    monitor(lake, zone, MonitorPolicy())
    version = lake.stats("drift_monitor").version

    assert not monitor(lake, zone, MonitorPolicy()).committed
    assert lake.stats("drift_monitor").version == version

    # New metrics for the same window end: evaluated again, but the event exists already.
    lake.overwrite(FEEDBACK_METRICS, metrics([(0, "a", 100, 50)]))
    again = monitor(lake, zone, MonitorPolicy())
    assert again.committed and again.events == []
    assert len(list((landing_dir / "drift_events").iterdir())) == 1


def test_no_metrics_yet_evaluates_nothing(lake, landing_dir):
    report = monitor(lake, LandingZone(str(landing_dir)), MonitorPolicy())
    assert report.breaches == {} and report.events == []
    assert lake.read("drift_monitor").num_rows == 0
