"""From tagged rows to the sets people and trainers use: eval cases, review queue, SFT, DPO, KTO.

A build has two kinds of step, both columnar (Polars and Arrow):

- local ones (`local`), decided by one candidate row (and, for a side-by-side choice, the row it
  beat): which column is the training target, the safety breaker, the similarity band;
- global ones (`selection`), decided over the local rows' state (ids, prompts, ranks, times,
  users, no text): the best answer per prompt, held-out prompts, the near-duplicate collapse and
  the per-user share caps.

`curate` runs both over every candidate; `incremental` derives local rows again only for the
request ids that changed. Ties break by request_id, so the result cannot depend on how
tagged_rows is stored.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.curated import DPO_SET, EVAL_CASES, KTO_SET, REVIEW_QUEUE, SFT_SET
from ..gcpause import paused_gc
from ..privacy.pii import Detector
from .local import LocalRows, derive
from .rules import (
    PAIR_PRIORITY,
    ROW_COLUMNS,
    TARGET_COLUMNS,
    TARGET_PRIORITY,
    CurationPolicy,
    content_id,
)
from .selection import Selection, select
from .signals import NEGATIVE, POSITIVE

__all__ = [
    "CANDIDATE_COLUMNS",
    "PAIR_PRIORITY",
    "ROW_COLUMNS",
    "TARGET_COLUMNS",
    "TARGET_PRIORITY",
    "Curated",
    "CurationPolicy",
    "assemble",
    "candidate_mask",
    "content_id",
    "curate",
    "finalize",
]

# Columns the collapse ranks by, carried along until `finalize`.
RANKING = ("priority", "label_key", "confidence")
MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
# The published sets, each with the local sets it is made of.
PUBLISHED = {
    EVAL_CASES: ("golden", "regression"),
    REVIEW_QUEUE: ("review",),
    SFT_SET: ("sft",),
    DPO_SET: ("dpo",),
    KTO_SET: ("kto",),
}


@dataclass
class Curated:
    eval_cases: pa.Table
    review_queue: pa.Table
    sft_set: pa.Table
    dpo_set: pa.Table
    kto_set: pa.Table
    stats: dict
    state: pl.DataFrame | None = None  # every local row's state (curation_state)
    left_out: dict[str, int] = dataclasses.field(default_factory=dict)  # excluded, per set


def curate(
    tagged: pa.Table,
    policy: CurationPolicy,
    key: bytes,
    detector: Detector,
    excluded: Mapping[str, Sequence[str]] | None = None,
) -> Curated:
    """Build every curated set from the tagged rows; `excluded`: per set, the request ids a
    rollback of it took away, left out before the global steps (`selection.select`)."""
    with paused_gc():
        return _curate(_candidates(tagged), policy, key, detector, excluded)


def _curate(
    tagged: pa.Table,
    policy: CurationPolicy,
    key: bytes,
    detector: Detector,
    excluded: Mapping[str, Sequence[str]] | None,
) -> Curated:
    local = derive(tagged, policy, key, detector)
    state = local.state()
    selection = select(state, policy, excluded)
    tables = {spec.name: assemble(local, selection, spec) for spec in PUBLISHED}
    return Curated(**tables, stats=selection.stats, state=state, left_out=selection.left_out)


def assemble(local: LocalRows, selection: Selection, spec) -> pa.Table:
    """The rows of `spec`'s set that `selection` chose and `local` holds, in the selection's
    order, in the set's schema (plus its ranking columns)."""
    frames = [local.frames[name] for name in PUBLISHED[spec]]
    frame = pl.concat(frames) if len(frames) > 1 else frames[0]
    key = spec.schema.names[0]
    chosen = selection.ids[spec.name]
    # The review queue's id is the request id; every other set's is its own.
    chosen = chosen.select(key) if key == "request_id" else chosen.rename({"row_id": key})
    on = list(dict.fromkeys([key, "request_id"]))
    frame = chosen.join(frame, on=on, how="inner", maintain_order="left")
    return _table(frame, spec, local.messages)


# What decides whether a tagged row is a candidate for any set.
CANDIDATE_COLUMNS = (
    "request_id",
    "label",
    "correction",
    "edited_response",
    "preferred_over",
    "over_cap",
    "tags",
)


def _candidates(tagged: pa.Table) -> pa.Table:
    return tagged.filter(candidate_mask(tagged)) if tagged.num_rows else tagged


def candidate_mask(tagged: pa.Table) -> pa.Array:
    """True for the rows any builder can take something from. Most interactions have no label,
    correction, edit, comparison, conflict or cap, and no set can use them."""
    if tagged.num_rows == 0:
        return pa.array([], pa.bool_())
    useful = pc.or_(
        pc.is_in(tagged["label"], value_set=pa.array([POSITIVE, NEGATIVE])),
        pc.or_(pc.is_valid(tagged["correction"]), pc.is_valid(tagged["edited_response"])),
    )
    useful = pc.or_(useful, pc.greater(pc.list_value_length(tagged["preferred_over"]), 0))
    useful = pc.or_(useful, pc.fill_null(tagged["over_cap"], False))
    # The losers of side-by-side choices: DPO looks their answers up.
    losers = pc.unique(pc.list_flatten(tagged["preferred_over"]))
    useful = pc.or_(useful, pc.is_in(tagged["request_id"], value_set=losers))
    tags = tagged["tags"].combine_chunks()
    conflict = pc.equal(pc.list_flatten(tags), "conflict")
    rows_in_conflict = pc.filter(pc.list_parent_indices(tags), conflict)
    in_conflict = np.zeros(tagged.num_rows, dtype=bool)
    in_conflict[rows_in_conflict.to_numpy()] = True
    return pc.or_(pc.fill_null(useful, False), pa.array(in_conflict))


# Per set, the column holding messages taken from the source row.
MESSAGE_COLUMNS = {
    EVAL_CASES.name: "input_messages",
    SFT_SET.name: "messages",
    DPO_SET.name: "prompt_messages",
    KTO_SET.name: "prompt_messages",
}


def _table(frame: pl.DataFrame, spec, messages: pa.ListArray) -> pa.Table:
    """A builder's rows in the spec's schema, plus any ranking columns it carries along, with
    their messages taken from `messages` by each row's source index (`_i`)."""
    training = spec.name in (SFT_SET.name, DPO_SET.name, KTO_SET.name)
    extra = [n for n in RANKING if n in frame.columns] if training else []
    schema = spec.schema
    for name in extra:
        schema = schema.append(pa.field(name, pa.float64() if name == "confidence" else pa.int64()))
    present = [n for n in schema.names if n in frame.columns]
    index_column = ["_i"] if "_i" in frame.columns else []
    arrow = frame.select(*present, *index_column).to_arrow(compat_level=pl.CompatLevel.oldest())
    columns = {}
    for field in schema:
        if field.name in present:
            columns[field.name] = arrow[field.name].cast(field.type)
        else:  # stamped later (`finalize`) or taken from the source rows below
            columns[field.name] = pa.nulls(frame.height, field.type)
    table = pa.table(columns, schema=schema)
    column = MESSAGE_COLUMNS.get(spec.name)
    if column is None:
        return table
    source = messages.take(arrow["_i"].combine_chunks().cast(pa.int64()))
    if spec.name == SFT_SET.name:
        source = _with_reply(
            source, table["prompt"].combine_chunks(), table["completion"].combine_chunks()
        )
    index = schema.get_field_index(column)
    return table.set_column(index, schema.field(index), source.cast(schema.field(index).type))


def _with_reply(history: pa.ListArray, prompts: pa.Array, replies: pa.Array) -> pa.ListArray:
    """Each conversation (or, where there is none, the prompt as one user message) followed by
    the assistant's reply."""
    n = len(history)
    message = MESSAGES.value_type
    earlier = pc.list_flatten(history).cast(message)
    lengths = pc.fill_null(pc.list_value_length(history), 0).to_numpy(zero_copy_only=False)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    alone = lengths == 0
    own = np.where(alone, 1, lengths) + 1  # messages per row, the reply included
    offsets = np.concatenate([[0], np.cumsum(own)]).astype(np.int32)
    row = np.repeat(np.arange(n), own)
    position = np.arange(offsets[-1]) - np.repeat(offsets[:-1], own)
    # Values: the earlier messages, then one user message per row, then one reply per row.
    asked = pa.StructArray.from_arrays(
        [pa.array(["user"] * n, pa.string()), prompts.cast(pa.string())],
        fields=list(message),
    )
    said = pa.StructArray.from_arrays(
        [pa.array(["assistant"] * n, pa.string()), replies.cast(pa.string())],
        fields=list(message),
    )
    reply_at = len(earlier) + n + row
    first_at = len(earlier) + row
    take = np.where(
        position == own[row] - 1, reply_at, np.where(alone[row], first_at, starts[row] + position)
    )
    values = pa.concat_arrays([earlier, asked, said]).take(pa.array(take, pa.int64()))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, type=MESSAGES)


def finalize(table: pa.Table, spec, source_versions: dict[str, int]) -> pa.Table:
    """Exactly the spec's columns, stamped with the source versions and the build time."""
    n = table.num_rows
    table = table.set_column(
        table.schema.get_field_index("source_versions"),
        "source_versions",
        pa.array([json.dumps(source_versions, sort_keys=True)] * n, pa.string()),
    )
    table = table.set_column(
        table.schema.get_field_index("_curated_at"),
        "_curated_at",
        pa.array([datetime.now(UTC)] * n, spec.schema.field("_curated_at").type),
    )
    return table.select(spec.schema.names).cast(spec.schema)
