"""The promotion gate: a candidate ships only if it is no worse on the holdout and breaks no golden
case that production passes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from .evaluation import pass_rates


@dataclass(frozen=True)
class GatePolicy:
    holdout_tolerance: float = 0.0  # how far below production's holdout pass rate is still fine
    min_holdout_cases: int = 1  # fewer holdout cases than this and nothing can be judged


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: list[str]
    before: dict
    after: dict
    broken_golden: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons)


def decide(before: pa.Table, after: pa.Table, policy: GatePolicy) -> GateDecision:
    """Compare the production model's scored cases (`before`) with the candidate's (`after`).

    Both tables hold the same case_ids with `kind`, `holdout` and `passed`.
    """
    rates_before, rates_after = pass_rates(before), pass_rates(after)
    reasons, promote = [], True
    holdout = rates_after["holdout"]
    if holdout["cases"] < policy.min_holdout_cases:
        promote = False
        reasons.append(
            f"{holdout['cases']} holdout cases, fewer than the {policy.min_holdout_cases} needed "
            "to judge"
        )
    else:
        b, a = rates_before["holdout"]["pass_rate"], holdout["pass_rate"]
        if a + 1e-12 < b - policy.holdout_tolerance:
            promote = False
            reasons.append(
                f"holdout pass rate {a:.3f} is below production's {b:.3f} "
                f"(tolerance {policy.holdout_tolerance:.3f})"
            )
        else:
            reasons.append(f"holdout pass rate {a:.3f} vs production's {b:.3f}")
    broken = broken_golden(before, after)
    if broken:
        promote = False
        reasons.append(
            f"{len(broken)} golden case(s) that production passes now fail: "
            + ", ".join(broken[:5])
            + (" ..." if len(broken) > 5 else "")
        )
    else:
        reasons.append("no golden case broken")
    return GateDecision(promote, reasons, rates_before, rates_after, broken)


def broken_golden(before: pa.Table, after: pa.Table) -> list[str]:
    golden = pc.field("kind") == "golden"
    passed_before = set(before.filter(golden & pc.field("passed"))["case_id"].to_pylist())
    failed_after = set(after.filter(golden & ~pc.field("passed"))["case_id"].to_pylist())
    return sorted(passed_before & failed_after)
