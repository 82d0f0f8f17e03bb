"""The code location loads, and every definition says what it is."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flywheel_assets.definitions import defs
from flywheel_tests.support.cli import ROOT

# Assets stored as something other than a Delta table, and what they are stored as.
NOT_TABLES = {"lora_adapter": "pytorch"}


def test_every_dataset_asset_describes_one_row_and_is_a_delta_table():
    specs = list(defs.resolve_all_asset_specs())
    assert specs
    for spec in specs:
        name = spec.key.to_user_string()
        assert spec.group_name and spec.group_name != "default", spec.key
        if name in NOT_TABLES:
            assert NOT_TABLES[name] in spec.kinds, spec.key
            assert spec.description and spec.description.startswith("One "), spec.key
            continue
        assert spec.description and spec.description.startswith("One row per"), spec.key
        assert "delta" in spec.kinds, spec.key


def test_the_retrain_assets_run_only_in_retrain_job():
    retrain = {
        k.to_user_string()
        for k in defs.resolve_job_def("retrain_job").asset_layer.selected_asset_keys
    }
    refresh = {
        k.to_user_string()
        for k in defs.resolve_job_def("refresh_job").asset_layer.selected_asset_keys
    }
    assert retrain == {"training_snapshot", "lora_adapter", "candidate_eval", "model_registry"}
    assert not retrain & refresh
    assert "drift_monitor" in refresh


def test_the_gate_is_a_blocking_check_on_the_candidate_evaluation():
    graph = defs.resolve_asset_graph()
    (gate,) = [k for k in graph.asset_check_keys if k.name == "candidate_passes_gate"]
    assert gate.asset_key.to_user_string() == "candidate_eval"
    spec = next(s for a in graph.assets_defs for s in a.check_specs if s.key == gate)
    assert spec.blocking


def test_jobs_sensors_and_schedules_are_described():
    jobs = {j.name: j for j in defs.resolve_all_job_defs()}
    assert {"ingest_job", "refresh_job", "retrain_job"} <= set(jobs)
    assert all(j.description for name, j in jobs.items() if not name.startswith("__"))
    for sensor in defs.sensors:
        assert sensor.name.endswith("_sensor") and sensor.description
    for schedule in defs.schedules:
        assert schedule.name.endswith("_schedule") and schedule.description


def test_bronze_checks_are_present_and_blocking():
    graph = defs.resolve_asset_graph()
    names = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    for table in ["raw_logs", "raw_feedback", "annotations", "drift_events"]:
        assert (table, "ids_are_unique") in names
        assert (table, "required_fields_present") in names
    assert ("ingest_ledger", "every_line_accounted_for") in names


@pytest.mark.slow
def test_dagster_validates_the_workspace():
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "All code locations passed validation" in out.stderr + out.stdout
