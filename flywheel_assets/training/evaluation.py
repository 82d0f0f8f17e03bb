"""Scoring a model on eval cases, and pass rates by kind of case.

Every case is scored by likelihood, which a CPU can afford for every case: the model's mean
per-token log-probability of the expected answer (`loglik`). A regression case also scores the
answer users corrected (`contrast_loglik`) and passes when the model now ranks the correction
above it (`margin` > 0): preference accuracy on held-out pairs. A golden case is an answer users
accepted; the model it is compared against is the reference, and the candidate passes when it
finds the answer at least as likely as that model does (`compare_golden`).

On a seeded subset the model also generates an answer, which a judge scores against the
expected one. The default judge is rapidfuzz's normalized similarity; any function with the
same signature (for example an LLM-as-judge) can take its place by name.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz, process

from .likelihood import AnswerScore

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
    """`cases` (case_id, kind, holdout, input, expected) with output, score and passed added:
    passed when the judge's score of the generated output reaches `threshold`."""
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


def likelihood_scores(
    cases: pa.Table, expected: Sequence[AnswerScore], contrast: Sequence[AnswerScore | None]
) -> pa.Table:
    """`cases` with loglik, contrast_loglik, margin and passed added (one score per case). A case
    with a contrast passes when its margin is positive; one without (a golden case, or a
    regression case whose corrected answer is unknown) has a null margin, and `passed` is null
    until `compare_golden` decides it for golden cases (false for the others)."""
    if not len(expected) == len(contrast) == cases.num_rows:
        raise ValueError(
            f"{len(expected)} expected and {len(contrast)} contrast scores for "
            f"{cases.num_rows} eval cases"
        )
    loglik = [s.mean for s in expected]
    other = [None if s is None else s.mean for s in contrast]
    margin = [None if o is None else e - o for e, o in zip(loglik, other, strict=True)]
    scored = cases.append_column("loglik", pa.array(loglik, pa.float64()))
    scored = scored.append_column("contrast_loglik", pa.array(other, pa.float64()))
    scored = scored.append_column("margin", pa.array(margin, pa.float64()))
    kinds = cases["kind"].to_pylist()
    passed = [
        None if m is None and k == "golden" else (m is not None and m > 0)
        for m, k in zip(margin, kinds, strict=True)
    ]
    return scored.append_column("passed", pa.array(passed, pa.bool_()))


def compare_golden(
    reference: pa.Table, candidate: pa.Table, tolerance: float
) -> tuple[pa.Table, pa.Table]:
    """Both scored tables with `passed` decided for golden cases: the reference passes them (it
    is what the candidate is held to) and the candidate passes a golden case when its loglik is
    no more than `tolerance` (nats per token) below the reference's for the same case."""
    ref = dict(zip(reference["case_id"].to_pylist(), reference["loglik"].to_pylist(), strict=True))

    def decided(table: pa.Table, is_reference: bool) -> pa.Table:
        passed = table["passed"].to_pylist()
        rows = zip(
            table["case_id"].to_pylist(),
            table["kind"].to_pylist(),
            table["loglik"].to_pylist(),
            strict=True,
        )
        for i, (case, kind, loglik) in enumerate(rows):
            if kind != "golden":
                continue
            held = ref.get(case)
            if is_reference:
                passed[i] = True
            else:
                passed[i] = held is not None and loglik is not None and loglik >= held - tolerance
        index = table.schema.get_field_index("passed")
        return table.set_column(index, "passed", pa.array(passed, pa.bool_()))

    return decided(reference, True), decided(candidate, False)


def generation_subset(cases: pa.Table, n: int, seed: int) -> list[int]:
    """Row indices of at most `n` cases to generate answers for: a seeded sample drawn in turn
    from each (kind, holdout) group, so a small subset still holds every kind, in row order."""
    if n <= 0 or cases.num_rows == 0:
        return []
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(
        zip(cases["kind"].to_pylist(), cases["holdout"].to_pylist(), strict=True)
    ):
        groups.setdefault(key, []).append(i)
    rng = random.Random(seed)
    queues = [rng.sample(idx, len(idx)) for _, idx in sorted(groups.items())]
    chosen: list[int] = []
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop())
    return sorted(chosen)


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


def judge_rates(scored: pa.Table) -> dict[str, float | int]:
    """Cases generated and judged, and the share the judge passed (`judge_passed` not null)."""
    judged = [p for p in scored["judge_passed"].to_pylist() if p is not None]
    n = len(judged)
    return {"cases": n, "passed": sum(judged), "pass_rate": sum(judged) / n if n else 0.0}
