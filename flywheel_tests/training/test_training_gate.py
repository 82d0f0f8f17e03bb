"""The promotion gate on constructed score vectors, and the eval scoring it relies on."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flywheel_assets.training.evaluation import load_judge, pass_rates, score, similarity_judge
from flywheel_assets.training.gate import GatePolicy, broken_golden, decide
from flywheel_assets.training.statistics import mcnemar

HERE = __name__  # this module, as load_judge imports it
GAIN = re.compile(
    r"held-out margin gain [+-]\d\.\d{3} \(95% CI [+-]\d\.\d{3} to [+-]\d\.\d{3}, "
    r"paired bootstrap over (\d+) cases\)"
)


def scored(
    margins: dict[str, float | None], *, loglik: dict[str, float | None] | None = None
) -> pa.Table:
    """Scored cases: ids starting with "h" are held out, "g" golden, "r" regression (a held-out
    case's kind follows its second letter); passed = margin > 0, as the likelihood scorer has it."""
    ids = list(margins)
    kinds = ["regression" if (c[1] if c[0] == "h" else c[0]) == "r" else "golden" for c in ids]
    return pa.table(
        {
            "case_id": ids,
            "kind": kinds,
            "holdout": [c.startswith("h") for c in ids],
            "passed": [m is not None and m > 0 for m in margins.values()],
            "margin": pa.array(list(margins.values()), pa.float64()),
            "loglik": pa.array(
                [(loglik or {}).get(c, -1.0) for c in ids],
                pa.float64(),
            ),
        }
    )


def pair(gains: np.ndarray, *, extra: dict[str, tuple[float, float]] | None = None, seed=1):
    """Production and candidate on held-out cases hg0, hr1, ... whose margins move by `gains`,
    plus `extra` cases with (before, after) margins."""
    rng = np.random.default_rng(seed)
    ids = [f"h{'gr'[i % 2]}{i}" for i in range(len(gains))]
    base = rng.normal(-0.1, 0.5, len(gains))
    before = dict(zip(ids, base.tolist(), strict=True))
    after = dict(zip(ids, (base + gains).tolist(), strict=True))
    for case_id, (b, a) in (extra or {}).items():
        before[case_id], after[case_id] = b, a
    return scored(before), scored(after)


def gains(mean: float, sd: float, n: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, sd, n)


def test_a_clear_gain_is_promoted_with_its_interval_in_the_summary():
    before, after = pair(gains(0.4, 0.2))
    decision = decide(before, after, GatePolicy())
    assert decision.promote, decision.summary
    match = GAIN.search(decision.summary)
    assert match and match.group(1) == "40", decision.summary
    assert decision.summary.startswith("significant: held-out margin gain +0.")
    assert decision.interval["low"] > 0 and decision.interval["n"] == 40
    assert decision.interval["low"] < decision.interval["mean"] < decision.interval["high"]


def test_identical_scores_are_not_an_improvement():
    # Equal before and after: the old ">=" rule promoted this; no gain is no evidence.
    before, after = pair(np.zeros(40))
    decision = decide(before, after, GatePolicy())
    assert not decision.promote
    assert "not significant" in decision.summary and "includes 0" in decision.summary
    assert decision.interval["low"] == decision.interval["high"] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noise_around_zero_is_not_significant(seed):
    before, after = pair(gains(0.0, 0.3, seed=seed), seed=seed)
    decision = decide(before, after, GatePolicy())
    assert not decision.promote
    assert "not significant" in decision.summary and "includes 0" in decision.summary
    assert decision.interval["low"] <= 0 <= decision.interval["high"]


def test_a_regression_is_rejected_as_worse():
    before, after = pair(gains(-0.4, 0.2))
    decision = decide(before, after, GatePolicy())
    assert not decision.promote
    assert "the candidate is worse" in decision.summary
    assert decision.interval["high"] < 0
    assert GAIN.search(decision.summary)


def test_min_gain_raises_the_bar_the_lower_bound_must_clear():
    before, after = pair(gains(0.2, 0.1))
    decision = decide(before, after, GatePolicy(min_gain=0.5))
    assert not decision.promote
    assert "does not lie above the required +0.500" in decision.summary
    assert decide(before, after, GatePolicy(min_gain=0.1)).promote


def test_a_golden_break_rejects_a_significant_gain_and_a_tolerance_admits_it():
    before, after = pair(gains(0.4, 0.2), extra={"g1": (0.5, -0.5), "g2": (0.3, 0.4)})
    decision = decide(before, after, GatePolicy())
    assert not decision.promote
    assert decision.broken_golden == ["g1"]
    assert "significant" in decision.summary
    assert "1 golden case(s) that production passes now fail, more than the 0 allowed: g1" in (
        decision.summary
    )
    tolerant = decide(before, after, GatePolicy(max_golden_breaks=1))
    assert tolerant.promote, tolerant.summary
    assert "within the 1 allowed: g1" in tolerant.summary


def test_a_golden_case_failing_before_and_after_is_not_a_break():
    before, after = pair(gains(0.4, 0.2), extra={"g1": (-0.5, -0.2)})
    assert broken_golden(before, after) == []
    assert decide(before, after, GatePolicy()).promote


def test_too_few_holdout_cases_are_rejected_with_the_count():
    before, after = pair(gains(0.4, 0.2, n=6))
    decision = decide(before, after, GatePolicy(min_holdout_cases=10))
    assert not decision.promote
    assert "6 scorable held-out case(s), fewer than the 10 needed to judge" in decision.summary
    assert decision.holdout_cases == 6


def test_no_held_out_case_at_all_is_rejected_and_recorded_without_an_interval():
    decision = decide(scored({"g1": 0.2, "r1": -0.1}), scored({"g1": 0.3, "r1": 0.2}))
    assert not decision.promote
    assert decision.summary.startswith("0 scorable held-out case(s), fewer than the 10 needed")
    record = json.loads(json.dumps(decision.record()))
    assert record["interval"] is None and record["mcnemar_p"] is None
    assert record["flips"]["fixed"] == ["r1"]


def test_unscored_cases_are_left_out_and_counted():
    before, after = pair(gains(0.4, 0.2, n=12))
    margins_after = dict(
        zip(*after.select(["case_id", "margin"]).to_pydict().values(), strict=True)
    )
    margins_after["hg0"] = margins_after["hr3"] = None  # the candidate could not score these
    margins_before = dict(
        zip(*before.select(["case_id", "margin"]).to_pydict().values(), strict=True)
    )
    margins_before["hg4"] = None
    decision = decide(scored(margins_before), scored(margins_after), GatePolicy())
    assert decision.holdout_cases == 9 and decision.interval["n"] == 9
    assert decision.unscored == ["hg0", "hg4", "hr3"]
    assert "3 held-out case(s) could not be scored and are left out: hg0, hg4, hr3" in (
        decision.summary
    )
    assert not decision.promote  # 9 scorable, fewer than the default 10
    assert "9 scorable held-out case(s), fewer than the 10 needed" in decision.summary


def test_cases_are_matched_by_id_whatever_the_row_order():
    before, after = pair(gains(0.3, 0.3))
    order = np.random.default_rng(3).permutation(after.num_rows)
    shuffled = after.take(pa.array(order))
    assert decide(before, shuffled, GatePolicy()).record() == decide(before, after).record()


def test_mismatched_case_ids_are_refused_by_name():
    before, after = pair(gains(0.3, 0.3, n=4), extra={"g1": (0.1, 0.2)})
    after = after.filter(pc.field("case_id") != "g1")
    extra = scored({"g9": 0.1})
    with pytest.raises(ValueError, match="only production has g1; only the candidate has g9"):
        decide(before, pa.concat_tables([after, extra]), GatePolicy())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop_columns(["margin"]), "the after table lacks column.s. margin"),
        (lambda t: pa.concat_tables([t, t.slice(0, 1)]), "the after table repeats case_id.s. hg0"),
        (
            lambda t: t.set_column(2, "holdout", pa.array([False] * t.num_rows)),
            "disagree on the holdout of case",
        ),
    ],
)
def test_tables_that_cannot_be_paired_are_refused(change, message):
    before, after = pair(gains(0.3, 0.3, n=4))
    with pytest.raises(ValueError, match=message):
        decide(before, change(after), GatePolicy())


def test_the_gain_is_computed_on_the_policys_metric():
    # The margin improves because the contrast answer got less likely; the expected answer's own
    # log-likelihood fell: a loglik gate rejects what a margin gate promotes.
    ids = [f"h{'gr'[i % 2]}{i}" for i in range(30)]
    drop = gains(-0.3, 0.1, n=30)
    before = scored(dict.fromkeys(ids, -0.1), loglik=dict.fromkeys(ids, -2.0))
    after = scored(
        dict.fromkeys(ids, 0.4), loglik=dict(zip(ids, (-2.0 + drop).tolist(), strict=True))
    )
    assert decide(before, after, GatePolicy(metric="margin")).promote
    by_loglik = decide(before, after, GatePolicy(metric="loglik"))
    assert not by_loglik.promote
    assert "the candidate is worse: held-out loglik gain -0.3" in by_loglik.summary


def test_flips_and_mcnemar_are_recorded_by_kind():
    # Held-out: hg0..hg9 go fail -> pass, hr10 pass -> fail; golden g1 breaks (not held out).
    before = {f"hg{i}": -0.2 for i in range(10)} | {"hr10": 0.3, "g1": 0.5, "r1": -0.1}
    after = {f"hg{i}": 0.2 for i in range(10)} | {"hr10": -0.3, "g1": -0.5, "r1": 0.4}
    decision = decide(scored(before), scored(after), GatePolicy(max_golden_breaks=1))
    flips = decision.flips
    assert flips["fixed"] == sorted([f"hg{i}" for i in range(10)] + ["r1"])
    assert flips["broken"] == ["g1", "hr10"]
    assert flips["counts"] == {
        "fixed": {"golden": 10, "regression": 1, "holdout": 10},
        "broken": {"golden": 1, "regression": 1, "holdout": 1},
    }
    assert decision.mcnemar_p == pytest.approx(mcnemar(10, 1)) == pytest.approx(24 / 2048)
    assert "held-out pass/fail flips: 10 fixed, 1 broken (exact McNemar p = 0.0117)" in (
        decision.summary
    )


def test_the_record_is_json_and_holds_the_whole_decision():
    before, after = pair(gains(0.4, 0.2), extra={"g1": (0.5, 0.6)})
    decision = decide(before, after, GatePolicy(seed=5))
    record = json.loads(json.dumps(decision.record()))
    assert record["promote"] is True and record["summary"] == decision.summary
    assert record["interval"] == decision.interval
    assert set(record["interval"]) == {"mean", "low", "high", "confidence", "resamples", "n"}
    assert record["policy"]["seed"] == 5 and record["metric"] == "margin"
    assert record["before"]["holdout"]["cases"] == 40 and record["after"] == decision.after
    assert record["flips"]["counts"]["fixed"]["holdout"] == len(
        [c for c in record["flips"]["fixed"] if c.startswith("h")]
    )
    assert "paired bootstrap" in record["test"] and "McNemar" in record["test"]
    assert set(record) == {
        "promote", "summary", "reasons", "test", "metric", "policy", "interval",
        "holdout_cases", "unscored", "flips", "mcnemar_p", "broken_golden", "before", "after",
        "guard",
    }  # fmt: skip


def test_a_likelihood_gain_with_a_clear_loss_of_preference_is_rejected():
    """Trained on swapped pairs, a model can find every expected answer likelier (it learned the
    domain) while preferring the corrected answers to the corrections: the guard catches it."""
    ids = [f"r{i}" for i in range(30)]

    def table(loglik, margin):
        return pa.table(
            {
                "case_id": ids,
                "kind": ["regression"] * 30,
                "holdout": [True] * 30,
                "passed": [m > 0 for m in margin],
                "loglik": loglik,
                "margin": margin,
            }
        )

    before = table([-3.0] * 30, [0.2 + 0.01 * i for i in range(30)])
    after = table([-2.0] * 30, [-0.3 - 0.01 * i for i in range(30)])
    decision = decide(before, after, GatePolicy(metric="loglik"))
    assert not decision.promote
    assert "significant: held-out loglik gain +1.000" in decision.summary
    assert "the candidate is worse on margin: held-out margin gain -0.790" in decision.summary
    assert decision.record()["guard"]["high"] < 0
    without = decide(before, after, GatePolicy(metric="loglik", guard_metric=None))
    assert without.promote and without.guard is None


def test_the_same_seed_gives_the_same_decision():
    before, after = pair(gains(0.05, 0.4))
    assert decide(before, after, GatePolicy(seed=9)).record() == (
        decide(before, after, GatePolicy(seed=9)).record()
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "score"}, "metric must be one of"),
        ({"confidence": 1.5}, "confidence must lie strictly between 0 and 1"),
        ({"min_holdout_cases": 0}, "min_holdout_cases must be at least 1"),
        ({"max_golden_breaks": -1}, "max_golden_breaks must be >= 0"),
    ],
)
def test_a_bad_policy_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GatePolicy(**kwargs)


def test_the_policy_takes_keywords_only():
    # A positional call written for an older field order must fail, not bind silently.
    with pytest.raises(TypeError):
        GatePolicy(0.0, 1)  # type: ignore[misc]


def test_pass_rates_by_kind():
    rates = pass_rates(scored({"g1": 0.5, "g2": -0.1, "r1": 0.2, "r2": -1.0, "hg3": 0.1}))
    assert rates["all"] == {"cases": 5, "passed": 3, "pass_rate": pytest.approx(3 / 5)}
    assert rates["golden"] == {"cases": 3, "passed": 2, "pass_rate": pytest.approx(2 / 3)}
    assert rates["regression"] == {"cases": 2, "passed": 1, "pass_rate": 0.5}
    assert rates["holdout"] == {"cases": 1, "passed": 1, "pass_rate": 1.0}


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
        (f"{HERE}:GAIN", "is not callable"),
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
