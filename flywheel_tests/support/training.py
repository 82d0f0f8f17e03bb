"""Helpers for training tests: curated tables of a given size, and registry records."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from flywheel_assets.catalog.curated import DPO_SET, EVAL_CASES, KTO_SET, SFT_SET
from flywheel_assets.lake.tables import Lake
from flywheel_assets.training.registry import ModelRecord

ID = {SFT_SET: "example_id", DPO_SET: "pair_id", KTO_SET: "example_id", EVAL_CASES: "case_id"}


def write_curated(lake: Lake, sizes: dict[str, int]) -> dict[str, int]:
    """Rebuild the named curated tables whole with `n` rows each (as curation does); versions."""
    for spec in (SFT_SET, DPO_SET, KTO_SET, EVAL_CASES):
        n = sizes.get(spec.name)
        if n is None:
            continue
        rows = [
            {ID[spec]: f"{spec.name}-{i}", "ts": datetime(2026, 11, 20, tzinfo=UTC)}
            for i in range(n)
        ]
        lake.overwrite(spec, pa.Table.from_pylist(rows, schema=spec.schema))
    return {name: lake.stats(name).version for name in sizes}


def record(model_id: str, **over) -> ModelRecord:
    fields = {
        "model_id": model_id,
        "base_model": "tiny",
        "adapter_uri": f"/models/{model_id}",
        "method": "sft",
        "hyperparameters": {"epochs": 1},
        "snapshot_id": "snap-1",
        "dataset_versions": {"sft_set": 1},
        "metrics": {},
        "trigger": "manual",
        "run_key": "",
        "run_id": "run-1",
    }
    fields.update(over)
    return ModelRecord(**fields)
