"""drift_sensor after privacy deletes: an erasure or a retention run takes rows out of tagged_rows
or drift_events without a build's stamps, and that is not a reason to wait for a rebuild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pytest

from flywheel_assets.catalog.curated import TAGGED_ROWS
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.definitions import defs
from flywheel_assets.governance.hashing import keyed_hash
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.privacy.erasure import erase_user
from flywheel_assets.resources import LakeResource
from flywheel_assets.training.resources import TrainingResource
from flywheel_assets.training.sensors import drift_sensor
from flywheel_tests.support.records import TEST_HASH_KEY, drift_event, write_lines

KEY = TEST_HASH_KEY.encode()
EVENT_TS = datetime(2026, 11, 20, 12, tzinfo=UTC)


def land_drift_event(landing_dir, lake, event_id: str) -> None:
    event = drift_event(event_id, EVENT_TS.isoformat(), window_hours=24.0)
    write_lines(landing_dir, f"drift_events/{event_id}.jsonl", [event])
    ingest_landing(LandingZone(str(landing_dir)), lake)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def drift_tick(instance, lake, cursor=None):
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance,
        definitions=defs,
        resources={
            "lake": LakeResource(root=lake.root),
            "training": TrainingResource(drift_min_corrected=10),
        },
    )
    return drift_sensor.evaluate_tick(context)


def write_tagged(lake, *, erased_user: str) -> None:
    """Eleven corrected rows in the event's window, one of them the user's, stamped with the
    drift_events version they were built from."""
    rows = [
        {
            "request_id": f"in-{i}",
            "ts": EVENT_TS - timedelta(hours=1),
            "tags": ["corrected"],
            "user_hash": keyed_hash(erased_user if i == 0 else f"user-{i}", KEY, "user"),
        }
        for i in range(11)
    ]
    versions = {"drift_events": lake.data_version("drift_events")}
    lake.overwrite(
        TAGGED_ROWS,
        pa.Table.from_pylist(rows, schema=TAGGED_ROWS.schema),
        metadata={"source_versions": versions},
    )


def test_an_erasure_from_tagged_rows_does_not_make_the_sensor_wait(instance, lake, landing_dir):
    land_drift_event(landing_dir, lake, "ev1")
    write_tagged(lake, erased_user="user-gone")
    report = erase_user(lake, "user-gone", KEY, ["tagged_rows", "drift_events"], reason="gdpr")
    assert "tagged_rows" in report.tables  # the delete commit carries no build stamps
    assert "source_versions" not in lake.last_commit_metadata("tagged_rows")

    result = drift_tick(instance, lake)
    assert "waiting" not in (result.skip_message or "")
    (request,) = result.run_requests
    assert request.run_key == "retrain-drift-ev1"
    assert request.tags["flywheel/corrected_rows"] == "10"  # the erased user's row is gone


def test_a_new_drift_event_after_an_erasure_still_waits_for_tagging(instance, lake, landing_dir):
    land_drift_event(landing_dir, lake, "ev1")
    write_tagged(lake, erased_user="user-gone")
    erase_user(lake, "user-gone", KEY, ["tagged_rows"], reason="gdpr")
    land_drift_event(landing_dir, lake, "ev2")  # new rows that tagging has not seen
    waiting = drift_tick(instance, lake)
    assert waiting.run_requests == []
    assert "waiting for tagged_rows" in waiting.skip_message
