"""One retrain, step by step, without Dagster: read the pinned sets, resolve the base model, train,
and score a model on the eval cases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.curated import DPO_SET, EVAL_CASES, KTO_SET, SFT_SET, TAGGED_ROWS
from ..curation.export import ExportFormat, export_rows
from ..lake.tables import Lake
from .evaluation import Judge, generation_subset, likelihood_scores, score
from .snapshot import Snapshot

EVAL_COLUMNS = [
    "case_id",
    "kind",
    "holdout",
    "input",
    "input_messages",
    "expected",
    "source_request_id",
]
SCORED_COLUMNS = ["case_id", "kind", "holdout", "input", "expected", "contrast"]


def model_store_root(configured: str | None, lake: Lake) -> Path:
    """Where adapters (and the tiny base) are kept: configured, else `models/` under the lake."""
    root = configured or f"{lake.root.rstrip('/')}/models"
    if "://" in root:
        raise ValueError(
            f"model store {root!r}: adapters are written with local file APIs; set "
            "training.model_store to a local or mounted folder"
        )
    # Absolute, so the registry's adapter URIs mean the same from any working directory.
    return Path(root).absolute()


def model_id_for(snapshot: Snapshot, run_id: str) -> str:
    # The snapshot's date makes ids sort by time; the run id makes them unique.
    return f"ft-{snapshot.snapshot_id.split('-')[1]}-{run_id[:8]}"


def training_rows(
    lake: Lake, snapshot: Snapshot, cluster_weight: int = 1, correction_weight: int = 1
) -> dict[str, list[dict]]:
    """The pinned versions of the training sets, in the row formats the trainer takes.

    SFT rows whose target is a correction or an edit (not the model's own accepted answer) count
    `correction_weight` times: they are what the model got wrong, and a few words often separate
    them from what it said. A snapshot that targets a failure cluster trains on the cluster's
    rows `cluster_weight` times, so the adapter spends more of its steps on the gap that
    started it.
    """
    members = _cluster_members(lake, snapshot) if cluster_weight > 1 else set()
    out = {}
    for spec in (SFT_SET, DPO_SET, KTO_SET):
        version = snapshot.versions.get(spec.name, -1)
        table = lake.read(spec.name, version=version) if version >= 0 else None
        rows = list(export_rows(spec.name, table, ExportFormat.TRL)) if table is not None else []
        rows = [_conversational(r) for r in rows]
        if spec is SFT_SET and correction_weight > 1 and table is not None:
            corrected = [s != "response" for s in table["target_source"].to_pylist()]
            rows += [r for r, c in zip(rows, corrected, strict=True) if c] * (correction_weight - 1)
        if members and table is not None:
            sources = table["source_request_ids"].to_pylist()
            hit = [bool(members.intersection(ids or ())) for ids in sources]
            rows += [r for r, h in zip(rows, hit, strict=True) if h] * (cluster_weight - 1)
        out[spec.name] = rows
    return out


def _cluster_members(lake: Lake, snapshot: Snapshot) -> set[str]:
    if not snapshot.target_cluster:
        return set()
    from ..curation.failures import UnknownCluster, cluster_rows

    try:
        return cluster_rows(lake, snapshot.target_cluster)
    except UnknownCluster:
        # Rebuilt away since the sensor fired (its prompts changed): train on everything evenly.
        return set()


def eval_cases(lake: Lake, snapshot: Snapshot, limit: int | None = None) -> pa.Table:
    """The pinned eval cases, ordered by case_id, each with its contrast answer; `limit` keeps at
    most that many (see `limited`)."""
    version = snapshot.versions.get(EVAL_CASES.name, -1)
    table = (
        lake.read(EVAL_CASES.name, version=version, columns=EVAL_COLUMNS) if version >= 0 else None
    )
    if table is None:
        table = EVAL_CASES.schema.empty_table().select(EVAL_COLUMNS)
    table = limited(table.sort_by("case_id"), limit)
    return with_contrasts(table, corrected_answers(lake, table))


def limited(cases: pa.Table, limit: int | None) -> pa.Table:
    """At most `limit` cases, in case_id order: the held-out and regression cases first (the gate
    and the flips are judged on them), then golden ones; within each, spread evenly."""
    if limit is None or cases.num_rows <= limit:
        return cases
    if limit < 0:
        raise ValueError(f"the eval case limit must be 0 or more, got {limit}")
    kinds, held = cases["kind"].to_pylist(), cases["holdout"].to_pylist()
    first = [i for i in range(cases.num_rows) if held[i] or kinds[i] == "regression"]
    rest = [i for i in range(cases.num_rows) if not (held[i] or kinds[i] == "regression")]
    chosen = _spread(first, limit) + _spread(rest, max(0, limit - len(first)))
    return cases.take(pa.array(sorted(chosen), pa.int64()))


def _spread(indices: list[int], k: int) -> list[int]:
    """`k` of `indices`, evenly spaced (all of them when there are no more than `k`)."""
    if k >= len(indices):
        return indices
    return [indices[(j * len(indices)) // k] for j in range(k)]


def corrected_answers(lake: Lake, cases: pa.Table) -> dict[str, str]:
    """The answer each regression case's user or operator corrected, by source request id, as
    tagged_rows holds it now (redacted, and without any erased user's rows)."""
    wanted = cases.filter(pc.field("kind") == "regression")["source_request_id"]
    wanted = [r for r in wanted.to_pylist() if r]
    if not wanted:
        return {}
    rows = lake.read(
        TAGGED_ROWS.name,
        columns=["request_id", "response"],
        filter=pc.field("request_id").isin(wanted),
    )
    if rows is None:
        return {}
    return {
        r: a
        for r, a in zip(rows["request_id"].to_pylist(), rows["response"].to_pylist(), strict=True)
        if a
    }


def with_contrasts(cases: pa.Table, corrected: dict[str, str]) -> pa.Table:
    """`cases` with the answer each regression case should rank below its expected one: the
    answer its user or operator corrected (null for golden cases, and where it is not known)."""
    requests = cases["source_request_id"].to_pylist()
    expected = cases["expected"].to_pylist()
    contrast = [
        None if kind != "regression" or corrected.get(r or "") in (None, e) else corrected[r]
        for kind, r, e in zip(cases["kind"].to_pylist(), requests, expected, strict=True)
    ]
    return cases.append_column("contrast", pa.array(contrast, pa.string()))


def conversations(cases: pa.Table) -> list[list[dict]]:
    """The prompt of each eval case as chat messages (the plain input as one user turn)."""
    out = []
    for text, messages in zip(
        cases["input"].to_pylist(), cases["input_messages"].to_pylist(), strict=True
    ):
        out.append(list(messages) if messages else [{"role": "user", "content": text}])
    return out


def corpus(rows: dict[str, list[dict]], cases: pa.Table) -> list[str]:
    """Every text of a snapshot: what the tiny base model's tokenizer is trained on."""
    texts = []
    for row in rows.get(SFT_SET.name, []):
        texts.extend(m["content"] or "" for m in row["messages"])
    for name in (DPO_SET.name, KTO_SET.name):
        for row in rows.get(name, []):
            texts.extend(m["content"] or "" for m in row["prompt"])
            texts.extend(str(row.get(k) or "") for k in ("chosen", "rejected", "completion"))
    texts.extend(cases["input"].to_pylist())
    texts.extend(cases["expected"].to_pylist())
    return [t for t in texts if t]


def evaluate(
    base_model: str,
    adapter_dir: str | None,
    cases: pa.Table,
    *,
    judge: Judge,
    threshold: float,
    max_new_tokens: int,
    generate_cases: int,
    seed: int = 0,
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
) -> pa.Table:
    """Score base (+ adapter) on every case (`with_contrasts` cases) by likelihood, and generate
    and judge answers on a seeded subset of `generate_cases` of them.

    Returns SCORED_COLUMNS plus loglik, contrast_loglik, margin and passed (likelihood), and
    output, score and judge_passed (null outside the subset). `progress(label, total)` returns a
    callback the scoring reports each finished batch's size to.
    """
    from .likelihood import AnswerScore, answer_logprobs
    from .trainer import generate, load_for_inference

    cases = cases.select(SCORED_COLUMNS + ["input_messages"])
    n = cases.num_rows
    expected: list[AnswerScore] = []
    contrast: list[AnswerScore | None] = [None] * n
    subset: list[int] = []
    outputs: list[str] = []
    if n:
        model, tokenizer = load_for_inference(base_model, adapter_dir)
        convs = conversations(cases)
        answers = cases["expected"].to_pylist()
        others = cases["contrast"].to_pylist()
        ranked = [i for i in range(n) if others[i] is not None]
        # One pass over expected and contrast answers together: batches of similar length.
        scores = answer_logprobs(
            model,
            tokenizer,
            convs + [convs[i] for i in ranked],
            answers + [others[i] for i in ranked],
            progress=progress("scoring answers", n + len(ranked)) if progress else None,
        )
        expected = scores[:n]
        for i, s in zip(ranked, scores[n:], strict=True):
            contrast[i] = s
        subset = generation_subset(cases, generate_cases, seed)
        if subset:
            outputs = generate(
                model, tokenizer, [convs[i] for i in subset], max_new_tokens=max_new_tokens
            )
    scored = likelihood_scores(cases.drop_columns(["input_messages"]), expected, contrast)
    judged = score(
        cases.take(pa.array(subset, pa.int64())).select(SCORED_COLUMNS), outputs, judge, threshold
    )
    at = {i: k for k, i in enumerate(subset)}
    for name, column in (("output", "output"), ("score", "score"), ("judge_passed", "passed")):
        values = judged[column].to_pylist()
        full = [values[at[i]] if i in at else None for i in range(n)]
        scored = scored.append_column(name, pa.array(full, judged.schema.field(column).type))
    return scored


def _conversational(row: dict) -> dict:
    """DPO and KTO rows with the prompt as messages and the answers as plain text."""
    if "messages" in row:
        return row
    out = dict(row)
    prompt = row["prompt"]
    out["prompt"] = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    for key in ("chosen", "rejected", "completion"):
        value = row.get(key)
        if isinstance(value, list):
            out[key] = value[-1]["content"] if value else ""
    return out
