"""Near-duplicate prompt grouping that stays cheap at millions of rows, and keeping one row per
group."""

from __future__ import annotations

import argparse
import random
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import process
from rapidfuzz.distance import Indel

from flywheel_assets.curation import minhash

__all__ = [
    "BAND_KEY_COLUMNS",
    "NearDuplicateUpdate",
    "assign_near_duplicates",
    "keep_one_per_group",
    "near_duplicate_band_keys",
    "near_duplicate_groups",
    "row_order",
]

# Inside one LSH bucket each string is compared with the next BUCKET_WINDOW strings in sorted
# order, so a bucket of up to BUCKET_WINDOW + 1 strings has every pair compared and a huge one
# (a template shared by thousands of prompts) costs BUCKET_WINDOW comparisons per member rather
# than one per pair. What that bound may miss: two near-duplicates more than BUCKET_WINDOW apart
# in sorted order in every band they share and in every sorted-neighbourhood order, with no chain
# of verified pairs between them. With 32 bands a true pair usually shares many buckets, each
# sorted by the full string, so all of these must fail together. Measured on 200,000 templated
# sample prompts (82,349 distinct, buckets of up to 3,000): windows of 4, 8 and 16 left 28,927,
# 28,861 and 28,800 groups (the old sorted-neighbourhood-only grouping 29,931) for 2.4, 4.3 and
# 7.6 million LSH comparisons.
BUCKET_WINDOW = 8
# How many sorted neighbours each string is compared with, per ordering, in the
# sorted-neighbourhood pass that runs next to LSH. The cost is linear in it; chains of
# near-duplicates link up through union-find, so a long run of variants of one prompt (order 1,
# order 2, ...) needs no wider window.
WINDOW = 16
# Similarities are quotients of integers; this keeps a pair exactly at the threshold in.
_EPS = 1e-9
_DIRECTIONS = ("ascending", "descending")
# Column names of stored band keys, one uint64 column per band.
BAND_KEY_COLUMNS = tuple(f"nd_band_{j:02d}" for j in range(minhash.BANDS))
_SCHEME_KEY = b"flywheel.near_duplicates"


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


def _check_threshold(threshold: float) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")


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


class _Verifier:
    """Checks candidate pairs of distinct strings with rapidfuzz and merges the similar ones."""

    # Pairs per step of the character-count test, to keep its temporaries in cache.
    _STEP = 1 << 16

    def __init__(self, uniques: pa.Array, threshold: float, workers: int):
        self.strings = np.array(uniques.to_pylist(), dtype=object)
        self.lengths = pc.utf8_length(uniques).to_numpy().astype(np.int64)
        self.counts = minhash.char_counts(uniques)
        self.cutoff = threshold - _EPS
        self.workers = workers
        self.compared = 0

    def _may_match(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # Indel similarity is 1 - d / (la + lb), and d is at least the length difference and at
        # least the L1 distance of the character counts.
        la, lb = self.lengths[a], self.lengths[b]
        budget = (1 - self.cutoff) * (la + lb)
        ok = np.abs(la - lb) <= budget
        for lo in range(0, len(a), self._STEP):
            sel = slice(lo, lo + self._STEP)
            candidates = np.flatnonzero(ok[sel]) + lo
            x, y = self.counts[a[candidates]], self.counts[b[candidates]]
            diff = np.maximum(x, y)
            diff -= np.minimum(x, y)
            ok[candidates] = diff.sum(axis=1, dtype=np.int64) <= budget[candidates]
        return ok

    def link(self, root: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # Skip pairs an earlier comparison already joined (directly or through a chain), and
        # pairs that the lengths or character counts rule out.
        keep = root[a] != root[b]
        a, b = a[keep], b[keep]
        keep = self._may_match(a, b)
        a, b = a[keep], b[keep]
        if not len(a):
            return root
        self.compared += len(a)
        scores = process.cpdist(
            self.strings[a],
            self.strings[b],
            scorer=Indel.normalized_similarity,
            score_cutoff=self.cutoff,
            dtype=np.float64,
            workers=self.workers,
        )
        hit = scores >= self.cutoff
        return _union(root, a[hit], b[hit]) if hit.any() else root


def _content_rank(by_content: np.ndarray) -> np.ndarray:
    """Each node's position in the content order ``by_content`` (uint64)."""
    rank = np.empty(len(by_content), dtype=np.uint64)
    rank[by_content] = np.arange(len(by_content), dtype=np.uint64)
    return rank


def _bucket_pairs(
    keys: np.ndarray, by_content: np.ndarray, rank: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of nodes sharing a bucket (equal ``keys``) at most BUCKET_WINDOW apart in the
    content order ``by_content`` (``rank`` is its inverse): every pair of a small bucket, a
    bounded number per member of a large one."""
    m = len(by_content)
    bits = max(1, (m - 1).bit_length())
    if bits > 40:  # pragma: no cover - a trillion distinct strings
        raise ValueError("too many distinct strings to bucket")
    # One sort of (the key's high 64 - bits bits, content rank) packed in a uint64: ten times
    # faster than a stable argsort of the keys. Pairs need whole keys equal, so two buckets whose
    # keys share those high bits (chance about m**2 / 2**(65 - bits) per band) stay apart, though
    # interleaved.
    low = np.uint64((1 << bits) - 1)
    packed = np.sort((keys & ~low) | rank)
    nodes = by_content[(packed & low).astype(np.int64)]
    group = packed >> np.uint64(bits)
    bucket = keys[nodes]
    left, right = [], []
    for k in range(1, min(BUCKET_WINDOW, m - 1) + 1):
        near = group[:-k] == group[k:]
        if not near.any():
            break  # no bucket holds more than k members
        same = np.flatnonzero(near & (bucket[:-k] == bucket[k:]))
        left.append(nodes[same])
        right.append(nodes[same + k])
    if not left:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(left), np.concatenate(right)


def _lsh_link(
    root: np.ndarray, keys: np.ndarray, by_content: np.ndarray, verifier: _Verifier
) -> np.ndarray:
    # A Python loop per band; all the per-row work inside is numpy and rapidfuzz.
    rank = _content_rank(by_content)
    for column in keys.T:  # (strings, BANDS) with contiguous columns
        a, b = _bucket_pairs(column, by_content, rank)
        root = verifier.link(root, a, b)
    return root


def _window_link(root: np.ndarray, uniques: pa.Array, verifier: _Verifier) -> np.ndarray:
    """Sorted-neighbourhood blocking: each string against its WINDOW nearest in each of
    ``_orderings``."""
    m = len(uniques)
    for order in _orderings(uniques):
        for k in range(1, min(WINDOW, m - 1) + 1):
            root = verifier.link(root, order[:-k], order[k:])
    return root


def _link_near_duplicates(uniques: pa.Array, threshold: float, workers: int) -> np.ndarray:
    """Component root (smallest member) per distinct string."""
    root = np.arange(len(uniques), dtype=np.int64)
    verifier = _Verifier(uniques, threshold, workers)
    keys = minhash.band_keys(uniques)
    by_content = pc.sort_indices(uniques).to_numpy()
    root = _lsh_link(root, keys, by_content, verifier)
    return _window_link(root, uniques, verifier)


def _encode(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Distinct strings and each row's index among them (-1 for nulls)."""
    encoded = pc.dictionary_encode(values)
    codes = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64)
    return encoded.dictionary, codes


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

    To stay linear, exact duplicates are collapsed first, then candidate pairs come from MinHash
    LSH over character 3-grams (``minhash``: 32 bands of 3 minhashes; within a bucket, each
    string against its ``BUCKET_WINDOW`` sorted neighbours) and from sorted-neighbourhood
    blocking (each string against its ``WINDOW`` nearest in three content orders), and only
    candidates are compared. Both depend on content alone, so the partition does not depend on
    input order. A pair of near-duplicates is missed only if it shares no LSH bucket (see
    ``minhash`` for the probability) or only oversized ones where it sits far apart, no order
    places it within the window, and no chain of other near-duplicates links it. ``workers`` is
    handed to rapidfuzz (-1: all cores).
    """
    _check_threshold(threshold)
    values = _as_strings(normalized)
    n = len(values)
    uniques, codes = _encode(values)
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


def near_duplicate_band_keys(
    normalized: pa.Array | pa.ChunkedArray | Sequence[str | None],
) -> pa.Table:
    """The LSH band keys of each row, to store next to it for ``assign_near_duplicates``: one
    uint64 column per band (``BAND_KEY_COLUMNS``), null for null rows. The schema metadata names
    the MinHash scheme; keys of another scheme are refused later."""
    uniques, codes = _encode(_as_strings(normalized))
    return _key_table(minhash.band_keys(uniques), codes)


def _key_table(keys: np.ndarray, codes: np.ndarray) -> pa.Table:
    """Rows' band keys as a table, from the keys of distinct strings (distinct x BANDS) and each
    row's index among them (-1: null)."""
    valid = codes >= 0
    picked = np.where(valid, codes, 0)
    columns = []
    for j in range(len(BAND_KEY_COLUMNS)):
        column = keys[:, j][picked] if len(keys) else np.zeros(len(codes), dtype=np.uint64)
        columns.append(pa.array(column, pa.uint64(), mask=~valid))
    schema = pa.schema(
        [pa.field(name, pa.uint64()) for name in BAND_KEY_COLUMNS],
        metadata={_SCHEME_KEY: minhash.SCHEME.encode()},
    )
    return pa.Table.from_arrays(columns, schema=schema)


def _stored_keys(table: pa.Table, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Band keys (BANDS x rows, uint64: a band's keys contiguous) and validity from a
    ``near_duplicate_band_keys`` table."""
    scheme = (table.schema.metadata or {}).get(_SCHEME_KEY)
    if scheme is not None and scheme != minhash.SCHEME.encode():
        raise ValueError(f"band keys were made by {scheme.decode()!r}, not {minhash.SCHEME!r}")
    missing = [name for name in BAND_KEY_COLUMNS if name not in table.column_names]
    if missing:
        raise ValueError(f"band key columns missing: {missing}")
    if table.num_rows != rows:
        raise ValueError(f"{table.num_rows} band key rows for {rows} existing rows")
    keys = np.empty((len(BAND_KEY_COLUMNS), rows), dtype=np.uint64)
    valid = np.ones(rows, dtype=bool)
    for j, name in enumerate(BAND_KEY_COLUMNS):
        column = table[name].combine_chunks().cast(pa.uint64())
        valid &= column.is_valid().to_numpy(zero_copy_only=False)
        keys[j] = pc.fill_null(column, 0).to_numpy()
    return keys, valid


@dataclass(frozen=True)
class NearDuplicateUpdate:
    """What new rows do to an existing grouping (``assign_near_duplicates``).

    Row ids count the existing rows first (0 .. n-1), then the new ones (n ..), so ids mean what
    ``near_duplicate_groups`` over the existing rows followed by the new ones would mean.
    """

    #: Group id (int64) of each new row: an existing group's id, or n + the index of the first
    #: new row of a group that holds no existing row.
    groups: pa.Array
    #: Existing groups that the new rows joined to a group with a smaller id: columns
    #: ``from_group`` and ``into_group`` (int64), sorted by ``from_group``; ``into_group`` is
    #: final (never itself a ``from_group``).
    merges: pa.Table
    #: The new rows' band keys, to append to the stored ones.
    band_keys: pa.Table


def assign_near_duplicates(
    existing_normalized: pa.Array | pa.ChunkedArray | Sequence[str | None],
    existing_groups: pa.Array | pa.ChunkedArray | Sequence[int | None],
    existing_band_keys: pa.Table,
    new_normalized: pa.Array | pa.ChunkedArray | Sequence[str | None],
    threshold: float = 0.9,
    *,
    workers: int = -1,
) -> NearDuplicateUpdate:
    """Group the new rows into an existing near-duplicate grouping without regrouping it.

    ``existing_groups`` must be ``near_duplicate_groups`` of ``existing_normalized`` (after
    earlier updates) and ``existing_band_keys`` their ``near_duplicate_band_keys``. New rows are
    compared only with each other and with existing rows that share an LSH bucket with one of
    them, under the same bucket rule as the whole computation (sorted neighbours within a bucket,
    over the bucket's existing and new members together); only those existing rows' strings are
    read. The sorted-neighbourhood pass of ``near_duplicate_groups`` is not run (it would need
    every existing string sorted).

    The result equals ``near_duplicate_groups`` over existing + new rows (existing groups
    rewritten by ``merges``) when that finds every pair through LSH and no bucket holds more than
    ``BUCKET_WINDOW + 1`` distinct strings; otherwise the two can differ by pairs one found and
    the other did not (every merge is still a verified near-duplicate pair).
    """
    _check_threshold(threshold)
    old = _as_strings(existing_normalized)
    new = _as_strings(new_normalized)
    n, q = len(old), len(new)
    groups_in = existing_groups
    if isinstance(groups_in, pa.ChunkedArray):
        groups_in = groups_in.combine_chunks()
    old_groups = pc.fill_null(pa.array(groups_in, pa.int64()), -1).to_numpy().astype(np.int64)
    if len(old_groups) != n:
        raise ValueError(f"{len(old_groups)} existing groups for {n} existing rows")
    old_keys, old_valid = _stored_keys(existing_band_keys, n)
    old_valid &= old.is_valid().to_numpy(zero_copy_only=False) & (old_groups >= 0)

    new_uniques, new_codes = _encode(new)
    new_unique_keys = minhash.band_keys(new_uniques)
    new_band_keys = _key_table(new_unique_keys, new_codes)
    new_keys = new_unique_keys.T  # (BANDS, strings), a band's keys contiguous

    # Existing rows sharing a bucket with a new string in some band.
    touched = np.zeros(n, dtype=bool)
    for j in range(len(new_keys)):
        touched |= _isin(old_keys[j], new_keys[j])
    touched &= old_valid
    touched_rows = np.flatnonzero(touched)

    # Nodes: the distinct strings among touched existing rows and new rows (an existing string
    # repeated, or repeated by a new row, is one node).
    combined = pa.concat_arrays(
        [
            old.take(pa.array(touched_rows)).cast(pa.large_string()),
            new_uniques.cast(pa.large_string()),
        ]
    )
    nodes, node_of = _encode(combined)
    node_of_touched, node_of_new = node_of[: len(touched_rows)], node_of[len(touched_rows) :]
    m = len(nodes)
    node_keys = np.empty((len(new_keys), m), dtype=np.uint64)
    node_keys[:, node_of_touched] = old_keys[:, touched_rows]
    node_keys[:, node_of_new] = new_keys
    is_new = np.zeros(m, dtype=bool)
    is_new[node_of_new] = True

    # Union-find labels: existing group ids stay themselves (< n); a node holding no existing
    # row starts as n + its first new row. A component's smallest label is its group id.
    first_new_row = np.full(len(new_uniques), n + q, dtype=np.int64)
    valid_new = new_codes >= 0
    np.minimum.at(first_new_row, new_codes[valid_new], n + np.flatnonzero(valid_new))
    node_label = np.full(m, n + q, dtype=np.int64)
    np.minimum.at(node_label, node_of_touched, old_groups[touched_rows])
    np.minimum.at(node_label, node_of_new, first_new_row)

    if m > 1 and threshold < 1:
        verifier = _Verifier(nodes, threshold, workers)
        # Roots over nodes, seeded so that nodes of one existing group are already joined.
        labels, root = np.unique(node_label, return_inverse=True)
        first_node = np.full(len(labels), m, dtype=np.int64)
        np.minimum.at(first_node, root, np.arange(m))
        root = first_node[root]
        by_content = pc.sort_indices(nodes).to_numpy()
        for column in node_keys:
            # Only buckets holding a new string matter; existing pairs are already decided.
            members = np.flatnonzero(_isin(column, column[is_new]))
            order = _positions(by_content, members)
            a, b = _bucket_pairs(column[members], order, _content_rank(order))
            a, b = members[a], members[b]
            either_new = is_new[a] | is_new[b]
            root = verifier.link(root, a[either_new], b[either_new])
    else:
        root = np.arange(m, dtype=np.int64)
    component_label = np.full(m, n + q, dtype=np.int64)
    np.minimum.at(component_label, root, node_label)
    final = component_label[root]

    groups = n + np.arange(q, dtype=np.int64)
    groups[valid_new] = final[node_of_new][new_codes[valid_new]]
    # Existing groups now inside a component whose id is smaller.
    existing = node_label < n
    pairs = np.unique(np.stack([node_label[existing], final[existing]], axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    merges = pa.table(
        {
            "from_group": pa.array(pairs[:, 0], pa.int64()),
            "into_group": pa.array(pairs[:, 1], pa.int64()),
        }
    )
    return NearDuplicateUpdate(pa.array(groups, pa.int64()), merges, new_band_keys)


def _isin(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``np.isin`` for hash keys and a pool smaller than ``values``: a lookup table on the low
    bits rules most values out, a binary search settles the rest."""
    pool = np.unique(pool)
    out = np.zeros(len(values), dtype=bool)
    if not len(pool):
        return out
    low = np.uint64((1 << max(10, (4 * len(pool)).bit_length())) - 1)
    table = np.zeros(int(low) + 1, dtype=bool)
    table[(pool & low).astype(np.intp)] = True
    maybe = np.flatnonzero(table[(values & low).astype(np.intp)])
    at = np.minimum(np.searchsorted(pool, values[maybe]), len(pool) - 1)
    out[maybe] = pool[at] == values[maybe]
    return out


def _positions(by_content: np.ndarray, members: np.ndarray) -> np.ndarray:
    """``members``' local indices (0 .. len-1) in the content order ``by_content``."""
    local = np.full(len(by_content), -1, dtype=np.int64)
    local[members] = np.arange(len(members))
    ranked = local[by_content]
    return ranked[ranked >= 0]


def row_order(table: pa.Table, order_by: Sequence[tuple[str, str]] | None) -> np.ndarray:
    """Row indices sorted by ``order_by`` (column, "ascending" | "descending"), nulls last and
    ties in input order."""
    n = table.num_rows
    if not order_by:
        return np.arange(n, dtype=np.int64)
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    sort_keys = []
    for i, item in enumerate(order_by):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(f"order_by entries must be (column, direction) pairs, got {item!r}")
        column, direction = item
        if column not in table.column_names:
            raise ValueError(f"order_by column {column!r} is not in the table")
        if direction not in _DIRECTIONS:
            raise ValueError(f"order_by direction must be one of {_DIRECTIONS}, got {direction!r}")
        columns[f"k{i}"] = table[column]
        sort_keys.append((f"k{i}", direction, "at_end"))
    columns["row"] = pa.array(np.arange(n, dtype=np.int64))
    keys = pa.table(columns)
    sort_keys.append(("row", "ascending", "at_end"))
    return pc.sort_indices(keys, sort_keys=sort_keys).to_numpy()


def keep_one_per_group(
    table: pa.Table, group_col: str, order_by: Sequence[tuple[str, str]]
) -> pa.Table:
    """For each group, the first row under ``order_by`` (ties in input order), in input order.

    Rows with a null group are all kept: nothing says they duplicate anything.
    """
    if group_col not in table.column_names:
        raise ValueError(f"group column {group_col!r} is not in the table")
    order = row_order(table, order_by)
    groups = table[group_col].combine_chunks()
    codes = pc.fill_null(pc.dictionary_encode(groups).indices, -1).to_numpy().astype(np.int64)
    keep = codes < 0
    ranked = codes[order]
    valid = np.flatnonzero(ranked >= 0)
    _, first = np.unique(ranked[valid], return_index=True)
    keep[order[valid[first]]] = True
    return table.filter(pa.array(keep))


def _mutate(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(len(chars))
        op = rng.random()
        if op < 0.4:
            chars[pos] = rng.choice(string.ascii_lowercase)
        elif op < 0.7 and len(chars) > 1:
            del chars[pos]
        else:
            chars.insert(pos, rng.choice(string.ascii_lowercase))
    return "".join(chars)


def planted_prompts(
    n: int, dup_share: float = 0.2, seed: int = 0, *, words: tuple[int, int] = (6, 16)
) -> tuple[list[str], np.ndarray]:
    """``n`` prompts of ``words`` random words (30% with an order number appended), of which
    about ``dup_share`` are 1-3 character edits of an earlier prompt, and per prompt the index
    of the prompt it was edited from (-1 for one that is not an edit)."""
    rng = random.Random(seed)
    vocab = [
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(20000)
    ]
    prompts: list[str] = []
    sources: list[int] = []
    for _ in range(n):
        if prompts and rng.random() < dup_share:
            source = rng.randrange(len(prompts))
            prompts.append(_mutate(prompts[source], rng))
            sources.append(source)
        else:
            chosen = rng.choices(vocab, k=rng.randint(*words))
            if rng.random() < 0.3:
                chosen += ["order", str(rng.randrange(10**6))]
            prompts.append(" ".join(chosen))
            sources.append(-1)
    return prompts, np.array(sources, dtype=np.int64)


def synthetic_prompts(n: int, dup_share: float = 0.2, seed: int = 0) -> tuple[list[str], int]:
    """``planted_prompts``, and the number of prompts that are not edits."""
    prompts, sources = planted_prompts(n, dup_share, seed)
    return prompts, int((sources < 0).sum())


def planted_pair_recall(
    prompts: Sequence[str], sources: np.ndarray, groups: np.ndarray, threshold: float = 0.9
) -> tuple[int, int]:
    """Of the planted (edit, source) pairs that are near-duplicates at ``threshold`` (an edit
    of a short prompt may not be), how many ``groups`` put together, and how many there are."""
    edits = np.flatnonzero(sources >= 0)
    texts = np.array(prompts, dtype=object)
    scores = process.cpdist(
        texts[edits],
        texts[sources[edits]],
        scorer=Indel.normalized_similarity,
        dtype=np.float64,
        workers=-1,
    )
    edits = edits[scores >= threshold - _EPS]
    return int((groups[edits] == groups[sources[edits]]).sum()), len(edits)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark near_duplicate_groups.")
    parser.add_argument("--n", type=int, default=200_000, help="number of synthetic prompts")
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--workers", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    prompts, sources = planted_prompts(args.n, seed=args.seed)
    values = pa.array(prompts, pa.string())
    start = time.perf_counter()
    groups = near_duplicate_groups(values, args.threshold, workers=args.workers)
    elapsed = time.perf_counter() - start
    count = len(pc.unique(groups))
    found, planted = planted_pair_recall(prompts, sources, groups.to_numpy(), args.threshold)
    print(
        f"rows={args.n} seconds={elapsed:.2f} rows_per_s={args.n / elapsed:,.0f} "
        f"groups={count} groups_if_every_edit_found={int((sources < 0).sum())} "
        f"planted_pairs_found={found}/{planted} pair_recall={found / max(planted, 1):.5f}"
    )


if __name__ == "__main__":
    main()
