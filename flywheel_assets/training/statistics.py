"""The gate's statistics: a paired bootstrap interval of a mean per-case gain, and the exact
McNemar test on pass/fail flips. Plain numpy; deterministic for a seed."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

# Resampled values drawn at once: bounds memory (an int32 index and a float64 gather of this many
# cells, about 48 MB together) whatever the number of cases.
CHUNK_CELLS = 4_000_000
# Up to this many discordant pairs the McNemar p-value is summed in exact integers.
EXACT_PAIRS = 2_000


@dataclass(frozen=True)
class Interval:
    """The mean of `n` paired differences and its bootstrap percentile interval."""

    mean: float
    low: float
    high: float
    confidence: float
    resamples: int
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def paired_bootstrap(
    gains: np.ndarray, *, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of the mean of per-case differences (after - before).

    Each resample draws n cases with replacement; the interval is the central `confidence` share
    of the resampled means. The same gains, seed and resamples give the same interval.
    """
    values = np.asarray(gains, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"gains must be one-dimensional, got shape {values.shape}")
    if values.size == 0:
        raise ValueError("no paired differences to bootstrap")
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise ValueError(f"{bad} of {values.size} paired differences are not finite")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    n = values.size
    if n >= 2**31:
        raise ValueError(f"{n} paired differences: more than a 32-bit index can resample")
    rng = np.random.default_rng(seed)
    rows = max(1, CHUNK_CELLS // n)
    means = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, rows):
        stop = min(start + rows, resamples)
        index = rng.integers(0, n, size=(stop - start, n), dtype=np.int32)
        means[start:stop] = values[index].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2, 1.0 - alpha / 2])
    return Interval(
        mean=float(values.mean()),
        low=float(low),
        high=float(high),
        confidence=float(confidence),
        resamples=int(resamples),
        n=int(n),
    )


def mcnemar(fixed: int, broken: int) -> float:
    """Exact two-sided McNemar p-value: the binomial test that the discordant pairs (cases that
    went fail -> pass, `fixed`, and pass -> fail, `broken`) split evenly.

    p = min(1, 2 * P(X <= min(fixed, broken))) for X ~ Binomial(fixed + broken, 1/2).
    """
    if not all(isinstance(c, int | np.integer) and c >= 0 for c in (fixed, broken)):
        raise ValueError(
            f"fixed and broken must be counts of discordant pairs (integers >= 0), "
            f"got {fixed!r} and {broken!r}"
        )
    n, m = int(fixed) + int(broken), min(int(fixed), int(broken))
    if n == 0 or 2 * m >= n:
        return 1.0
    if n <= EXACT_PAIRS:
        tail = sum(math.comb(n, k) for k in range(m + 1))
        return min(1.0, 2 * tail / 2**n)
    # log C(n, k) built up from log C(n, 0) = 0 by the ratio C(n, k+1) / C(n, k) = (n-k) / (k+1),
    # then summed in log space: no term overflows or underflows on the way.
    k = np.arange(m, dtype=np.float64)
    log_terms = np.concatenate([[0.0], np.cumsum(np.log((n - k) / (k + 1)))])
    top = log_terms.max()
    log_tail = top + math.log(np.exp(log_terms - top).sum()) - n * math.log(2.0)
    return min(1.0, math.exp(math.log(2.0) + log_tail))
