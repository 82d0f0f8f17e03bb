"""The retrain sensors, evaluated through real sensor ticks over real Delta tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pytest

from flywheel_assets.catalog.curated import TAGGED_ROWS
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.definitions import defs
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.resources import LakeResource
from flywheel_assets.training.resources import TrainingResource
from flywheel_assets.training.sensors import curated_pairs_sensor, drift_sensor
from flywheel_assets.training.snapshot import take_snapshot
from flywheel_tests.support.records import write_lines
from flywheel_tests.support.training import write_curated


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def tick(sensor, instance, lake, cursor=None, **training):
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance,
        definitions=defs,
        resources={"lake": LakeResource(root=lake.root), "training": TrainingResource(**training)},
    )
    return sensor.evaluate_tick(context)


def pairs_tick(instance, lake, cursor=None, threshold=100):
    return tick(curated_pairs_sensor, instance, lake, cursor, min_new_pairs=threshold)


def test_below_the_threshold_skips_with_the_count(instance, lake):
    write_curated(lake, {"sft_set": 40, "dpo_set": 30, "kto_set": 29, "eval_cases": 5})
    result = pairs_tick(instance, lake)
    assert result.run_requests == []
    assert result.skip_message == (
        "99 new curated training rows (sft_set +40, dpo_set +30, kto_set +29); retrain at 100"
    )


def test_at_the_threshold_one_run_is_requested_keyed_by_the_versions(instance, lake):
    versions = write_curated(lake, {"sft_set": 40, "dpo_set": 30, "kto_set": 30, "eval_cases": 5})
    result = pairs_tick(instance, lake)
    (request,) = result.run_requests
    assert request.run_key.startswith("retrain-threshold-")
    assert request.tags["flywheel/trigger"] == "threshold"
    assert json.loads(request.tags["flywheel/dataset_versions"]) == versions
    assert json.loads(result.cursor)["last_run_key"] == request.run_key
    # The key depends on the versions alone: a tick without the cursor names the same run.
    assert pairs_tick(instance, lake).run_requests[0].run_key == request.run_key


def test_the_same_versions_request_nothing_again(instance, lake):
    write_curated(lake, {"sft_set": 100, "eval_cases": 5})
    first = pairs_tick(instance, lake)
    again = pairs_tick(instance, lake, cursor=first.cursor)
    assert again.run_requests == []
    assert "already requested" in again.skip_message
    assert again.cursor == first.cursor


def test_new_data_after_a_snapshot_counts_from_the_snapshot(instance, lake):
    write_curated(lake, {"sft_set": 100, "eval_cases": 5})
    first = pairs_tick(instance, lake)
    take_snapshot(lake, run_id="r1", trigger="threshold")  # what the requested run does
    after = pairs_tick(instance, lake, cursor=first.cursor)
    assert after.run_requests == []
    assert after.skip_message.startswith("0 new curated training rows")
    write_curated(lake, {"sft_set": 200})
    grown = pairs_tick(instance, lake, cursor=first.cursor)
    (request,) = grown.run_requests
    assert request.run_key != first.run_requests[0].run_key
    assert request.tags["flywheel/new_rows"] == "100"


def test_the_threshold_defaults_to_5000_and_the_environment_can_lower_it(
    instance, lake, monkeypatch
):
    write_curated(lake, {"sft_set": 600, "eval_cases": 5})
    assert tick(curated_pairs_sensor, instance, lake).skip_message.endswith("retrain at 5000")
    monkeypatch.setenv("FLYWHEEL_RETRAIN_MIN_PAIRS", "500")
    assert len(tick(curated_pairs_sensor, instance, lake).run_requests) == 1
    # Configured on the resource, the value wins over the environment.
    assert tick(curated_pairs_sensor, instance, lake, min_new_pairs=601).run_requests == []


def test_a_retrain_in_flight_defers_the_request(instance, lake):
    write_curated(lake, {"sft_set": 100, "eval_cases": 5})
    run = instance.create_run_for_job(defs.resolve_job_def("retrain_job"), run_config={})
    result = pairs_tick(instance, lake)
    assert result.run_requests == []
    assert run.run_id in result.skip_message


EVENT_TS = datetime(2026, 11, 20, 12, tzinfo=UTC)


def land_drift_event(landing_dir, lake, event_id, *, window_hours=24.0):
    write_lines(
        landing_dir,
        f"drift_events/{event_id}.jsonl",
        [
            {
                "event_id": event_id,
                "ts": EVENT_TS.isoformat(),
                "metric": "embedding_drift",
                "value": 0.4,
                "threshold": 0.25,
                "window_hours": window_hours,
            }
        ],
    )
    ingest_landing(LandingZone(str(landing_dir)), lake)


def write_tagged(lake, corrected_in_window: int, *, outside: int = 5):
    """tagged_rows as curation leaves them, built from the current drift_events version."""
    rows = [
        {"request_id": f"in-{i}", "ts": EVENT_TS - timedelta(hours=1), "tags": ["corrected"]}
        for i in range(corrected_in_window)
    ]
    rows += [
        {"request_id": f"old-{i}", "ts": EVENT_TS - timedelta(days=3), "tags": ["corrected"]}
        for i in range(outside)
    ]
    rows += [{"request_id": "plain", "ts": EVENT_TS, "tags": ["user_positive"]}]
    versions = {"drift_events": lake.stats("drift_events").version}
    lake.overwrite(
        TAGGED_ROWS,
        pa.Table.from_pylist(rows, schema=TAGGED_ROWS.schema),
        metadata={"source_versions": versions},
    )


def drift_tick(instance, lake, cursor=None, needed=10):
    return tick(drift_sensor, instance, lake, cursor, drift_min_corrected=needed)


def test_no_drift_events_skip(instance, lake, landing_dir):
    write_lines(landing_dir, "interactions/a.jsonl", [])
    ingest_landing(LandingZone(str(landing_dir)), lake)
    result = drift_tick(instance, lake)
    assert result.run_requests == []
    assert result.skip_message == "no new drift events"


def test_a_drift_event_with_too_few_corrections_skips_and_says_the_counts(
    instance, lake, landing_dir
):
    land_drift_event(landing_dir, lake, "ev1")
    write_tagged(lake, corrected_in_window=9)
    result = drift_tick(instance, lake)
    assert result.run_requests == []
    assert result.skip_message == (
        "ev1 (embedding_drift): 9 corrected rows in its window, 10 needed"
    )
    # The event was judged: a later tick does not judge it again.
    assert drift_tick(instance, lake, cursor=result.cursor).skip_message == "no new drift events"


def test_a_drift_event_with_enough_corrections_requests_one_run(instance, lake, landing_dir):
    land_drift_event(landing_dir, lake, "ev1")
    write_tagged(lake, corrected_in_window=10)
    result = drift_tick(instance, lake)
    (request,) = result.run_requests
    assert request.run_key == "retrain-drift-ev1"
    assert request.tags["flywheel/trigger"] == "drift"
    assert request.tags["flywheel/corrected_rows"] == "10"
    again = drift_tick(instance, lake, cursor=result.cursor)
    assert again.run_requests == []


def test_each_new_drift_event_gets_its_own_run(instance, lake, landing_dir):
    land_drift_event(landing_dir, lake, "ev1")
    write_tagged(lake, corrected_in_window=10)
    first = drift_tick(instance, lake)
    land_drift_event(landing_dir, lake, "ev2")
    write_tagged(lake, corrected_in_window=10)
    second = drift_tick(instance, lake, cursor=first.cursor)
    assert [r.run_key for r in second.run_requests] == ["retrain-drift-ev2"]


def test_the_window_is_the_events_own(instance, lake, landing_dir):
    # A 30-minute window holds none of the corrections made an hour before the event.
    land_drift_event(landing_dir, lake, "ev1", window_hours=0.5)
    write_tagged(lake, corrected_in_window=50)
    result = drift_tick(instance, lake)
    assert result.run_requests == []
    assert "0 corrected rows" in result.skip_message


def test_an_event_waits_until_curation_has_seen_it(instance, lake, landing_dir):
    land_drift_event(landing_dir, lake, "ev1")
    write_tagged(lake, corrected_in_window=10)
    land_drift_event(landing_dir, lake, "ev2")  # tagged_rows is now one drift version behind
    waiting = drift_tick(instance, lake)
    assert waiting.run_requests == []
    assert "waiting for tagged_rows" in waiting.skip_message
    assert waiting.cursor is None
    write_tagged(lake, corrected_in_window=10)
    ready = drift_tick(instance, lake, cursor=waiting.cursor)
    assert sorted(r.run_key for r in ready.run_requests) == [
        "retrain-drift-ev1",
        "retrain-drift-ev2",
    ]
