"""The gate's statistics: the paired bootstrap interval and the exact McNemar test, checked on
constructed vectors and against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flywheel_assets.training.statistics import Interval, mcnemar, paired_bootstrap


def test_the_interval_of_a_constant_vector_is_that_constant():
    interval = paired_bootstrap(np.full(40, 0.25), resamples=500)
    assert interval.mean == pytest.approx(0.25)
    assert interval.low == pytest.approx(0.25)
    assert interval.high == pytest.approx(0.25)
    assert (interval.n, interval.resamples, interval.confidence) == (40, 500, 0.95)


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    gains = np.random.default_rng(7).normal(0.1, 1.0, 200)
    a = paired_bootstrap(gains, seed=3, resamples=2000)
    assert a == paired_bootstrap(gains, seed=3, resamples=2000)
    assert a != paired_bootstrap(gains, seed=4, resamples=2000)


def test_the_interval_matches_the_normal_approximation_for_a_large_sample():
    # The mean of 2,000 N(0.2, 1) draws: the 95% interval is about mean +- 1.96 / sqrt(n).
    gains = np.random.default_rng(11).normal(0.2, 1.0, 2000)
    interval = paired_bootstrap(gains, resamples=4000)
    half = 1.96 * gains.std(ddof=1) / math.sqrt(gains.size)
    assert interval.mean == pytest.approx(gains.mean())
    assert interval.low == pytest.approx(gains.mean() - half, abs=0.01)
    assert interval.high == pytest.approx(gains.mean() + half, abs=0.01)
    assert interval.low < interval.mean < interval.high


def test_a_wider_confidence_gives_a_wider_interval():
    gains = np.random.default_rng(5).normal(0.0, 1.0, 100)
    narrow = paired_bootstrap(gains, confidence=0.8, resamples=3000)
    wide = paired_bootstrap(gains, confidence=0.99, resamples=3000)
    assert wide.low < narrow.low and wide.high > narrow.high


def test_a_large_holdout_is_resampled_in_bounded_chunks():
    # 5,000 resamples of 50,000 cases do not fit in one chunk: the interval still comes back, and
    # a wide spread of values is summarised correctly.
    gains = np.random.default_rng(2).normal(0.05, 0.5, 50_000)
    interval = paired_bootstrap(gains, resamples=5000)
    half = 1.96 * gains.std(ddof=1) / math.sqrt(gains.size)
    assert interval.low == pytest.approx(gains.mean() - half, abs=0.001)
    assert interval.high == pytest.approx(gains.mean() + half, abs=0.001)


def test_the_interval_is_a_plain_dict_for_the_registry():
    d = paired_bootstrap(np.array([1.0, 2.0, 3.0]), resamples=100).as_dict()
    assert set(d) == {"mean", "low", "high", "confidence", "resamples", "n"}
    assert all(type(v) in (float, int) for v in d.values())
    assert Interval(**d) == paired_bootstrap(np.array([1.0, 2.0, 3.0]), resamples=100)


@pytest.mark.parametrize(
    ("gains", "kwargs", "message"),
    [
        (np.array([]), {}, "no paired differences"),
        (np.array([1.0, np.nan]), {}, "1 of 2 paired differences are not finite"),
        (np.ones((2, 2)), {}, "one-dimensional"),
        (np.ones(3), {"confidence": 1.0}, "confidence must lie strictly between 0 and 1"),
        (np.ones(3), {"resamples": 0}, "resamples must be at least 1"),
    ],
)
def test_bad_input_is_refused(gains, kwargs, message):
    with pytest.raises(ValueError, match=message):
        paired_bootstrap(gains, **kwargs)


@pytest.mark.parametrize(
    ("fixed", "broken", "p"),
    [
        (10, 0, 2 / 1024),  # 2 * 0.5**10
        (0, 10, 2 / 1024),
        (5, 5, 1.0),
        (0, 0, 1.0),
        (1, 0, 1.0),
        (9, 1, 22 / 1024),  # 2 * (1 + 10) / 2**10
        (15, 5, 2 * sum(math.comb(20, k) for k in range(6)) / 2**20),  # 0.04138946533203125
    ],
)
def test_mcnemar_matches_the_exact_binomial_test(fixed, broken, p):
    assert mcnemar(fixed, broken) == pytest.approx(p, rel=1e-12)


def test_mcnemar_stays_accurate_where_the_binomial_coefficients_overflow_floats():
    # C(4000, k) overflows a float; the exact value comes from Python's integers.
    fixed, broken = 2100, 1900
    n = fixed + broken
    exact = 2 * sum(math.comb(n, k) for k in range(broken + 1)) / 2**n
    assert mcnemar(fixed, broken) == pytest.approx(exact, rel=1e-9)
    assert 0.0 < mcnemar(6000, 4000) < 1e-50  # 20 standard deviations from even


@pytest.mark.parametrize(("fixed", "broken"), [(-1, 3), (2, -1), (1.5, 2)])
def test_mcnemar_refuses_counts_that_are_not_counts(fixed, broken):
    with pytest.raises(ValueError, match="counts of discordant pairs"):
        mcnemar(fixed, broken)
