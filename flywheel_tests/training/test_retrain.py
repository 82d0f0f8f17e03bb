"""retrain_job end to end through Dagster on the tiny local model: real LoRA training, real
likelihood scoring and generation, the gate, the registry. The lake is built from hand-written
landing lines by the real pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel_assets.catalog.curated import DPO_SET
from flywheel_assets.lake.tables import Lake
from flywheel_assets.training.registry import Registry
from flywheel_assets.training.snapshot import current_versions
from flywheel_tests.support.records import write_lines
from flywheel_tests.support.retrain import CORRECTED, QA, landing_lines
from flywheel_tests.support.runs import materializations, run_job

# Tiny random base: every linear layer, many epochs and a high rate let it learn the answers.
STRONG = {"epochs": 30.0, "learning_rate": 1e-2, "lora_r": 16, "lora_alpha": 32, "batch_size": 8}


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    """A lake after the refresh pipeline, and a function that runs retrain_job on it."""
    root = tmp_path_factory.mktemp("loop")
    landing = root / "landing"
    interactions, fb = landing_lines()
    write_lines(landing, "interactions/a.jsonl", interactions)
    write_lines(landing, "feedback/a.jsonl", fb)
    lake = Lake(str(root / "lake"))
    assert run_job("refresh_job", landing, lake).success

    def retrain(lora=None, snapshot=None, evals=None):
        ops = {
            "training_snapshot": {"config": snapshot or {}},
            "lora_adapter": {"config": {"method": "sft", **(lora or {})}},
            # Sixteen cases hold only a few held-out ones: enough for a gain this clear.
            "candidate_eval": {"config": {"min_holdout_cases": 1, **(evals or {})}},
        }
        return run_job("retrain_job", landing, lake, {"ops": ops})

    return lake, retrain


@pytest.fixture(scope="module")
def first(loop):
    lake, retrain = loop
    return retrain(STRONG)


def test_the_pipeline_built_training_data_and_eval_cases(loop):
    lake, _ = loop
    kinds = lake.read("eval_cases", columns=["kind"])["kind"].to_pylist()
    assert kinds.count("golden") == len(QA) and kinds.count("regression") == len(CORRECTED)
    assert lake.stats("sft_set").rows > 0


def test_a_retrain_trains_an_adapter_whose_loss_goes_down(first):
    assert first.success
    meta = materializations(first)["lora_adapter"]
    loss = meta["losses"]["sft"]
    assert loss["last"] < loss["first"]
    adapter = meta["adapter_uri"]
    info = json.loads(Path(adapter, "flywheel_training.json").read_text())
    assert info["method"] == "sft" and info["settings"]["epochs"] == 30.0


def test_the_adapter_reloads_and_answers(first, loop):
    from flywheel_assets.training.trainer import generate, load_for_inference

    meta = materializations(first)["lora_adapter"]
    model, tokenizer = load_for_inference(meta["base_model"], meta["adapter_uri"])
    (answer,) = generate(model, tokenizer, [[{"role": "user", "content": QA[1][0]}]])
    assert isinstance(answer, str) and answer


def test_the_registry_pins_the_dataset_versions_and_promotes_a_better_model(first, loop):
    lake, _ = loop
    meta = materializations(first)
    model_id = meta["lora_adapter"]["model_id"]
    model = Registry(lake).get(model_id)
    assert model["status"] == "promoted"
    assert model["dataset_versions"] == meta["training_snapshot"]["dataset_versions"]
    assert model["dataset_versions"] == current_versions(lake)
    assert (model["trigger"], model["method"]) == ("manual", "sft")
    gate = model["metrics"]["gate"]
    assert gate["promote"] and gate["interval"]["low"] > 0  # a significant held-out gain
    assert "paired bootstrap" in gate["test"]
    evals = lake.read("candidate_eval").to_pylist()
    assert {(r["role"], r["model_id"]) for r in evals} == {
        ("production", "base"),
        ("candidate", model_id),
    }
    # The trained adapter finds every expected answer more likely than the random base does, and
    # prefers each correction to the answer users corrected.
    loglik = {(r["role"], r["case_id"]): r["loglik"] for r in evals}
    assert all(loglik[("candidate", c)] > loglik[("production", c)] for _, c in loglik)
    regression = [r for r in evals if r["role"] == "candidate" and r["kind"] == "regression"]
    assert len(regression) == len(CORRECTED)
    assert all(r["contrast_loglik"] is not None for r in regression)
    assert all(r["margin"] == r["loglik"] - r["contrast_loglik"] for r in regression)
    assert gate["flips"]["counts"]["broken"]["golden"] == 0


def test_the_gate_rejects_a_worse_candidate_and_production_stays(first, loop):
    lake, retrain = loop
    production = materializations(first)["lora_adapter"]["model_id"]
    # A learning rate this small leaves the candidate at the random base: it forgets the golden
    # answers production knows.
    worse = retrain({"epochs": 1.0, "learning_rate": 1e-9}, snapshot={"min_new_rows": 0})

    assert not worse.success
    (check,) = [c for c in worse.get_asset_check_evaluations() if not c.passed]
    assert check.check_name == "candidate_passes_gate"
    assert "model_registry" not in materializations(worse)
    registry = Registry(lake)
    rejected = registry.get(materializations(worse)["lora_adapter"]["model_id"])
    assert rejected["status"] == "rejected"
    assert "golden case(s) that production passes now fail" in rejected["status_reason"]
    assert "the candidate is worse" in rejected["status_reason"]
    assert registry.production()["model_id"] == production
    assert rejected["metrics"]["production_model"] == production


def test_a_retrain_on_swapped_preference_pairs_is_rejected_with_its_interval(first, loop):
    lake, retrain = loop
    production = Registry(lake).production()["model_id"]
    pairs = lake.read("dpo_set")
    assert pairs.num_rows > 0
    swapped = pairs.set_column(
        pairs.schema.get_field_index("chosen"), "chosen", pairs["rejected"]
    ).set_column(pairs.schema.get_field_index("rejected"), "rejected", pairs["chosen"])
    lake.overwrite(DPO_SET, swapped)
    try:
        result = retrain({**STRONG, "method": "dpo"}, snapshot={"min_new_rows": 0})
    finally:
        lake.overwrite(DPO_SET, pairs)
    assert not result.success
    model = Registry(lake).get(materializations(result)["lora_adapter"]["model_id"])
    assert model["status"] == "rejected"
    reason = model["status_reason"]
    assert "held-out loglik gain" in reason and "95% CI" in reason and "paired bootstrap" in reason
    assert model["metrics"]["gate"]["interval"]["low"] <= 0
    assert Registry(lake).production()["model_id"] == production


def test_no_new_data_stops_early_and_registers_nothing(first, loop):
    lake, retrain = loop
    models = len(Registry(lake).models())
    result = retrain(STRONG)
    assert result.success
    assert "lora_adapter" not in materializations(result)
    assert len(Registry(lake).models()) == models


def test_a_judge_of_ones_own_scores_the_cases(first, loop):
    lake, retrain = loop
    judge = "flywheel_tests.support.retrain:length_judge"  # passes any answer over 3 chars
    result = retrain(
        {"epochs": 1.0}, snapshot={"min_new_rows": 0}, evals={"judge": judge, "threshold": 0.5}
    )
    model = Registry(lake).get(materializations(result)["lora_adapter"]["model_id"])
    assert model["metrics"]["judge"] == judge
    evals = lake.read("candidate_eval").to_pylist()
    mine = [e for e in evals if e["candidate_id"] == model["model_id"]]
    # Sixteen cases, fewer than the generated subset: every case was generated and judged.
    assert mine and all(e["output"] is not None for e in mine)
    assert all(e["judge_passed"] == (len(e["output"]) > 3) for e in mine)
    assert model["metrics"]["generated"]["candidate"]["cases"] == len(mine) // 2


@pytest.mark.parametrize(
    ("lora", "message"),
    [
        ({"method": "ppo"}, "invalid lora_adapter config: unknown training method 'ppo'"),
        ({"epochs": 0.0}, "invalid lora_adapter config: epochs must be positive"),
    ],
)
def test_bad_training_config_fails_the_step_with_the_reason(first, loop, lora, message):
    lake, retrain = loop
    models = len(Registry(lake).models())
    result = retrain(lora, snapshot={"min_new_rows": 0})
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "lora_adapter"
    assert message in failure.step_failure_data.error.message
    assert len(Registry(lake).models()) == models


def test_the_model_store_is_absolute_and_local():
    from flywheel_assets.training.retrain import model_store_root

    assert model_store_root(None, Lake("data/lake")) == Path("data/lake/models").absolute()
    assert model_store_root("/mnt/models", Lake("data/lake")) == Path("/mnt/models")
    with pytest.raises(ValueError, match="local or mounted folder"):
        model_store_root(None, Lake("s3://bucket/lake"))
