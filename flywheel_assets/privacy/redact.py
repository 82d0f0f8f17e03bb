"""Redact every free-text column of an Arrow table and count what was found, by kind, per row."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.redacted import PII_COUNTS_TYPE
from .pii import Detector


def redact_table(
    table: pa.Table,
    detector: Detector,
    text_columns: Sequence[str],
    message_columns: Sequence[str] = (),
) -> pa.Table:
    """Replace PII in the given columns and add `pii_counts` (kind -> hits) and `pii_total`.

    `message_columns` are lists of {role, content}: each message's content is redacted.
    """
    totals = {k: _zeros(table.num_rows) for k in detector.kinds}
    for name in text_columns:
        result = detector.redact_array(table[name])
        table = table.set_column(table.schema.get_field_index(name), name, result.text)
        _add(totals, result.counts)
    for name in message_columns:
        column, counts = _redact_messages(table[name], detector)
        table = table.set_column(table.schema.get_field_index(name), name, column)
        _add(totals, counts)
    counts, total = _as_map(totals, table.num_rows)
    return table.append_column(pa.field("pii_counts", PII_COUNTS_TYPE), counts).append_column(
        pa.field("pii_total", pa.int64()), total
    )


def residual_pii(
    table: pa.Table,
    detector: Detector,
    text_columns: Sequence[str],
    message_columns: Sequence[str] = (),
) -> dict[str, int]:
    """Rows per column in which a detector still fires (after redaction this must be empty)."""
    out = {}
    for name in text_columns:
        hits = pc.sum(pc.fill_null(detector.contains_pii(table[name]), False)).as_py() or 0
        if hits:
            out[name] = int(hits)
    for name in message_columns:
        content = pc.struct_field(pc.list_flatten(table[name]), "content")
        hits = pc.sum(pc.fill_null(detector.contains_pii(content), False)).as_py() or 0
        if hits:
            out[f"{name}.content"] = int(hits)
    return out


def _redact_messages(
    column: pa.ChunkedArray | pa.Array, detector: Detector
) -> tuple[pa.Array, pa.Table]:
    messages = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    offsets = messages.offsets.to_numpy()
    start, lengths = int(offsets[0]), np.diff(offsets)
    values = messages.values.slice(start, int(offsets[-1]) - start)  # one struct per message
    result = detector.redact_array(values.field("content"))
    struct = pa.StructArray.from_arrays(
        [values.field("role"), result.text], names=["role", "content"], mask=values.is_null()
    )
    rebuilt = pa.ListArray.from_arrays(
        pa.array(offsets - start, pa.int32()), struct, type=messages.type, mask=messages.is_null()
    )
    # Sum each message's counts into its row.
    rows = np.repeat(np.arange(len(messages)), lengths)
    per_row = {}
    for k in detector.kinds:
        dense = np.zeros(len(messages), dtype=np.int64)
        np.add.at(dense, rows, result.counts[k].to_numpy())
        per_row[k] = pa.array(dense)
    return rebuilt, pa.table(per_row, schema=pa.schema([(k, pa.int64()) for k in detector.kinds]))


def _add(totals: dict[str, pa.Array], counts: pa.Table) -> None:
    for k in counts.column_names:
        totals[k] = pc.add(totals[k], counts[k].combine_chunks())


def _as_map(totals: dict[str, pa.Array], n: int) -> tuple[pa.Array, pa.Array]:
    total = _zeros(n)
    for col in totals.values():
        total = pc.add(total, col)
    hit_rows = pc.indices_nonzero(total).to_pylist()
    maps: list = [[] for _ in range(n)]
    for i in hit_rows:  # only rows with a finding: rare in production text
        maps[i] = [(k, v[i].as_py()) for k, v in totals.items() if v[i].as_py()]
    return pa.array(maps, PII_COUNTS_TYPE), total


def _zeros(n: int) -> pa.Array:
    return pa.repeat(0, n).cast(pa.int64()) if n else pa.array([], pa.int64())
