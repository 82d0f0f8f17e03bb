"""One retrain, step by step, without Dagster: read the pinned sets, resolve the base model, train,
and score a model on the eval cases."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ..catalog.curated import DPO_SET, EVAL_CASES, KTO_SET, SFT_SET
from ..curation.export import ExportFormat, export_rows
from ..lake.tables import Lake
from .evaluation import Judge, score
from .snapshot import Snapshot

EVAL_COLUMNS = ["case_id", "kind", "holdout", "input", "input_messages", "expected"]


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


def training_rows(lake: Lake, snapshot: Snapshot) -> dict[str, list[dict]]:
    """The pinned versions of the training sets, in the row formats the trainer takes."""
    out = {}
    for spec in (SFT_SET, DPO_SET, KTO_SET):
        version = snapshot.versions.get(spec.name, -1)
        table = lake.read(spec.name, version=version) if version >= 0 else None
        rows = list(export_rows(spec.name, table, ExportFormat.TRL)) if table is not None else []
        out[spec.name] = [_conversational(r) for r in rows]
    return out


def eval_cases(lake: Lake, snapshot: Snapshot, limit: int | None = None) -> pa.Table:
    """The pinned eval cases, ordered by case_id; `limit` keeps every kind represented."""
    version = snapshot.versions.get(EVAL_CASES.name, -1)
    table = (
        lake.read(EVAL_CASES.name, version=version, columns=EVAL_COLUMNS) if version >= 0 else None
    )
    if table is None:
        return EVAL_CASES.schema.empty_table().select(EVAL_COLUMNS)
    table = table.sort_by("case_id")
    if limit is not None and table.num_rows > limit:
        # Stratified by (kind, holdout), so a limit never drops the holdout or the golden cases.
        parts, groups = [], {}
        for i, key in enumerate(
            zip(table["kind"].to_pylist(), table["holdout"].to_pylist(), strict=True)
        ):
            groups.setdefault(key, []).append(i)
        share = limit / table.num_rows
        for idx in groups.values():
            parts.extend(idx[: max(1, round(len(idx) * share))])
        table = table.take(sorted(parts))
    return table


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
) -> pa.Table:
    """Generate an answer per eval case with base (+ adapter) and score it."""
    from .trainer import generate, load_for_inference

    if cases.num_rows == 0:
        outputs: list[str] = []
    else:
        model, tokenizer = load_for_inference(base_model, adapter_dir)
        outputs = generate(model, tokenizer, conversations(cases), max_new_tokens=max_new_tokens)
    return score(
        cases.select(["case_id", "kind", "holdout", "input", "expected"]), outputs, judge, threshold
    )


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
