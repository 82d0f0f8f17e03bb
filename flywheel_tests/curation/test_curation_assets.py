"""Curation through Dagster and the CLI: lineage, checks, metrics, and exports trainers load."""

from __future__ import annotations

import json
import os

import dagster as dg
import pytest

from flywheel_assets.definitions import defs
from flywheel_assets.sample import write_sample_landing
from flywheel_tests.support.cli import flywheel, parse_table
from flywheel_tests.support.records import feedback, interaction, write_lines
from flywheel_tests.support.runs import materializations, refresh


@pytest.fixture(autouse=True)
def hash_key(monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HASH_KEY", "a-test-secret-of-enough-length")


def test_curated_tables_sit_downstream_of_redacted_logs():
    graph = defs.resolve_asset_graph()
    upstream = {k.to_user_string() for k in graph.get(dg.AssetKey("tagged_rows")).parent_keys}
    assert "redacted_logs" in upstream
    for table in ("eval_cases", "review_queue", "sft_set", "dpo_set", "kto_set"):
        parents = {k.to_user_string() for k in graph.get(dg.AssetKey(table)).parent_keys}
        assert parents == {"tagged_rows"}, table


def test_refresh_on_the_sample_builds_every_set_and_blocking_checks_pass(tmp_path, lake):
    write_sample_landing(tmp_path / "landing", n_interactions=500, seed=4)
    result = refresh(tmp_path / "landing", lake)
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    blocking = {
        (c.asset_key.to_user_string(), c.check_name): c.passed
        for c in evaluations
        if c.check_name in ("no_residual_pii", "no_holdout_leakage", "chosen_differs_from_rejected")
    }
    # no_residual_pii on 3 redacted and 9 curated tables (failure_clusters included), leakage on
    # 3 sets, one pair rule
    assert len(blocking) == 3 + 9 + 3 + 1
    assert all(blocking.values()), blocking
    meta = materializations(result)
    for table in ("tagged_rows", "eval_cases", "review_queue", "sft_set", "dpo_set", "kto_set"):
        assert meta[table]["dagster/row_count"] > 0, table
    kto = meta["kto_set"]
    assert kto["desirable"] + kto["undesirable"] == kto["dagster/row_count"]
    assert "negative_without_correction" in meta["review_queue"]["reasons"]
    chart = meta["feedback_metrics"]["chart"]
    assert "positive_rate" in chart and "█" in chart
    metric_checks = {c.check_name for c in evaluations if c.asset_key.path == ["feedback_metrics"]}
    assert metric_checks == {
        "positive_rate_healthy",
        "correction_rate_healthy",
        "safety_flag_rate_healthy",
        "no_residual_pii",
    }


@pytest.mark.slow
def test_exports_from_the_cli_load_with_datasets(tmp_path):
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from datasets import load_dataset

    landing, lake = tmp_path / "landing", tmp_path / "lake"
    write_sample_landing(landing, n_interactions=400, seed=9)
    env = {"FLYWHEEL_HASH_KEY": "a-test-secret-of-enough-length"}
    run = flywheel("run", "--landing", str(landing), "--lake", str(lake), env=env)
    assert run.returncode == 0, run.stderr
    rows = parse_table(run.stdout, "table")
    for table, columns in [
        ("sft_set", {"messages"}),
        ("dpo_set", {"prompt", "chosen", "rejected"}),
        ("kto_set", {"prompt", "completion", "label"}),
        ("eval_cases", {"case_id", "kind", "input", "expected", "holdout"}),
    ]:
        out = tmp_path / f"{table}.jsonl"
        done = flywheel("export", table, "--out", str(out), "--lake", str(lake))
        assert done.returncode == 0, done.stderr
        data = load_dataset("json", data_files=str(out), split="train")
        assert len(data) == int(rows[table][1])
        assert columns <= set(data.column_names)
    openai = tmp_path / "openai.jsonl"
    done = flywheel(
        "export", "sft_set", "--format", "openai", "--out", str(openai), "--lake", str(lake)
    )
    assert done.returncode == 0, done.stderr
    first = json.loads(openai.read_text().splitlines()[0])
    assert first["messages"][-1]["role"] == "assistant"
    bad = flywheel(
        "export", "dpo_set", "--format", "openai", "--out", str(openai), "--lake", str(lake)
    )
    assert bad.returncode == 1 and "only defined for sft_set" in bad.stderr


def test_signal_weights_are_configurable_and_typos_are_refused(landing_dir, lake):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    write_lines(landing_dir, "feedback/a.jsonl", [feedback("f1", "r1", "copy")])
    config = {"ops": {"tagged_rows": {"config": {"signal_weights": {"copy": 0.25}}}}}
    result = refresh(landing_dir, lake, config)
    assert result.success
    row = lake.read("tagged_rows").to_pylist()[0]
    assert (row["signal_score"], row["label"]) == (0.25, "unknown")  # copy alone is now weak

    bad = {"ops": {"tagged_rows": {"config": {"signal_weights": {"cpy": 1.0}}}}}
    failed = refresh(landing_dir, lake, bad)
    assert not failed.success
    errors = [e.step_failure_data.error.message for e in failed.all_events if e.is_step_failure]
    assert any("unknown signal weight(s) ['cpy']" in m for m in errors)
