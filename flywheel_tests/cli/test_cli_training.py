"""`flywheel retrain`, `models`, `promote` and `rollback-model` as a user runs them."""

from __future__ import annotations

import json

import pytest

from flywheel_tests.support.cli import flywheel, parse_table
from flywheel_tests.support.records import write_lines
from flywheel_tests.support.retrain import landing_lines

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def where(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_loop")
    interactions, fb = landing_lines()
    write_lines(root / "landing", "interactions/a.jsonl", interactions)
    write_lines(root / "landing", "feedback/a.jsonl", fb)
    locations = ["--landing", str(root / "landing"), "--lake", str(root / "lake")]
    assert flywheel("run", *locations).returncode == 0
    return locations


def lake_only(where):
    return where[2:]


def test_retrain_trains_evaluates_gates_and_registers(where):
    # Sixteen cases hold a few held-out ones: enough for the tiny model's clear gain.
    out = flywheel(
        "retrain", *where, "--method", "sft", "--epochs", "2", "--min-holdout-cases", "1"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("snapshot snap-")
    versions = parse_table(out.stdout, "table")
    assert set(versions) == {"dpo_set", "eval_cases", "kto_set", "sft_set"}
    assert versions["sft_set"][2].startswith("+")
    assert "trained ft-" in out.stdout and "(sft) on cpu: sft loss" in out.stdout
    rates = parse_table(out.stdout, "cases")
    assert set(rates) == {"holdout", "golden", "regression", "all"}
    assert "flips: regression " in out.stdout
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("promoted: passed the gate: significant: held-out loglik gain +")
    assert "95% CI" in last

    models = flywheel("models", *lake_only(where))
    listed = parse_table(models.stdout, "model")
    (model_id,) = listed
    assert listed[model_id][:3] == ["promoted", "sft", "manual"]
    assert f"sft_set@{versions['sft_set'][0]}" in models.stdout


def test_retrain_without_new_data_says_so(where):
    out = flywheel("retrain", *where)
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("flywheel retrain: error: nothing to retrain: 0 new curated")
    assert "at least 1 needed" in line


def test_promote_and_rollback_by_hand(where):
    out = flywheel(
        "retrain", *where, "--method", "sft", "--epochs", "1", "--min-new-rows", "0", "--no-promote"
    )
    assert out.returncode == 0, out.stderr
    models = json.loads(flywheel("models", *lake_only(where), "--json").stdout)
    newest, older = models[0], next(m for m in models if m["status"] == "promoted")
    assert newest["status"] in ("candidate", "rejected")

    promoted = flywheel("promote", newest["model_id"], "--reason", "looks good", *lake_only(where))
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.splitlines() == [
        f"{older['model_id']}: promoted -> retired",
        f"{newest['model_id']}: {newest['status']} -> promoted",
    ]
    back = flywheel("rollback-model", "--reason", "regressed in prod", *lake_only(where))
    assert back.returncode == 0, back.stderr
    assert back.stdout.splitlines()[-1] == f"{older['model_id']}: retired -> promoted"
    status = {
        m["model_id"]: m["status"]
        for m in json.loads(flywheel("models", *lake_only(where), "--json").stdout)
    }
    assert status[older["model_id"]] == "promoted" and status[newest["model_id"]] == "retired"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["promote", "no-such-model"], "no model 'no-such-model' in the registry"),
        (["rollback-model"], "no model is promoted"),
    ],
)
def test_registry_errors_are_one_line(tmp_path, args, message):
    out = flywheel(*args, "--lake", str(tmp_path / "lake"))
    assert out.returncode == 1
    (line,) = out.stderr.strip().splitlines()
    assert message in line


def test_retrain_on_an_empty_lake_says_to_run_the_pipeline(tmp_path):
    out = flywheel("retrain", "--lake", str(tmp_path / "lake"))
    assert out.returncode == 1
    assert "run the pipeline (flywheel run) first" in out.stderr


def test_run_refuses_retrain_assets(tmp_path):
    out = flywheel("run", "--lake", str(tmp_path / "k"), "--select", "lora_adapter")
    assert out.returncode == 1
    assert "retraining runs through retrain_job (flywheel retrain)" in out.stderr


def test_models_on_an_empty_registry(tmp_path):
    out = flywheel("models", "--lake", str(tmp_path / "lake"))
    assert out.returncode == 0 and "no models registered yet" in out.stdout
