"""The drift monitor: negative-feedback rate per model version over a rolling window, and the drift
events it stores in drift_events through ingestion's validation and ledger."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flywheel_assets.catalog.curated import FEEDBACK_METRICS
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.contract.records import DRIFT_EVENTS
from flywheel_assets.ingest.pipeline import (
    IngestInProgress,
    _commit_plan,
    ingest_landing,
    ingest_records,
    new_landing_files,
)
from flywheel_assets.monitoring.monitor import MonitorPolicy, monitor, rolling_negative_rate
from flywheel_tests.support.records import write_lines

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


def _event(event_id: str) -> dict:
    return {"event_id": event_id, "ts": "2026-11-20T00:00:00+00:00", "metric": "m"} | {
        "value": 1.0,
        "threshold": 0.5,
    }


def _open_landing_batch(lake, landing_dir) -> None:
    """A landing ingestion that planned its batch and has not finished it (running, or crashed)."""
    write_lines(landing_dir, "drift_events/a.jsonl", [_event("e-landing")])
    (pending,) = new_landing_files(LandingZone(str(landing_dir)), lake)
    _commit_plan(lake, 1, [pending], run_id="r-landing")


def test_records_wait_while_another_ingestion_has_a_batch_open(lake, landing_dir):
    _open_landing_batch(lake, landing_dir)
    with pytest.raises(IngestInProgress, match="batch open"):
        ingest_records(lake, DRIFT_EVENTS, [_event("e-1")], source="_drift_monitor/t.jsonl")
    assert lake.read("drift_events") is None  # nothing written, the open batch untouched
    # The landing batch finishes first; then the records go in, as the batch after it.
    ingest_landing(LandingZone(str(landing_dir)), lake)
    ingest_records(lake, DRIFT_EVENTS, [_event("e-1")], source="_drift_monitor/t.jsonl")
    rows = lake.read("drift_events", columns=["event_id", "_ingest_batch"]).to_pylist()
    assert sorted((r["_ingest_batch"], r["event_id"]) for r in rows) == [
        (1, "e-landing"),
        (2, "e-1"),
    ]


def test_the_monitor_defers_its_events_and_evaluation_while_a_batch_is_open(lake, landing_dir):
    lake.overwrite(FEEDBACK_METRICS, metrics([(0, "a", 100, 40)]))
    _open_landing_batch(lake, landing_dir)

    deferred = monitor(lake, MonitorPolicy(), store_in(lake))

    assert not deferred.committed and "batch open" in deferred.deferred
    assert lake.read("drift_monitor") is None  # evaluated again next time
    ingest_landing(LandingZone(str(landing_dir)), lake)
    report = monitor(lake, MonitorPolicy(), store_in(lake))
    assert report.committed and report.stored == 1 and report.deferred is None
    ids = sorted(lake.read("drift_events", columns=["event_id"])["event_id"].to_pylist())
    assert ids == ["drift-monitor-a-20261120", "e-landing"]


def test_the_monitor_records_no_evaluation_whose_events_are_not_stored(lake):
    lake.overwrite(FEEDBACK_METRICS, metrics([(0, "a", 100, 40)]))
    report = monitor(lake, MonitorPolicy(), lambda events: 0)  # a store that kept nothing
    assert not report.committed and report.deferred == "1 event(s) not stored yet"
    assert lake.read("drift_monitor") is None


def test_racing_stores_lose_nothing(lake):
    # Writers racing for the next batch: each either lands whole or waits, never half or lost.
    outcomes: dict[int, str] = {}

    def store(i: int) -> None:
        try:
            ingest_records(
                lake, DRIFT_EVENTS, [_event(f"e-{i}")], source=f"_drift_monitor/{i}.jsonl"
            )
            outcomes[i] = "stored"
        except IngestInProgress:
            outcomes[i] = "waits"

    for round_ in range(3):
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(store, range(4 * round_, 4 * round_ + 4)))
    stored = lake.read("drift_events", columns=["event_id", "_ingest_batch"]).to_pylist()
    done = lake.read("ingest_ledger").filter(pc.field("status") == "done").to_pylist()
    assert sorted(r["event_id"] for r in stored) == sorted(
        f"e-{i}" for i, outcome in outcomes.items() if outcome == "stored"
    )
    assert "stored" in outcomes.values()
    # Every finished batch holds exactly the record it counted, in a batch of its own.
    assert sorted((d["batch"], d["valid"]) for d in done) == sorted(
        (r["_ingest_batch"], 1) for r in stored
    )
