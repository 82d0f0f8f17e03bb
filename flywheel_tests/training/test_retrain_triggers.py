"""The weekly retrain schedule and the failure-cluster sensor, evaluated through real schedule and
sensor ticks over real Delta tables; and the snapshot's record of the cluster a run targets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from flywheel_assets.catalog.curated import FAILURE_CLUSTERS
from flywheel_assets.catalog.models import TRAINING_SNAPSHOTS
from flywheel_assets.definitions import defs
from flywheel_assets.lake.tables import TableSpec
from flywheel_assets.resources import LakeResource
from flywheel_assets.settings import retrain_cron
from flywheel_assets.training.resources import TrainingResource
from flywheel_assets.training.schedules import retrain_schedule
from flywheel_assets.training.sensors import failure_cluster_sensor
from flywheel_assets.training.snapshot import last_snapshot, snapshot_for_run, take_snapshot
from flywheel_tests.support.training import write_curated

MONDAY = datetime(2026, 11, 23, 4, tzinfo=UTC)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def schedule_tick(instance, lake, when=MONDAY):
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=when,
        resources={"lake": LakeResource(root=lake.root)},
    )
    return retrain_schedule.evaluate_tick(context)


def test_the_schedule_requests_a_retrain_keyed_by_its_scheduled_time(instance, lake):
    write_curated(lake, {"sft_set": 10, "dpo_set": 2, "eval_cases": 3})
    result = schedule_tick(instance, lake)
    (request,) = result.run_requests
    assert request.run_key == "retrain-schedule-2026-11-23T04:00Z"
    assert request.tags["flywheel/trigger"] == "schedule"
    assert request.tags["flywheel/new_rows"] == "12"


def test_the_same_week_gives_the_same_key_and_another_week_another(instance, lake):
    write_curated(lake, {"sft_set": 10, "eval_cases": 3})
    first = schedule_tick(instance, lake).run_requests[0].run_key
    assert schedule_tick(instance, lake).run_requests[0].run_key == first
    next_week = schedule_tick(instance, lake, MONDAY + timedelta(days=7)).run_requests[0]
    assert next_week.run_key != first
    assert next_week.run_key == "retrain-schedule-2026-11-30T04:00Z"


def test_nothing_new_since_the_snapshot_skips_and_says_so(instance, lake):
    write_curated(lake, {"sft_set": 10, "dpo_set": 2, "kto_set": 1, "eval_cases": 3})
    snap = take_snapshot(lake, run_id="r1", trigger="schedule")
    result = schedule_tick(instance, lake)
    assert result.run_requests == []
    assert result.skip_message == (
        f"nothing new since snapshot {snap.snapshot_id} (sft_set +0, dpo_set +0, kto_set +0)"
    )
    write_curated(lake, {"sft_set": 11})
    assert len(schedule_tick(instance, lake).run_requests) == 1


def test_an_empty_lake_skips(instance, lake):
    result = schedule_tick(instance, lake)
    assert result.run_requests == []
    assert result.skip_message.startswith("nothing new since the start")


def test_the_schedule_skips_while_a_retrain_is_in_flight(instance, lake):
    write_curated(lake, {"sft_set": 10, "eval_cases": 3})
    run = instance.create_run_for_job(defs.resolve_job_def("retrain_job"), run_config={})
    result = schedule_tick(instance, lake)
    assert result.run_requests == []
    assert run.run_id in result.skip_message


def test_the_schedule_is_weekly_on_retrain_job_and_running_by_default():
    assert retrain_schedule.cron_schedule == "0 4 * * 1"
    assert retrain_schedule.job_name == "retrain_job"
    assert retrain_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert "FLYWHEEL_RETRAIN_CRON" in retrain_schedule.description
    assert "retrain_schedule" in {s.name for s in defs.schedules}


def test_the_cron_comes_from_the_environment_and_a_bad_one_is_named(monkeypatch):
    monkeypatch.setenv("FLYWHEEL_RETRAIN_CRON", "30 1 * * *")
    assert retrain_cron() == "30 1 * * *"
    monkeypatch.setenv("FLYWHEEL_RETRAIN_CRON", "every monday")
    with pytest.raises(ValueError, match="FLYWHEEL_RETRAIN_CRON must be a cron schedule"):
        retrain_cron()


def write_clusters(lake, sizes: dict[str, int]):
    rows = [
        {
            "cluster_id": cid,
            "representative": f"prompt {cid}",
            "size": size,
            "rows": size * 2,
            "negative_rate": 0.5,
            "corrected": 0,
            "examples": [],
            "sets": [],
            "source_request_ids": [f"{cid}-{i}" for i in range(size)],
        }
        for cid, size in sizes.items()
    ]
    lake.overwrite(FAILURE_CLUSTERS, pa.Table.from_pylist(rows, schema=FAILURE_CLUSTERS.schema))


def cluster_tick(instance, lake, cursor=None, threshold=25):
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance,
        definitions=defs,
        resources={
            "lake": LakeResource(root=lake.root),
            "training": TrainingResource(failure_cluster_min_size=threshold),
        },
    )
    return failure_cluster_sensor.evaluate_tick(context)


def test_no_cluster_at_the_threshold_skips_with_the_counts(instance, lake):
    write_clusters(lake, {"aaa": 24, "bbb": 3})
    result = cluster_tick(instance, lake)
    assert result.run_requests == []
    assert result.skip_message == (
        "no failure cluster has 25 failing rows or more (2 clusters; largest aaa with 24)"
    )


def test_no_clusters_table_skips(instance, lake):
    result = cluster_tick(instance, lake)
    assert result.run_requests == []
    assert result.skip_message == "no failure_clusters table yet"


def test_each_crossing_cluster_gets_a_run_keyed_by_its_size_bucket(instance, lake):
    write_clusters(lake, {"bbb": 60, "aaa": 25, "ccc": 10})
    result = cluster_tick(instance, lake)
    assert [r.run_key for r in result.run_requests] == [
        "retrain-cluster-aaa-25",
        "retrain-cluster-bbb-50",
    ]
    aaa = result.run_requests[0]
    assert aaa.tags["flywheel/trigger"] == "failure_cluster"
    assert aaa.tags["flywheel/failure_cluster"] == "aaa"
    assert aaa.tags["flywheel/cluster_size"] == "25"
    assert json.loads(result.cursor) == {"requested": {"aaa": 25, "bbb": 50}}
    # The keys depend on the table alone: a tick without the cursor names the same runs.
    again = cluster_tick(instance, lake)
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in result.run_requests]


def test_a_cluster_retriggers_only_when_it_doubles(instance, lake):
    write_clusters(lake, {"aaa": 30})
    first = cluster_tick(instance, lake)
    write_clusters(lake, {"aaa": 49})
    grown = cluster_tick(instance, lake, cursor=first.cursor)
    assert grown.run_requests == []
    assert grown.skip_message == "every cluster at 25 or more was requested at its size: aaa (49)"
    write_clusters(lake, {"aaa": 50})
    doubled = cluster_tick(instance, lake, cursor=grown.cursor)
    assert [r.run_key for r in doubled.run_requests] == ["retrain-cluster-aaa-50"]


def test_the_threshold_is_the_training_resources(instance, lake):
    write_clusters(lake, {"aaa": 12})
    assert cluster_tick(instance, lake).run_requests == []
    assert [r.run_key for r in cluster_tick(instance, lake, threshold=10).run_requests] == [
        "retrain-cluster-aaa-10"
    ]
    assert TrainingResource().failure_cluster_min_size == 25


def test_the_cluster_sensor_skips_while_a_retrain_is_in_flight(instance, lake):
    write_clusters(lake, {"aaa": 30})
    run = instance.create_run_for_job(defs.resolve_job_def("retrain_job"), run_config={})
    result = cluster_tick(instance, lake, cursor='{"requested": {}}')
    assert result.run_requests == []
    assert run.run_id in result.skip_message
    assert result.cursor == '{"requested": {}}'


def test_the_snapshot_records_the_cluster_it_targets(lake):
    write_curated(lake, {"sft_set": 10, "eval_cases": 3})
    take_snapshot(lake, run_id="r1", trigger="failure_cluster", target_cluster="aaa")
    assert last_snapshot(lake)["target_cluster"] == "aaa"
    assert snapshot_for_run(lake, "r1").target_cluster == "aaa"
    write_curated(lake, {"sft_set": 11})
    take_snapshot(lake, run_id="r2", trigger="schedule")
    assert snapshot_for_run(lake, "r2").target_cluster is None


def test_a_snapshot_table_from_before_target_cluster_still_reads_and_appends(lake):
    old = TableSpec(
        TRAINING_SNAPSHOTS.name,
        pa.schema([f for f in TRAINING_SNAPSHOTS.schema if f.name != "target_cluster"]),
    )
    row = {
        "snapshot_id": "snap-old",
        "run_id": "r0",
        "trigger": "manual",
        "run_key": "",
        "versions": json.dumps({"sft_set": -1, "dpo_set": -1, "kto_set": -1, "eval_cases": -1}),
        "rows": "{}",
        "new_rows": "{}",
        "created_at": datetime(2026, 11, 1, tzinfo=UTC),
    }
    write_deltalake(lake.uri(old.name), pa.Table.from_pylist([row], schema=old.schema))
    assert snapshot_for_run(lake, "r0").target_cluster is None
    write_curated(lake, {"sft_set": 10, "eval_cases": 3})
    take_snapshot(lake, run_id="r1", trigger="failure_cluster", target_cluster="aaa")
    stored = lake.read(TRAINING_SNAPSHOTS.name).sort_by("created_at")
    assert stored["snapshot_id"].to_pylist()[0] == "snap-old"
    assert stored["target_cluster"].to_pylist() == [None, "aaa"]
    assert last_snapshot(lake)["target_cluster"] == "aaa"


def test_a_cluster_run_pins_its_cluster_in_the_snapshot(instance, lake):
    from flywheel_assets.training.assets import training_snapshot

    write_curated(lake, {"sft_set": 10, "eval_cases": 3})
    result = dg.materialize(
        [training_snapshot],
        resources={"lake": LakeResource(root=lake.root)},
        instance=instance,
        tags={"flywheel/trigger": "failure_cluster", "flywheel/failure_cluster": "aaa"},
    )
    assert result.success
    snap = snapshot_for_run(lake, result.run_id)
    assert snap.target_cluster == "aaa"
    assert last_snapshot(lake)["trigger"] == "failure_cluster"
