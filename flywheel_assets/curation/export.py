"""Export of the curated sets as JSON Lines that TRL trainers and OpenAI fine-tuning load directly.

Pure pyarrow and deltalake (no Dagster), so the CLI and notebooks can use it without a run.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import DeltaError

from ..governance.tombstones import Tombstones
from ..lake.tables import Lake

EXPORTABLE = ("sft_set", "dpo_set", "kto_set", "eval_cases")

# The column that names a row in error messages, and orders the rows of an exported file.
ID_COLUMN = {
    "sft_set": "example_id",
    "dpo_set": "pair_id",
    "kto_set": "example_id",
    "eval_cases": "case_id",
}

# OpenAI chat fine-tuning accepts tool messages only together with the assistant's tool_calls,
# which the curated messages do not keep, so a tool turn cannot be exported faithfully.
OPENAI_ROLES = frozenset({"system", "user", "assistant"})

EVAL_FIELDS = (
    "case_id",
    "kind",
    "input",
    "input_messages",
    "expected",
    "holdout",
    "source_request_id",
)


class ExportFormat(StrEnum):
    TRL = "trl"
    OPENAI = "openai"


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    version: int
    table: str
    skipped: int = 0  # rows the format cannot express (OpenAI: conversations with tool turns)


def export_rows(table_name: str, table: pa.Table, fmt: ExportFormat) -> Iterator[dict]:
    """One JSON object per row of `table`, in the format trainers expect for that set.

    - sft_set, trl: `{"messages": [...]}`, TRL's conversational language-modeling format.
    - sft_set, openai: `{"messages": [...]}` with only system, user and assistant roles; a row with
      a tool message (or any other role) raises, since dropping turns would change the example.
    - dpo_set, trl: `{"prompt", "chosen", "rejected"}` and kto_set, trl: `{"prompt", "completion",
      "label"}`. TRL needs every row of a dataset in one format, so the rule is per table: if any
      row has `prompt_messages`, every row is conversational (the prompt is the message list, or
      the plain prompt as one user turn, and each answer is one assistant turn); otherwise every
      row is standard (plain strings).
    - eval_cases, trl: the case's fields as they are (`case_id`, `kind`, `input`,
      `input_messages`, `expected`, `holdout`, `source_request_id`).
    - openai is OpenAI's chat fine-tuning format, which only sft_set has; other sets raise.

    Every row becomes exactly one object; a row that cannot be exported raises ValueError naming
    its id, rather than being skipped.
    """
    fmt = _check(table_name, fmt)
    # Not a generator itself, so a wrong name, format or schema fails at the call, not mid-file.
    if table_name == "sft_set":
        _require(table, ("example_id", "messages"))
        return _sft_rows(table, openai=fmt is ExportFormat.OPENAI)
    if table_name == "eval_cases":
        _require(table, EVAL_FIELDS)
        return ({f: row[f] for f in EVAL_FIELDS} for row in _rows(table, EVAL_FIELDS))
    return _preference_rows(table_name, table, _preference_columns(table_name, table))


def export_table(
    lake: Lake,
    table_name: str,
    out_path: str | Path,
    *,
    version: int | None = None,
    fmt: ExportFormat = ExportFormat.TRL,
) -> ExportResult:
    """Write `table_name` (at `version`, default latest) to `out_path` as UTF-8 JSON Lines.

    The file appears whole or not at all: it is written next to `out_path` and moved into place,
    so a failed export leaves any earlier file untouched. Rows are ordered by their id, so the same
    version always exports to the same bytes.
    """
    fmt = _check(table_name, fmt)
    latest = lake.open(table_name)
    if latest is None:
        raise ValueError(f"no table {table_name} in lake {lake.root}; run `flywheel run` first")
    latest_version = latest.version()
    if version is None:
        dt = latest
    elif not 0 <= version <= latest_version:
        raise ValueError(
            f"{table_name} has no version {version}; the latest version is {latest_version}"
        )
    else:
        try:
            dt = lake.open(table_name, version=version)
        except DeltaError as exc:
            # An old version whose log entries were cleaned up after the retention window.
            raise ValueError(
                f"version {version} of {table_name} can no longer be read ({exc}); "
                f"the latest version is {latest_version}"
            ) from None
        if dt is None:
            raise ValueError(f"no table {table_name} in lake {lake.root}; run `flywheel run` first")
    table = lake.read(table_name, version=dt.version())
    # Left out at write time: rows of users erased since (or while) the set was built.
    table, _ = Tombstones.load(lake).drop(table, None)
    if ID_COLUMN[table_name] in table.column_names:
        table = table.sort_by(ID_COLUMN[table_name])
    skipped = 0
    if fmt is ExportFormat.OPENAI and "messages" in table.column_names:
        # Left out and counted, not failed: the rest of the set is still worth fine-tuning on.
        expressible = pa.array(
            [
                {m["role"] for m in (messages or [])} <= OPENAI_ROLES
                for messages in table["messages"].to_pylist()
            ],
            pa.bool_(),
        )
        skipped = table.num_rows - (pc.sum(expressible).as_py() or 0)
        table = table.filter(expressible)

    objects = export_rows(table_name, table, fmt)  # checks format and columns before any file
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    # A unique sibling opened like any new file (0666 less the umask), unlike mkstemp's 0600.
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    rows = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for obj in objects:
                f.write(json.dumps(obj, ensure_ascii=False) + "\n")
                rows += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportResult(
        path=out, rows=rows, version=dt.version(), table=table_name, skipped=skipped
    )


def _check(table_name: str, fmt: ExportFormat | str) -> ExportFormat:
    """The format, once the table and format are known to go together."""
    formats = ", ".join(f.value for f in ExportFormat)
    try:
        fmt = ExportFormat(fmt)
    except ValueError:
        raise ValueError(f"unknown export format {fmt!r}; formats: {formats}") from None
    if table_name not in EXPORTABLE:
        raise ValueError(f"{table_name!r} cannot be exported; exportable: {', '.join(EXPORTABLE)}")
    if fmt is ExportFormat.OPENAI and table_name != "sft_set":
        raise ValueError(
            f"openai format is only defined for sft_set, not {table_name}; "
            f"use format trl for {table_name} (formats: {formats})"
        )
    return fmt


def _require(table: pa.Table, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"the table lacks the column(s) {', '.join(missing)} needed to export it")


def _rows(table: pa.Table, columns: tuple[str, ...]) -> Iterator[dict]:
    # Batch by batch, so a large set is never held as Python objects all at once.
    for batch in table.select(list(columns)).to_batches():
        yield from batch.to_pylist()


def _sft_rows(table: pa.Table, *, openai: bool) -> Iterator[dict]:
    for row in _rows(table, ("example_id", "messages")):
        rid = row["example_id"]
        messages = _messages(row["messages"], f"sft_set row {rid}", "messages")
        if not messages:
            raise ValueError(f"sft_set row {rid} has no messages")
        if messages[-1]["role"] != "assistant":
            raise ValueError(
                f"sft_set row {rid} ends with a {messages[-1]['role']} message, "
                "not the assistant target"
            )
        if openai:
            bad = sorted({m["role"] for m in messages} - OPENAI_ROLES)
            if bad:
                raise ValueError(
                    f"sft_set row {rid} has {', '.join(bad)} message(s), which OpenAI chat "
                    "fine-tuning does not accept without tool calls; export it with format trl"
                )
        yield {"messages": messages}


def _preference_columns(table_name: str, table: pa.Table) -> tuple[str, ...]:
    answers = ("chosen", "rejected") if table_name == "dpo_set" else ("completion", "label")
    columns = (ID_COLUMN[table_name], "prompt", "prompt_messages", *answers)
    _require(table, columns)
    return columns


def _preference_rows(table_name: str, table: pa.Table, columns: tuple[str, ...]) -> Iterator[dict]:
    id_column = ID_COLUMN[table_name]
    answers = ("chosen", "rejected") if table_name == "dpo_set" else ("completion",)
    # An empty message list is no conversation, so only a non-empty one makes the file
    # conversational.
    longest = pc.max(pc.list_value_length(table.column("prompt_messages"))).as_py()
    conversational = bool(longest)
    for row in _rows(table, columns):
        where = f"{table_name} row {row[id_column]}"
        obj: dict = {"prompt": _prompt(row, where, conversational)}
        for answer in answers:
            text = row[answer]
            if text is None:
                raise ValueError(f"{where} has no {answer}")
            obj[answer] = [{"role": "assistant", "content": text}] if conversational else text
        if table_name == "kto_set":
            if row["label"] is None:
                raise ValueError(f"{where} has no label")
            obj["label"] = bool(row["label"])
        yield obj


def _prompt(row: dict, where: str, conversational: bool) -> str | list[dict]:
    if conversational:
        messages = _messages(row["prompt_messages"], where, "prompt_messages")
        if messages:
            return messages
        if row["prompt"] is None:
            raise ValueError(f"{where} has neither prompt_messages nor a prompt")
        return [{"role": "user", "content": row["prompt"]}]
    if row["prompt"] is None:
        raise ValueError(f"{where} has no prompt")
    return row["prompt"]


def _messages(messages: list[dict] | None, where: str, column: str) -> list[dict]:
    out = []
    for i, m in enumerate(messages or []):
        if m is None or m["role"] is None or m["content"] is None:
            raise ValueError(f"{where}: message {i} of {column} lacks a role or content")
        out.append({"role": m["role"], "content": m["content"]})
    return out
