"""The landing sensor, evaluated through real sensor ticks."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.definitions import defs
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.ingest.sensors import landing_sensor
from flywheel_assets.resources import LakeResource, LandingResource
from flywheel_tests.support.records import interaction, write_lines


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def tick(instance, landing_dir, lake, cursor=None):
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance,
        definitions=defs,
        resources={
            "lake": LakeResource(root=lake.root),
            "landing": LandingResource(root=str(landing_dir)),
        },
    )
    return landing_sensor.evaluate_tick(context)


def test_empty_landing_skips(instance, landing_dir, lake):
    result = tick(instance, landing_dir, lake)
    assert result.run_requests == []
    assert result.skip_message == "no new landing files"


def test_new_files_request_one_run_with_a_deterministic_key(instance, landing_dir, lake):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    first = tick(instance, landing_dir, lake)
    again = tick(instance, landing_dir, lake)  # same files, no cursor: same key

    assert len(first.run_requests) == 1
    assert first.run_requests[0].run_key == again.run_requests[0].run_key
    assert first.run_requests[0].run_key.startswith("landing-")
    assert json.loads(first.cursor)["files"] == 1


def test_the_same_files_are_not_requested_twice(instance, landing_dir, lake):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    first = tick(instance, landing_dir, lake)
    second = tick(instance, landing_dir, lake, cursor=first.cursor)
    assert second.run_requests == []
    assert "already requested" in second.skip_message
    assert second.cursor == first.cursor


def test_a_new_file_after_a_request_gets_a_new_key(instance, landing_dir, lake):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    first = tick(instance, landing_dir, lake)
    write_lines(landing_dir, "interactions/b.jsonl", [interaction("r2")])
    second = tick(instance, landing_dir, lake, cursor=first.cursor)
    assert len(second.run_requests) == 1
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def test_ingested_files_no_longer_trigger(instance, landing_dir, lake):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    first = tick(instance, landing_dir, lake)
    ingest_landing(LandingZone(str(landing_dir)), lake)
    after = tick(instance, landing_dir, lake, cursor=first.cursor)
    assert after.run_requests == []
    assert after.skip_message == "no new landing files"


def test_an_ingest_run_in_progress_defers_the_request(instance, landing_dir, lake):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    job = defs.resolve_job_def("ingest_job")
    run = instance.create_run_for_job(job, run_config={})  # NOT_STARTED: in flight
    result = tick(instance, landing_dir, lake)
    assert result.run_requests == []
    assert run.run_id in result.skip_message
