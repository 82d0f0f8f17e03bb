"""Data quality rules for the bronze tables, as plain functions over Arrow tables."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def duplicate_ids(ids: pa.ChunkedArray | pa.Array, sample: int = 5) -> tuple[int, list[str]]:
    """How many ids occur more than once, and a few of them."""
    counts = pc.value_counts(ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))
    return len(repeated), repeated.field("values").to_pylist()[:sample]


def null_counts(table: pa.Table, columns: list[str]) -> dict[str, int]:
    """Nulls (and blank strings) per column; only columns with any are listed."""
    out = {}
    for name in columns:
        col = table[name]
        missing = col.null_count
        if pa.types.is_string(col.type):
            missing += pc.sum(pc.equal(pc.utf8_trim_whitespace(col), "")).as_py() or 0
        if missing:
            out[name] = int(missing)
    return out


def unbalanced_files(ledger: pa.Table) -> list[str]:
    """Ingested files whose valid + quarantined + duplicates + erased is not the lines read."""
    done = ledger.filter(pc.equal(ledger["status"], "done"))
    accounted = pc.add(pc.add(done["valid"], done["quarantined"]), done["duplicates"])
    if "erased" in done.column_names:  # absent from ledgers written before erasure existed
        accounted = pc.add(accounted, pc.fill_null(done["erased"], 0))
    bad = done.filter(pc.not_equal(accounted, done["lines_read"]))
    return bad["path"].to_pylist()
