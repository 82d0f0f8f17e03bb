"""The promotion gate and the eval scoring it relies on, on constructed results."""

from __future__ import annotations

import pyarrow as pa
import pytest

from flywheel_assets.training.evaluation import load_judge, pass_rates, score, similarity_judge
from flywheel_assets.training.gate import GatePolicy, decide

HERE = __name__  # this module, as load_judge imports it
CASES = [
    ("g1", "golden", False),
    ("g2", "golden", False),
    ("g3", "golden", True),
    ("r1", "regression", True),
    ("r2", "regression", False),
    ("h1", "golden", True),
]


def scored(passed: dict[str, bool]) -> pa.Table:
    return pa.table(
        {
            "case_id": [c for c, _, _ in CASES],
            "kind": [k for _, k, _ in CASES],
            "holdout": [h for _, _, h in CASES],
            "passed": [passed.get(c, False) for c, _, _ in CASES],
        }
    )


def test_a_better_candidate_is_promoted():
    before = scored({"g1": True, "g3": True})
    after = scored({"g1": True, "g3": True, "r1": True, "h1": True})
    decision = decide(before, after, GatePolicy())
    assert decision.promote
    assert decision.before["holdout"] == {
        "cases": 3,
        "passed": 1,
        "pass_rate": pytest.approx(1 / 3),
    }
    assert decision.after["holdout"]["pass_rate"] == pytest.approx(1.0)
    assert decision.broken_golden == []


def test_a_lower_holdout_pass_rate_is_rejected_with_the_rates():
    before = scored({"g3": True, "r1": True})
    after = scored({"g3": True})
    decision = decide(before, after, GatePolicy())
    assert not decision.promote
    assert "holdout pass rate 0.333 is below production's 0.667" in decision.summary


def test_the_tolerance_admits_a_small_drop():
    before = scored({"g3": True, "r1": True})
    after = scored({"g3": True})
    assert decide(before, after, GatePolicy(holdout_tolerance=0.34)).promote
    assert not decide(before, after, GatePolicy(holdout_tolerance=0.33)).promote


def test_breaking_a_golden_case_rejects_even_a_better_holdout():
    before = scored({"g1": True})
    after = scored({"g3": True, "r1": True, "h1": True})  # holdout 0 -> 1, but g1 now fails
    decision = decide(before, after, GatePolicy())
    assert not decision.promote
    assert decision.broken_golden == ["g1"]
    assert "1 golden case(s) that production passes now fail: g1" in decision.summary


def test_a_golden_case_failing_before_and_after_is_not_a_break():
    assert decide(scored({}), scored({}), GatePolicy()).promote


def test_too_few_holdout_cases_cannot_be_judged():
    decision = decide(scored({}), scored({}), GatePolicy(min_holdout_cases=4))
    assert not decision.promote
    assert "3 holdout cases, fewer than the 4 needed" in decision.summary


def test_pass_rates_by_kind():
    rates = pass_rates(scored({"g1": True, "r1": True}))
    assert rates["all"] == {"cases": 6, "passed": 2, "pass_rate": pytest.approx(2 / 6)}
    assert rates["golden"]["cases"] == 4 and rates["golden"]["passed"] == 1
    assert rates["regression"] == {"cases": 2, "passed": 1, "pass_rate": 0.5}


def cases_table() -> pa.Table:
    return pa.table(
        {
            "case_id": ["a", "b"],
            "kind": ["golden", "regression"],
            "holdout": [True, False],
            "input": ["q1", "q2"],
            "expected": ["Paris is the capital.", "Use a VPN."],
        }
    )


def test_the_default_judge_scores_similarity_to_expected():
    out = score(cases_table(), ["Paris is the capital.", "Reboot it."], similarity_judge, 0.8)
    assert out["score"][0].as_py() == pytest.approx(1.0)
    assert out["score"][1].as_py() < 0.5
    assert out["passed"].to_pylist() == [True, False]


def test_a_near_match_passes_at_the_threshold():
    out = score(cases_table(), ["Paris is the capital", "Use a VPN"], similarity_judge, 0.9)
    assert out["passed"].to_pylist() == [True, True]


def out_of_range_judge(inputs, expected, outputs):
    return [2.0 for _ in outputs]


def test_a_judge_is_loaded_by_name():
    judge = load_judge("flywheel_tests.support.retrain:length_judge")
    out = score(cases_table(), ["long answer", "no"], judge, 0.5)
    assert out["passed"].to_pylist() == [True, False]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "must be 'package.module:function'"),
        ("missing.module:f", "cannot load judge"),
        (f"{HERE}:nothing", "cannot load judge"),
        (f"{HERE}:CASES", "is not callable"),
    ],
)
def test_a_bad_judge_name_is_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        load_judge(spec)


def test_judge_scores_outside_zero_to_one_are_refused():
    judge = load_judge(f"{HERE}:out_of_range_judge")
    with pytest.raises(ValueError, match=r"scores must lie in \[0, 1\]"):
        score(cases_table(), ["x", "y"], judge, 0.5)


def test_one_output_per_case_is_required():
    with pytest.raises(ValueError, match="1 outputs for 2 eval cases"):
        score(cases_table(), ["x"], similarity_judge, 0.5)
