"""The Dagster instance on PostgreSQL (docs/deploy/dagster.yaml) against a real server: the
refresh and a retrain run by the CLI are recorded there, events and all."""

from __future__ import annotations

import os
import shutil

import dagster as dg
import pytest

from flywheel_tests.support.cli import ROOT, flywheel
from flywheel_tests.support.postgres_server import postgres_bindir, start_postgres
from flywheel_tests.support.records import TEST_HASH_KEY, write_lines
from flywheel_tests.support.retrain import landing_lines

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        postgres_bindir() is None and not os.environ.get("CI"),
        reason="PostgreSQL is not installed (.ci/run installs Debian's postgresql package)",
    ),
]


@pytest.fixture(scope="module")
def postgres():
    server = start_postgres()
    yield server
    server.stop()


def test_runs_and_their_events_are_recorded_in_postgres(postgres, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "docs" / "deploy" / "dagster.yaml", home / "dagster.yaml")
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    interactions, fb = landing_lines()
    write_lines(landing, "interactions/a.jsonl", interactions)
    write_lines(landing, "feedback/a.jsonl", fb)
    env = {
        **postgres.env,
        "DAGSTER_HOME": str(home),
        "FLYWHEEL_HASH_KEY": TEST_HASH_KEY,
    }
    locations = ["--landing", str(landing), "--lake", str(lake)]

    refresh = flywheel("run", *locations, env=env)
    assert refresh.returncode == 0, refresh.stderr[-2000:]
    # Sixteen cases hold a few held-out ones: enough for the tiny model's clear gain.
    retrain = flywheel(
        "retrain",
        *("--method", "sft", "--epochs", "3", "--learning-rate", "1e-2"),
        *("--min-holdout-cases", "1", "--lake", str(lake)),
        env=env,
    )
    assert retrain.returncode == 0, retrain.stderr[-2000:]

    # Straight from the database: both runs, finished.
    rows = postgres.sql("SELECT pipeline_name, status FROM runs ORDER BY create_timestamp")
    assert rows.split() == ["refresh_job|SUCCESS", "retrain_job|SUCCESS"]
    assert int(postgres.sql("SELECT count(*) FROM event_logs")) > 0

    # And through Dagster, as the webserver and the daemon read it.
    for name, value in postgres.env.items():
        monkeypatch.setenv(name, value)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        [run] = instance.get_runs(dg.RunsFilter(job_name="retrain_job"))
        assert run.status == dg.DagsterRunStatus.SUCCESS
        records = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        keys = {r.event_log_entry.dagster_event.asset_key.to_user_string() for r in records}
        assert {"training_snapshot", "lora_adapter", "model_registry"} <= keys
