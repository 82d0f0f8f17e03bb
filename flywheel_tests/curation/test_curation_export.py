"""Export of the curated sets to JSON Lines, checked by loading them the way trainers do."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from flywheel_assets.catalog.curated import DPO_SET, EVAL_CASES, KTO_SET, SFT_SET
from flywheel_assets.curation.export import (
    EXPORTABLE,
    ExportFormat,
    ExportResult,
    export_rows,
    export_table,
)
from flywheel_assets.lake.tables import Lake, TableSpec

# No network here: datasets and transformers must not try the Hub.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

from datasets import load_dataset  # noqa: E402
from trl.data_utils import is_conversational  # noqa: E402

TS = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def curated(spec: TableSpec, rows: list[dict]) -> pa.Table:
    """Rows of `spec` with provenance filled in and every other unnamed column null."""
    full = []
    for i, row in enumerate(rows):
        base = {
            "source_request_ids": [f"req-{i}"],
            "model_version": "m-1",
            "feedback_kinds": ["thumbs"],
            "source_versions": json.dumps({"redacted_logs": 3, "redacted_feedback": 2}),
            "_curated_at": TS,
            "ts": TS,
            "user_hash": f"u{i}",
            "normalized_prompt": f"p{i}",
        }
        full.append({name: {**base, **row}.get(name) for name in spec.schema.names})
    return pa.Table.from_pylist(full, schema=spec.schema)


def sft(example_id: str, messages: list[dict]) -> dict:
    return {
        "example_id": example_id,
        "messages": messages,
        "prompt": messages[-2]["content"] if len(messages) > 1 else None,
        "completion": messages[-1]["content"],
        "target_source": "response",
    }


def dpo(pair_id: str, prompt: str, chosen: str, rejected: str, messages=None) -> dict:
    return {
        "pair_id": pair_id,
        "prompt": prompt,
        "prompt_messages": messages,
        "chosen": chosen,
        "rejected": rejected,
        "similarity": 0.5,
        "pair_source": "correction",
    }


def kto(example_id: str, prompt: str, completion: str, label: bool, messages=None) -> dict:
    return {
        "example_id": example_id,
        "prompt": prompt,
        "prompt_messages": messages,
        "completion": completion,
        "label": label,
    }


def read_jsonl(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def load(path: Path):
    return load_dataset("json", data_files=str(path), split="train")


SFT_ROWS = [
    sft("sft-b", [msg("user", "Wie spät ist es?"), msg("assistant", "Es ist zwölf Uhr.")]),
    sft(
        "sft-a",
        [
            msg("system", "Be brief."),
            msg("user", "Capital of France?"),
            msg("assistant", "Paris."),
        ],
    ),
]


def test_sft_trl_loads_as_conversational(lake: Lake, tmp_path: Path) -> None:
    lake.append(SFT_SET, curated(SFT_SET, SFT_ROWS))
    result = export_table(lake, "sft_set", tmp_path / "out" / "sft.jsonl")

    # Version 0 is the empty table the lake creates; the append is version 1.
    assert result == ExportResult(tmp_path / "out" / "sft.jsonl", 2, 1, "sft_set")
    raw = result.path.read_text(encoding="utf-8")
    assert "Wie spät" in raw  # UTF-8, not \u escapes
    assert [p.name for p in result.path.parent.iterdir()] == ["sft.jsonl"]  # no temp left
    umask = os.umask(0)
    os.umask(umask)
    assert result.path.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not 0600

    ds = load(result.path)
    assert ds.column_names == ["messages"]
    # Ordered by example_id, so the same version always gives the same file.
    assert ds[0]["messages"] == SFT_ROWS[1]["messages"]
    assert ds[1]["messages"][-1] == msg("assistant", "Es ist zwölf Uhr.")
    assert all(is_conversational(row) for row in ds)


def test_sft_openai_roles(lake: Lake, tmp_path: Path) -> None:
    lake.append(SFT_SET, curated(SFT_SET, SFT_ROWS))
    result = export_table(lake, "sft_set", tmp_path / "sft.jsonl", fmt=ExportFormat.OPENAI)

    rows = read_jsonl(result.path)
    assert len(rows) == 2
    for row in rows:
        assert set(row) == {"messages"}
        assert {m["role"] for m in row["messages"]} <= {"system", "user", "assistant"}
        assert row["messages"][-1]["role"] == "assistant"
    assert load(result.path).column_names == ["messages"]


def test_sft_tool_turns_are_left_out_of_openai_but_kept_by_trl(lake: Lake, tmp_path: Path) -> None:
    tool = sft(
        "sft-tool",
        [msg("user", "Weather?"), msg("tool", '{"temp": 21}'), msg("assistant", "21 degrees.")],
    )
    lake.append(SFT_SET, curated(SFT_SET, [*SFT_ROWS, tool]))
    out = tmp_path / "sft.jsonl"
    out.write_text("earlier export\n", encoding="utf-8")

    result = export_table(lake, "sft_set", out, fmt="openai")
    assert (result.rows, result.skipped) == (2, 1)
    assert all(
        {m["role"] for m in row["messages"]} <= {"system", "user", "assistant"}
        for row in read_jsonl(out)
    )
    assert [p.name for p in tmp_path.iterdir() if p.name != "lake"] == ["sft.jsonl"]
    # Row by row, a tool turn still cannot be written in the OpenAI format.
    with pytest.raises(ValueError, match=r"sft-tool.*tool"):
        list(export_rows("sft_set", lake.read("sft_set"), ExportFormat.OPENAI))

    assert export_table(lake, "sft_set", out).rows == 3
    assert [m["role"] for m in read_jsonl(out)[-1]["messages"]] == ["user", "tool", "assistant"]


def test_sft_row_without_assistant_target_raises(lake: Lake) -> None:
    table = curated(SFT_SET, [sft("sft-x", [msg("user", "hi"), msg("user", "hello?")])])
    with pytest.raises(ValueError, match="sft-x.*assistant"):
        list(export_rows("sft_set", table, ExportFormat.TRL))


def test_dpo_standard(lake: Lake, tmp_path: Path) -> None:
    rows = [dpo("d1", "2+2?", "4", "5"), dpo("d2", "Sky colour?", "Blue.", "Green.")]
    lake.append(DPO_SET, curated(DPO_SET, rows))
    result = export_table(lake, "dpo_set", tmp_path / "dpo.jsonl")

    ds = load(result.path)
    assert ds.column_names == ["prompt", "chosen", "rejected"]
    assert ds[0] == {"prompt": "2+2?", "chosen": "4", "rejected": "5"}
    assert not any(is_conversational(row) for row in ds)


def test_dpo_conversational_when_any_row_has_messages(lake: Lake, tmp_path: Path) -> None:
    history = [msg("system", "Be exact."), msg("user", "2+2?")]
    rows = [dpo("d1", "2+2?", "4", "5", history), dpo("d2", "Sky colour?", "Blue.", "Green.")]
    lake.append(DPO_SET, curated(DPO_SET, rows))
    result = export_table(lake, "dpo_set", tmp_path / "dpo.jsonl")

    ds = load(result.path)
    assert ds.column_names == ["prompt", "chosen", "rejected"]
    assert ds[0]["prompt"] == history
    assert ds[0]["chosen"] == [msg("assistant", "4")]
    # The row without messages takes its plain prompt as one user turn, in the same format.
    assert ds[1]["prompt"] == [msg("user", "Sky colour?")]
    assert ds[1]["rejected"] == [msg("assistant", "Green.")]
    assert all(is_conversational(row) for row in ds)


def test_kto_standard_and_conversational(lake: Lake, tmp_path: Path) -> None:
    rows = [kto("k1", "Hi", "Hello!", True), kto("k2", "Hi", "Go away.", False)]
    lake.append(KTO_SET, curated(KTO_SET, rows))
    ds = load(export_table(lake, "kto_set", tmp_path / "kto.jsonl").path)
    assert ds.column_names == ["prompt", "completion", "label"]
    assert ds.features["label"].dtype == "bool"
    assert list(ds["label"]) == [True, False]
    assert ds[1] == {"prompt": "Hi", "completion": "Go away.", "label": False}
    assert not any(is_conversational(row) for row in ds)

    lake.append(KTO_SET, curated(KTO_SET, [kto("k3", "Yo", "Hey.", True, [msg("user", "Yo")])]))
    ds = load(export_table(lake, "kto_set", tmp_path / "kto2.jsonl").path)
    assert ds.features["label"].dtype == "bool"
    assert ds[2] == {
        "prompt": [msg("user", "Yo")],
        "completion": [msg("assistant", "Hey.")],
        "label": True,
    }
    assert all(is_conversational(row) for row in ds)


def test_eval_cases(lake: Lake, tmp_path: Path) -> None:
    case = {
        "case_id": "c1",
        "kind": "golden",
        "input": "Capital of France?",
        "input_messages": [msg("user", "Capital of France?")],
        "expected": "Paris",
        "holdout": True,
        "source_request_id": "req-9",
    }
    lake.append(EVAL_CASES, curated(EVAL_CASES, [case]))
    ds = load(export_table(lake, "eval_cases", tmp_path / "eval.jsonl").path)
    assert ds.column_names == list(case)
    assert ds[0] == case
    # Eval cases are not chat fine-tuning data: there is no OpenAI form of them.
    with pytest.raises(ValueError, match="only defined for sft_set"):
        export_table(lake, "eval_cases", tmp_path / "eval.jsonl", fmt=ExportFormat.OPENAI)


def test_older_version(lake: Lake, tmp_path: Path) -> None:
    lake.append(SFT_SET, curated(SFT_SET, SFT_ROWS[:1]))
    lake.append(SFT_SET, curated(SFT_SET, SFT_ROWS[1:]))

    old = export_table(lake, "sft_set", tmp_path / "v1.jsonl", version=1)
    new = export_table(lake, "sft_set", tmp_path / "v2.jsonl")
    assert (old.version, old.rows) == (1, 1)
    assert (new.version, new.rows) == (2, 2)
    assert len(load(old.path)) == 1


def test_errors(lake: Lake, tmp_path: Path) -> None:
    out = tmp_path / "out" / "x.jsonl"
    with pytest.raises(ValueError, match="exportable: " + ", ".join(EXPORTABLE)):
        export_table(lake, "tagged_rows", out)
    with pytest.raises(ValueError, match=r"no table sft_set in lake .*flywheel run"):
        export_table(lake, "sft_set", out)
    # The format is checked before the lake is read.
    with pytest.raises(ValueError, match="only defined for sft_set.*trl, openai"):
        export_table(lake, "kto_set", out, fmt=ExportFormat.OPENAI)
    assert not out.parent.exists()  # nothing written, not even the folder

    lake.append(DPO_SET, curated(DPO_SET, [dpo("d1", "q", "a", "b")]))
    with pytest.raises(ValueError, match="dpo_set has no version 7; the latest version is 1"):
        export_table(lake, "dpo_set", out, version=7)
    with pytest.raises(ValueError, match="no version -1"):
        export_table(lake, "dpo_set", out, version=-1)
    with pytest.raises(ValueError, match="only defined for sft_set.*trl, openai"):
        export_table(lake, "dpo_set", out, fmt=ExportFormat.OPENAI)
    with pytest.raises(ValueError, match="unknown export format 'csv'"):
        export_table(lake, "dpo_set", out, fmt="csv")
    assert not out.parent.exists()


def test_row_that_cannot_be_exported_is_named(lake: Lake, tmp_path: Path) -> None:
    lake.append(
        KTO_SET, curated(KTO_SET, [kto("k1", "Hi", "Hello", True), kto("k2", "Hi", "x", None)])
    )
    out = tmp_path / "kto.jsonl"
    with pytest.raises(ValueError, match="kto_set row k2 has no label"):
        export_table(lake, "kto_set", out)
    assert list(tmp_path.glob("*.jsonl")) == [] and list(tmp_path.glob(".*")) == []
