"""What each promotion improved: the held-out pass rate before and after, and the gate's interval
of the held-out gain, one row per promoted model, from the registry and its audit."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from ..catalog.models import MODEL_IMPROVEMENT
from ..training.registry import PROMOTED, RETIRED

BASE = "base"  # what a first promotion replaced: the base model, no adapter
DEFAULT_TARGET = 0.03


def improvement_rows(registry_rows: list[dict], *, audit: list[dict] | None = None) -> pa.Table:
    """One row per model ever promoted, oldest promotion first.

    `registry_rows` are model_registry rows (`metrics` decoded or as JSON text); `audit` the
    model_registry_audit rows, which say when each model was first promoted and which model that
    promotion retired. Without the audit, a model counts as promoted when its status is promoted
    or retired (only a promoted model is ever retired), and promoted_at is its last update while
    it is the one promoted.
    """
    first_promotion: dict[str, datetime] = {}
    retired_by: dict[str, str] = {}
    if audit is not None:
        events = sorted(audit, key=lambda a: (a["at"] is None, a["at"] or datetime.min))
        for a in events:
            if a["to_status"] == PROMOTED and a["model_id"] not in first_promotion:
                first_promotion[a["model_id"]] = a["at"]
        for a in events:
            # A promotion retires the model it replaces in the same commit, at the same time.
            if a["action"] == "promote" and a["to_status"] == RETIRED:
                for model_id, at in first_promotion.items():
                    if at == a["at"] and model_id != a["model_id"]:
                        retired_by.setdefault(model_id, a["model_id"])
    rows = []
    for model in registry_rows:
        model_id = model["model_id"]
        if audit is not None:
            if model_id not in first_promotion:
                continue
            promoted_at = first_promotion[model_id]
        elif model["status"] in (PROMOTED, RETIRED):
            promoted_at = model["updated_at"] if model["status"] == PROMOTED else None
        else:
            continue
        rows.append(_row(model_id, _metrics(model), promoted_at, retired_by.get(model_id)))
    rows.sort(key=lambda r: (r["promoted_at"] is None, r["promoted_at"] or 0, r["model_id"]))
    return pa.Table.from_pylist(rows, schema=MODEL_IMPROVEMENT.schema)


def _row(model_id: str, metrics: dict, promoted_at, retired: str | None) -> dict:
    gate = _dict(metrics.get("gate"))
    before = _holdout_rate(metrics.get("before") or gate.get("before"))
    after = _holdout_rate(metrics.get("after") or gate.get("after"))
    gain = after - before if before is not None and after is not None else None
    interval = _dict(gate.get("interval"))
    mean = _float(interval.get("mean"))
    return {
        "model_id": model_id,
        "replaced_model_id": metrics.get("production_model") or retired or BASE,
        "promoted_at": promoted_at,
        "holdout_pass_rate_before": before,
        "holdout_pass_rate_after": after,
        "pass_rate_gain": gain,
        "relative_gain": gain / before if gain is not None and before else None,
        "mean_gain": _float(interval.get("mean")),
        "gain_low": _float(interval.get("low")),
        "gain_high": _float(interval.get("high")),
        "metric": gate.get("metric"),
        "holdout_cases": interval["n"] if isinstance(interval.get("n"), int) else None,
        "likelihood_gain": (
            math.expm1(mean) if gate.get("metric") == "loglik" and mean is not None else None
        ),
    }


def _metrics(model: dict) -> dict:
    metrics = model.get("metrics") or {}
    if isinstance(metrics, str):
        metrics = json.loads(metrics or "{}")
    return _dict(metrics)


def _holdout_rate(rates: dict | None) -> float | None:
    # A split with no cases has no rate (pass_rates() reports 0.0 for it).
    holdout = _dict(_dict(rates).get("holdout"))
    if not holdout.get("cases"):
        return None
    return _float(holdout.get("pass_rate"))


def _dict(value) -> dict:
    # Metrics written by an older gate may lack a part or hold it in another shape: no figure.
    return value if isinstance(value, dict) else {}


def _float(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class TargetVerdict:
    passed: bool
    message: str
    model_id: str | None = None
    gain: float | None = None  # what is held to the target: relative gain, or points without one
    measure: str | None = None  # "relative_gain" or "pass_rate_gain"


def meets_target(improvement: pa.Table, target: float = DEFAULT_TARGET) -> TargetVerdict:
    """Whether the latest promotion's held-out gain is at least `target`: the relative gain of the
    holdout pass rate, or the gain in points where the rate before was 0."""
    if improvement.num_rows == 0:
        return TargetVerdict(True, "no promoted model yet")
    rows = improvement.to_pylist()
    dated = [r for r in rows if r["promoted_at"] is not None]
    latest = max(dated, key=lambda r: (r["promoted_at"], r["model_id"])) if dated else rows[-1]
    model_id = latest["model_id"]
    before, after = latest["holdout_pass_rate_before"], latest["holdout_pass_rate_after"]
    if before is None or after is None:
        return TargetVerdict(
            False,
            f"{model_id}, the latest promoted model, has no held-out pass rates to judge",
            model_id,
        )
    relative = latest["relative_gain"]
    # A gate on log-likelihood measured the gain itself; the pass rate is the fallback.
    if latest.get("likelihood_gain") is not None:
        measure, gain = "likelihood_gain", latest["likelihood_gain"]
    elif relative is not None:
        measure, gain = "relative_gain", relative
    else:
        measure, gain = "pass_rate_gain", latest["pass_rate_gain"]
    passed = gain >= target - 1e-12  # a gain of exactly the target meets it
    shown = {
        "likelihood_gain": f"held-out answers {gain:+.1%} likelier per token",
        "relative_gain": f"{gain:+.1%} relative",
        "pass_rate_gain": f"{gain * 100:+.1f} points (production passed none)",
    }[measure]
    interval = ""
    if latest["mean_gain"] is not None:
        interval = (
            f"; gate: mean held-out {latest['metric']} gain {latest['mean_gain']:+.3f} "
            f"(CI {latest['gain_low']:+.3f} to {latest['gain_high']:+.3f})"
        )
    message = (
        f"{model_id} (replacing {latest['replaced_model_id']}): held-out pass rate "
        f"{before:.3f} -> {after:.3f}, {shown}; target {target:+.1%}: "
        f"{'met' if passed else 'not met'}{interval}"
    )
    return TargetVerdict(passed, message, model_id, gain, measure)
