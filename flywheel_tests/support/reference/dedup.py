"""The near-duplicate grouping as it was before MinHash LSH candidates: sorted-neighbourhood
blocking only (three content orderings, ``WINDOW`` neighbours each). Kept as the baseline that
``benchmarks/near_duplicates.py`` and the dedup tests compare the current grouping with.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import process
from rapidfuzz.distance import Indel

__all__ = ["WINDOW", "near_duplicate_groups"]

# How many sorted neighbours each string is compared with, per ordering. The cost is linear in
# it; chains of near-duplicates link up through union-find, so a long run of variants of one
# prompt (order 1, order 2, ...) needs no wider window.
WINDOW = 16
# Similarities are quotients of integers; this keeps a pair exactly at the threshold in.
_EPS = 1e-9


def _as_strings(values: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = pa.array(list(values), pa.string())
    if pa.types.is_null(values.type) or pa.types.is_string_view(values.type):
        values = values.cast(pa.string())
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise TypeError(f"expected strings, got {values.type}")
    return values


def _sorted_tokens(values: pa.Array) -> pa.Array:
    """Each string with its whitespace-separated words in sorted order."""
    tokens = pc.utf8_split_whitespace(values)
    flat = pc.list_flatten(tokens)
    keys = pa.table({"row": pc.list_parent_indices(tokens), "token": flat})
    order = pc.sort_indices(keys, sort_keys=[("row", "ascending"), ("token", "ascending")])
    rebuilt = pa.ListArray.from_arrays(tokens.offsets, flat.take(order))
    return pc.binary_join(rebuilt, " ")


def _orderings(uniques: pa.Array) -> list[np.ndarray]:
    """Content-only sort orders (so the result cannot depend on input order) that put likely
    near-duplicates next to each other.

    Digits are masked first, so "order 123" and "order 124" sort side by side however many other
    orders lie between them: forward catches edits towards the end, reversed catches edits
    towards the start, and words-sorted catches reordered or edited middles.
    """
    masked = pc.replace_substring_regex(uniques, r"\d+", "0")
    keys = [
        (masked, uniques),
        (pc.utf8_reverse(masked), pc.utf8_reverse(uniques)),
        (_sorted_tokens(uniques), uniques),
    ]
    out = []
    for key, tie in keys:
        table = pa.table({"key": key, "tie": tie})
        order = pc.sort_indices(table, sort_keys=[("key", "ascending"), ("tie", "ascending")])
        out.append(order.to_numpy())
    return out


def _union(root: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Merge the components of each (u, v) pair; ``root`` maps every node to its component's
    smallest node before and after."""
    while len(u):
        ru, rv = root[u], root[v]
        differ = ru != rv
        if not differ.any():
            break
        u, v, ru, rv = u[differ], v[differ], ru[differ], rv[differ]
        # Hook the larger root under the smaller: pointers only ever decrease, so no cycles.
        np.minimum.at(root, np.maximum(ru, rv), np.minimum(ru, rv))
        while True:
            jumped = root[root]
            if np.array_equal(jumped, root):
                break
            root = jumped
    return root


def _link_near_duplicates(uniques: pa.Array, threshold: float, workers: int) -> np.ndarray:
    """Component root per distinct string, linking neighbours in each ordering that are similar."""
    m = len(uniques)
    root = np.arange(m, dtype=np.int64)
    strings = np.array(uniques.to_pylist(), dtype=object)
    lengths = pc.utf8_length(uniques).to_numpy().astype(np.int64)
    for order in _orderings(uniques):
        for k in range(1, min(WINDOW, m - 1) + 1):
            a, b = order[:-k], order[k:]
            la, lb = lengths[a], lengths[b]
            # Indel similarity is at most 2*min/(la+lb): skip pairs whose lengths rule it out,
            # and pairs an earlier comparison already joined.
            ok = 2 * np.minimum(la, lb) >= (threshold - _EPS) * (la + lb)
            ok &= root[a] != root[b]
            a, b = a[ok], b[ok]
            if not len(a):
                continue
            scores = process.cpdist(
                strings[a],
                strings[b],
                scorer=Indel.normalized_similarity,
                score_cutoff=threshold - _EPS,
                dtype=np.float64,
                workers=workers,
            )
            hit = scores >= threshold - _EPS
            if hit.any():
                root = _union(root, a[hit], b[hit])
    return root


def near_duplicate_groups(
    normalized: pa.Array | pa.ChunkedArray | Sequence[str | None],
    threshold: float = 0.9,
    *,
    workers: int = -1,
) -> pa.Array:
    """Group id per row (int64): the index of the group's first row in input order.

    Two strings are near-duplicates when rapidfuzz's Indel similarity (``fuzz.ratio`` / 100) is
    at least ``threshold``; groups are the connected components of that relation, so exact
    duplicates always share a group. Each null row is a group of its own.

    To stay linear, exact duplicates are collapsed first, then each distinct string is only
    compared with its ``WINDOW`` nearest neighbours in three content-based sort orders (sorted
    neighbourhood blocking; see ``_orderings``). A pair of near-duplicates that no order places
    within the window of each other (e.g. edited at both ends, among many similar strings) is
    missed unless a chain of other near-duplicates links it. ``workers`` is handed to rapidfuzz
    (-1: all cores).
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    values = _as_strings(normalized)
    n = len(values)
    encoded = pc.dictionary_encode(values)
    uniques = encoded.dictionary
    codes = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64)
    valid = codes >= 0
    rows = np.arange(n, dtype=np.int64)

    m = len(uniques)
    if m > 1 and threshold < 1:
        root = _link_near_duplicates(uniques, threshold, workers)
    else:
        root = np.arange(m, dtype=np.int64)
    first_row = np.full(m, n, dtype=np.int64)
    np.minimum.at(first_row, codes[valid], rows[valid])
    component_first = np.full(m, n, dtype=np.int64)
    np.minimum.at(component_first, root, first_row)
    group = rows.copy()
    group[valid] = component_first[root[codes[valid]]]
    return pa.array(group, pa.int64())
