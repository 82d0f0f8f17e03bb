"""The drift monitor: negative-feedback rate per model version over a rolling window, and the drift
events it stores in drift_events through ingestion's validation and ledger."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flywheel_assets.catalog.curated import FEEDBACK_METRICS
from flywheel_assets.contract.records import DRIFT_EVENTS
from flywheel_assets.ingest.pipeline import ingest_records
from flywheel_assets.monitoring.monitor import MonitorPolicy, monitor, rolling_negative_rate

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


def store_in(lake):
    """What the drift_monitor asset passes: ingestion of the events as one batch."""

    def store(events: list[dict]) -> int:
        report = ingest_records(lake, DRIFT_EVENTS, events, source="_drift_monitor/test.jsonl")
        return report.totals()["valid"]

    return store


def test_a_breach_stores_one_drift_event_through_ingestion(lake):
    lake.overwrite(FEEDBACK_METRICS, metrics([(0, "a", 100, 40), (1, "b", 100, 5)]))

    report = monitor(lake, MonitorPolicy(), store_in(lake))

    assert report.committed and report.breaches == {"a": 0.4} and report.stored == 1
    (event,) = report.events
    assert event["event_id"] == "drift-monitor-a-20261120"
    assert (event["metric"], event["value"], event["window_hours"]) == (
        "negative_feedback_rate",
        0.4,
        168.0,
    )
    drift = lake.read("drift_events").to_pylist()
    assert [d["event_id"] for d in drift] == ["drift-monitor-a-20261120"]
    assert json.loads(drift[0]["extra"])["model_version"] == "a"
    assert drift[0]["_source_file"] == "_drift_monitor/test.jsonl"
    # Ingested as a batch of its own: the ledger accounts for it like a landing file.
    (done,) = lake.read("ingest_ledger").filter(pc.field("status") == "done").to_pylist()
    assert (done["stream"], done["lines_read"], done["valid"]) == ("drift_events", 1, 1)
    assert drift[0]["_ingest_batch"] == done["batch"]


def test_an_invalid_event_is_quarantined_not_stored(lake):
    bad = {"event_id": "e-bad", "ts": "not a time", "metric": "m", "value": 1.0, "threshold": 0.5}
    report = ingest_records(lake, DRIFT_EVENTS, [bad], source="_drift_monitor/bad.jsonl")
    assert report.totals()["quarantined"] == 1 and report.totals()["valid"] == 0
    (row,) = lake.read("quarantine").to_pylist()
    assert (row["reason_code"], row["source_file"]) == ("bad_ts", "_drift_monitor/bad.jsonl")


def test_unchanged_metrics_commit_nothing_and_a_known_event_is_not_repeated(lake):
    lake.overwrite(FEEDBACK_METRICS, metrics([(0, "a", 100, 40)]))
    monitor(lake, MonitorPolicy(), store_in(lake))
    version = lake.stats("drift_monitor").version

    assert not monitor(lake, MonitorPolicy(), store_in(lake)).committed
    assert lake.stats("drift_monitor").version == version

    # New metrics for the same window end: evaluated again, but the event exists already.
    lake.overwrite(FEEDBACK_METRICS, metrics([(0, "a", 100, 50)]))
    again = monitor(lake, MonitorPolicy(), store_in(lake))
    assert again.committed and again.events == []
    assert lake.read("drift_events").num_rows == 1


def test_a_repeated_event_is_stored_once(lake):
    event = {"event_id": "e-1", "ts": "2026-11-20T00:00:00+00:00", "metric": "m"}
    event.update(value=1.0, threshold=0.5)
    ingest_records(lake, DRIFT_EVENTS, [event], source="_drift_monitor/one.jsonl")
    again = ingest_records(lake, DRIFT_EVENTS, [event], source="_drift_monitor/two.jsonl")
    assert again.totals()["duplicates"] == 1
    assert lake.read("drift_events").num_rows == 1


def test_no_metrics_yet_evaluates_nothing(lake):
    report = monitor(lake, MonitorPolicy(), store_in(lake))
    assert report.breaches == {} and report.events == []
    assert lake.read("drift_monitor").num_rows == 0
