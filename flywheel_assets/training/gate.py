"""The promotion gate: a candidate ships only when its held-out gain over production is
statistically clear (a paired bootstrap interval above `min_gain`) and it breaks no more golden
cases that production passes than the policy allows."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .evaluation import pass_rates
from .statistics import mcnemar, paired_bootstrap

METRICS = ("margin", "loglik")
REQUIRED = ("case_id", "kind", "holdout", "passed")
KINDS = ("golden", "regression")
_SHOWN_IDS = 5  # case ids named in a reason; the record keeps them all


@dataclass(frozen=True, kw_only=True)
class GatePolicy:
    """What a candidate must show to replace production."""

    confidence: float = 0.95  # of the bootstrap interval
    min_gain: float = 0.0  # the interval's lower bound must exceed this
    min_holdout_cases: int = 10  # fewer scorable held-out cases and nothing can be judged
    max_golden_breaks: int = 0  # golden cases production passes that the candidate may fail
    metric: str = "margin"  # the per-case column the paired gain is computed on
    seed: int = 0
    resamples: int = 10_000
    # A second per-case column the candidate must not be significantly worse on (its interval
    # wholly below 0 rejects): by default the regression cases' preference for the correction
    # over the corrected answer, which a gain in likelihood alone can hide.
    guard_metric: str | None = "margin"

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.guard_metric is not None and self.guard_metric not in METRICS:
            raise ValueError(
                f"guard_metric must be one of {METRICS} or None, got {self.guard_metric!r}"
            )
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must lie strictly between 0 and 1, got {self.confidence}")
        if self.min_holdout_cases < 1:
            raise ValueError(f"min_holdout_cases must be at least 1, got {self.min_holdout_cases}")
        if self.max_golden_breaks < 0:
            raise ValueError(f"max_golden_breaks must be >= 0, got {self.max_golden_breaks}")
        if self.resamples < 1:
            raise ValueError(f"resamples must be at least 1, got {self.resamples}")


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: list[str]
    before: dict  # pass_rates() of production
    after: dict  # pass_rates() of the candidate
    broken_golden: list[str]  # golden cases production passes and the candidate fails
    interval: dict | None  # Interval.as_dict() of the mean held-out gain; None: nothing scorable
    flips: dict  # {"fixed": [ids], "broken": [ids], "counts": {"fixed": {...}, "broken": {...}}}
    mcnemar_p: float | None  # on the held-out flips; None: no held-out case
    test: str  # the method, in words
    metric: str
    holdout_cases: int  # scorable held-out cases the interval is over
    unscored: list[str]  # held-out cases left out: no score for one of the models
    policy: dict
    guard: dict | None = None  # Interval.as_dict() on the guard metric; None: not computed

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons)

    def record(self) -> dict:
        """Everything the decision rests on, as JSON-able values: the registry's metrics["gate"]."""
        return {
            "promote": self.promote,
            "summary": self.summary,
            "reasons": list(self.reasons),
            "test": self.test,
            "metric": self.metric,
            "policy": dict(self.policy),
            "interval": dict(self.interval) if self.interval is not None else None,
            "guard": dict(self.guard) if self.guard is not None else None,
            "holdout_cases": self.holdout_cases,
            "unscored": list(self.unscored),
            "flips": {
                "fixed": list(self.flips["fixed"]),
                "broken": list(self.flips["broken"]),
                "counts": {k: dict(v) for k, v in self.flips["counts"].items()},
            },
            "mcnemar_p": self.mcnemar_p,
            "broken_golden": list(self.broken_golden),
            "before": self.before,
            "after": self.after,
        }


def decide(before: pa.Table, after: pa.Table, policy: GatePolicy | None = None) -> GateDecision:
    """Compare production's scored cases (`before`) with the candidate's (`after`).

    Both tables hold the same case_ids (matched by id, in any order) with `kind`, `holdout`,
    `passed` and the policy's metric column (`margin` or `loglik`; null where a case could not
    be scored). The gain of a held-out case is after - before on that metric.
    """
    policy = policy or GatePolicy()
    paired = _paired(before, after, policy.metric)
    ids, kinds, holdout = paired["case_id"], paired["kind"], paired["holdout"]
    b, a = paired["before"], paired["after"]
    scorable = holdout & np.isfinite(b) & np.isfinite(a)
    unscored = [ids[i] for i in np.flatnonzero(holdout & ~scorable)]
    n = int(scorable.sum())
    interval = (
        paired_bootstrap(
            a[scorable] - b[scorable],
            confidence=policy.confidence,
            resamples=policy.resamples,
            seed=policy.seed,
        )
        if n
        else None
    )

    reasons: list[str] = []
    promote = True
    gain = _gain_sentence(policy.metric, interval) if interval else None
    if n < policy.min_holdout_cases:
        promote = False
        reasons.append(
            f"{n} scorable held-out case(s), fewer than the {policy.min_holdout_cases} needed "
            "to judge" + (f"; {gain}" if gain else "")
        )
    else:
        verdict, passed = _verdict(interval, policy, gain)
        promote = promote and passed
        reasons.append(verdict)
    if unscored:
        reasons.append(
            f"{len(unscored)} held-out case(s) could not be scored and are left out: "
            + _ids(unscored)
        )
    guard = _guard(before, after, policy)
    if guard is not None:
        sentence = _gain_sentence(policy.guard_metric, guard)
        if guard.high < 0:
            promote = False
            reasons.append(
                f"the candidate is worse on {policy.guard_metric}: {sentence} lies below 0"
            )
        else:
            reasons.append(f"not worse on {policy.guard_metric}: {sentence}")

    broken = broken_golden(before, after)
    if len(broken) > policy.max_golden_breaks:
        promote = False
        reasons.append(
            f"{len(broken)} golden case(s) that production passes now fail, more than the "
            f"{policy.max_golden_breaks} allowed: " + _ids(broken)
        )
    elif broken:
        reasons.append(
            f"{len(broken)} golden case(s) that production passes now fail, within the "
            f"{policy.max_golden_breaks} allowed: " + _ids(broken)
        )
    else:
        reasons.append("no golden case that production passes fails")

    flips = _flips(ids, kinds, holdout, paired["passed_before"], paired["passed_after"])
    held_fixed, held_broken = (
        flips["counts"]["fixed"]["holdout"],
        flips["counts"]["broken"]["holdout"],
    )
    p = mcnemar(held_fixed, held_broken) if holdout.any() else None
    if p is not None:
        reasons.append(
            f"held-out pass/fail flips: {held_fixed} fixed, {held_broken} broken "
            f"(exact McNemar p = {p:.3g})"
        )
    return GateDecision(
        promote=promote,
        reasons=reasons,
        before=pass_rates(before),
        after=pass_rates(after),
        broken_golden=broken,
        interval=interval.as_dict() if interval else None,
        flips=flips,
        mcnemar_p=p,
        test=(
            f"paired bootstrap: percentile {_pct(policy.confidence)} interval of the mean held-out "
            f"{policy.metric} gain over {policy.resamples} resamples (seed {policy.seed}); "
            "exact McNemar test on the held-out pass/fail flips"
        ),
        metric=policy.metric,
        holdout_cases=n,
        unscored=unscored,
        policy=asdict(policy),
        guard=guard.as_dict() if guard else None,
    )


def _guard(before: pa.Table, after: pa.Table, policy: GatePolicy):
    """The interval of the held-out gain on the guard metric, where both tables have it and at
    least two held-out cases are scored on it; else None."""
    metric = policy.guard_metric
    if metric is None or metric == policy.metric:
        return None
    if metric not in before.column_names or metric not in after.column_names:
        return None
    paired = _paired(before, after, metric)
    b, a = paired["before"], paired["after"]
    scorable = paired["holdout"] & np.isfinite(b) & np.isfinite(a)
    if scorable.sum() < 2:
        return None
    return paired_bootstrap(
        a[scorable] - b[scorable],
        confidence=policy.confidence,
        resamples=policy.resamples,
        seed=policy.seed,
    )


def broken_golden(before: pa.Table, after: pa.Table) -> list[str]:
    """Golden cases production passes and the candidate fails, by case_id."""
    golden = pc.field("kind") == "golden"
    passed_before = set(before.filter(golden & pc.field("passed"))["case_id"].to_pylist())
    failed_after = set(after.filter(golden & ~pc.field("passed"))["case_id"].to_pylist())
    return sorted(passed_before & failed_after)


def _verdict(interval, policy: GatePolicy, gain: str) -> tuple[str, bool]:
    low, high = interval.low, interval.high
    if low > policy.min_gain:
        if policy.min_gain == 0:
            return f"significant: {gain} lies above 0", True
        verdict = f"significant: {gain} lies above the required {policy.min_gain:+.3f}"
        if high < 0:  # a negative min_gain admits a small, clear loss
            verdict += "; the candidate is worse than production, within that allowance"
        return verdict, True
    if high < 0:
        return f"the candidate is worse: {gain} lies below 0", False
    if low <= 0 <= high:
        return f"not significant: {gain} includes 0", False
    return (
        f"not enough gain: {gain} does not lie above the required {policy.min_gain:+.3f}",
        False,
    )


def _gain_sentence(metric: str, interval) -> str:
    return (
        f"held-out {metric} gain {interval.mean:+.3f} ({_pct(interval.confidence)} CI "
        f"{interval.low:+.3f} to {interval.high:+.3f}, paired bootstrap over {interval.n} cases)"
    )


def _pct(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def _ids(ids: list[str]) -> str:
    return ", ".join(ids[:_SHOWN_IDS]) + (" ..." if len(ids) > _SHOWN_IDS else "")


def _paired(before: pa.Table, after: pa.Table, metric: str) -> dict:
    """Both tables' cases aligned by case_id (sorted, so row order never changes a result)."""
    for name, table in (("before", before), ("after", after)):
        missing = [c for c in (*REQUIRED, metric) if c not in table.column_names]
        if missing:
            raise ValueError(f"the {name} table lacks column(s) {', '.join(missing)}")
        ids = table["case_id"].to_pylist()
        if None in ids:
            raise ValueError(f"the {name} table has a case without a case_id")
        repeated = sorted(c for c, k in Counter(ids).items() if k > 1)
        if repeated:
            raise ValueError(f"the {name} table repeats case_id(s) {_ids(repeated)}")
    only_before = sorted(set(before["case_id"].to_pylist()) - set(after["case_id"].to_pylist()))
    only_after = sorted(set(after["case_id"].to_pylist()) - set(before["case_id"].to_pylist()))
    if only_before or only_after:
        raise ValueError(
            "production and candidate were scored on different cases: "
            f"only production has {_ids(only_before) or 'none'}; "
            f"only the candidate has {_ids(only_after) or 'none'}"
        )
    b, a = before.sort_by("case_id"), after.sort_by("case_id")
    ids = b["case_id"].to_pylist()
    for column in ("kind", "holdout"):
        pairs = zip(ids, b[column].to_pylist(), a[column].to_pylist(), strict=True)
        differ = [i for i, x, y in pairs if x != y]
        if differ:
            raise ValueError(
                f"production and candidate disagree on the {column} of case(s) {_ids(differ)}"
            )
    return {
        "case_id": ids,
        "kind": b["kind"].to_pylist(),
        "holdout": np.array([bool(h) for h in b["holdout"].to_pylist()]),
        "before": _floats(b[metric]),
        "after": _floats(a[metric]),
        "passed_before": b["passed"].to_pylist(),
        "passed_after": a["passed"].to_pylist(),
    }


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    # Nulls become NaN, which the gate counts as unscored.
    return np.array([np.nan if v is None else float(v) for v in column.to_pylist()], np.float64)


def _flips(ids, kinds, holdout, passed_before, passed_after) -> dict:
    """Cases that went fail -> pass (fixed) and pass -> fail (broken); a case without a verdict
    from both models is neither."""
    out: dict = {"fixed": [], "broken": []}
    counts = {f: {"golden": 0, "regression": 0, "holdout": 0} for f in ("fixed", "broken")}
    for i, case_id in enumerate(ids):
        pb, pa_ = passed_before[i], passed_after[i]
        if pb is None or pa_ is None or pb == pa_:
            continue
        flip = "fixed" if pa_ else "broken"
        out[flip].append(case_id)
        if kinds[i] in KINDS:
            counts[flip][kinds[i]] += 1
        counts[flip]["holdout"] += int(holdout[i])
    out["counts"] = counts
    return out
