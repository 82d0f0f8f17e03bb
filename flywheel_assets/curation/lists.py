"""List columns built from (row, value) pairs: each row's sorted set of strings, made with a few
array sorts instead of one list de-duplication and sort per row."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_STRINGS = pa.list_(pa.string())


def sorted_sets(
    n: int, rows: Sequence[np.ndarray], values: Sequence[pa.Array | pa.ChunkedArray]
) -> pa.ListArray:
    """For each row 0..n-1, the distinct values paired with it, sorted as Python sorts strings.

    `rows[i][j]` is the row `values[i][j]` belongs to; null values are left out.
    """
    row = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows] or [np.zeros(0, np.int64)])
    value = pa.concat_arrays(
        [_combined(v).cast(pa.string()) for v in values] or [pa.array([], pa.string())]
    )
    if len(row) != len(value):
        raise ValueError(f"{len(row)} rows for {len(value)} values")
    valid = pc.is_valid(value).to_numpy(zero_copy_only=False)
    row, value = row[valid], value.filter(pa.array(valid))
    # Codes in the order of a Python-sorted vocabulary sort as the strings do.
    vocab = pa.array(sorted(pc.unique(value).to_pylist()), pa.string())
    code = pc.index_in(value, value_set=vocab).to_numpy().astype(np.int64)
    order = np.lexsort((code, row))
    row, code = row[order], code[order]
    first = np.ones(len(row), dtype=bool)
    first[1:] = (row[1:] != row[:-1]) | (code[1:] != code[:-1])
    row, code = row[first], code[first]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(row, minlength=n), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), vocab.take(pa.array(code, pa.int64())))


def exploded(lists: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """The (row, value) pairs of a list column, for `sorted_sets`."""
    lists = _combined(lists)
    return pc.list_parent_indices(lists).to_numpy(), pc.list_flatten(lists)


def _combined(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
