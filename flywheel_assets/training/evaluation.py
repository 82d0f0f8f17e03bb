"""Scoring model answers on eval cases, and pass rates by kind of case.

The default judge is rapidfuzz's normalized similarity to the expected answer; any function with
the same signature (for example an LLM-as-judge) can take its place by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz, process

# A judge takes the eval cases' inputs, their expected answers and the model's outputs, and returns
# one score in [0, 1] per case; a case passes when its score reaches the threshold.
Judge = Callable[[Sequence[str], Sequence[str], Sequence[str]], Sequence[float]]


def similarity_judge(
    inputs: Sequence[str], expected: Sequence[str], outputs: Sequence[str]
) -> list[float]:
    """Normalized Levenshtein similarity of each output to its expected answer."""
    if not outputs:
        return []
    scores = process.cpdist(expected, outputs, scorer=fuzz.ratio, workers=-1)
    return [float(s) / 100.0 for s in scores]


def load_judge(spec: str | None) -> Judge:
    """The default judge, or a 'package.module:function' with the judge's signature."""
    if not spec:
        return similarity_judge
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"judge must be 'package.module:function', got {spec!r}")
    try:
        judge = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load judge {spec!r}: {exc}") from None
    if not callable(judge):
        raise ValueError(f"judge {spec!r} is not callable")
    return judge


def score(cases: pa.Table, outputs: Sequence[str], judge: Judge, threshold: float) -> pa.Table:
    """`cases` (case_id, kind, holdout, input, expected) with output, score and passed added."""
    if len(outputs) != cases.num_rows:
        raise ValueError(f"{len(outputs)} outputs for {cases.num_rows} eval cases")
    scores = list(judge(cases["input"].to_pylist(), cases["expected"].to_pylist(), list(outputs)))
    if len(scores) != cases.num_rows:
        raise ValueError(f"the judge returned {len(scores)} scores for {cases.num_rows} cases")
    bad = [s for s in scores if s is None or not 0.0 <= float(s) <= 1.0]
    if bad:
        raise ValueError(f"judge scores must lie in [0, 1]; got {bad[:3]}")
    scored = cases.append_column("output", pa.array(list(outputs), pa.string()))
    scored = scored.append_column("score", pa.array([float(s) for s in scores], pa.float64()))
    return scored.append_column("passed", pc.greater_equal(scored["score"], threshold))


def pass_rates(scored: pa.Table) -> dict[str, dict[str, float | int]]:
    """Cases and pass rate for all cases, the holdout, and golden and regression cases."""
    splits = {
        "all": pc.scalar(True),
        "holdout": pc.field("holdout"),
        "golden": pc.field("kind") == "golden",
        "regression": pc.field("kind") == "regression",
    }
    out = {}
    for name, expr in splits.items():
        part = scored.filter(expr) if name != "all" else scored
        n = part.num_rows
        passed = int(pc.sum(part["passed"].cast(pa.int64())).as_py() or 0) if n else 0
        out[name] = {"cases": n, "passed": passed, "pass_rate": passed / n if n else 0.0}
    return out
