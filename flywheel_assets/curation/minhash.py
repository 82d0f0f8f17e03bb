"""MinHash signatures and LSH band keys of strings' character 3-grams, in numpy: the candidate
generation behind near-duplicate grouping (``dedup.near_duplicate_groups``).

Everything here depends only on a string's content and the fixed seeds below, never on the other
strings or their order, so band keys can be stored next to rows and compared across runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "BANDS",
    "ROWS",
    "SCHEME",
    "SHINGLE",
    "band_keys",
    "char_counts",
    "collision_probability",
    "signatures",
]

# Shingles: character k-grams of the string padded with k - 1 start and k - 1 end marks, so a
# string of L characters has N = L + k - 1 of them (an edit near either end still leaves most
# intact, and "" and "a" have some).
#
# Why k = 3. Indel distance d counts inserted and deleted characters (a substitution is 2). A
# deleted character breaks at most k of a string's k-grams and an insertion point k - 1, so a
# pair at distance d shares at least N - k*d k-grams and its Jaccard similarity is at least
#     J >= (N - k*d) / (N + k*d).
# Smaller k keeps more grams through an edit; with k = 2, unrelated strings share so many
# bigrams that buckets fill with them. With k = 3: a 40-character prompt with 3 substituted
# characters (Indel 0.925) keeps J >= 33/51 = 0.65; the benchmark's planted 1-3 character edits
# have J >= 0.51, and 99.9% of them J >= 0.59 (measured on 200,000 prompts).
SHINGLE = 3
# Banding: two strings share a bucket of a band when all ROWS minhashes of that band agree, which
# for Jaccard J happens with probability J**ROWS, independently per band, so they share a bucket
# in at least one of BANDS bands with probability
#     P(J) = 1 - (1 - J**ROWS) ** BANDS.
# 32 bands x 3 rows (96 minhashes): P(0.5) = 0.9861, P(0.58) = 0.99904, P(0.6) = 0.99958,
# P(0.7) = 0.9999985. So the 0.999 target holds for every pair with J >= 0.58, which takes in
# Indel >= 0.9 pairs whose edits are typos (a few per sentence, or clustered: a run of e edits
# breaks only about e + k - 1 grams). What no feasible banding promises: at Indel exactly 0.9,
# d may reach 0.18 * L, and insertions or deletions spread one every five or six characters
# bring J down to about 1/3, where P(1/3) = 0.70. Covering J = 1/3 at 0.999 takes 59 bands of 2
# rows; with 2 rows, unrelated prompts collide so often that the benchmark's random-word prompts
# had buckets of 2,500 strings and 58 candidate pairs per string (0.2 per string with 3 rows).
# Such pairs are left to union-find chains and the sorted-neighbourhood pass in ``dedup``.
ROWS = 3
BANDS = 32
# Fixed seeds: signatures are a function of the string only, stable across runs and machines.
_SEED = 0x5EED_F1F1
# Names the parameters; stored band keys made under another scheme cannot be compared.
SCHEME = f"minhash-v1;shingle={SHINGLE};bands={BANDS};rows={ROWS};seed={_SEED}"

# Code points are < 2**21, so k = 3 of them pack exactly into one uint64, and the marks sit just
# past the last code point.
_BITS = 21
_START, _END = 0x110000, 0x110001
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# Shingle hashes per minhash block: a (hashes x block) uint32 buffer stays in cache.
_BLOCK = 4096
# Classes of characters in ``char_counts``.
COUNT_BINS = 32
# Rows per shingling pass, to bound temporaries.
_ROW_CHUNK = 16384


def collision_probability(jaccard: float, bands: int = BANDS, rows: int = ROWS) -> float:
    """Probability that a pair with this 3-gram Jaccard similarity shares a bucket in some band."""
    return 1.0 - (1.0 - jaccard**rows) ** bands


def _parameters(count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(_SEED)
    a = rng.integers(0, 2**31, count, dtype=np.uint32) * np.uint32(2) + np.uint32(1)  # odd
    b = rng.integers(0, 2**32, count, dtype=np.uint32)
    return a, b


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection of uint64 that scatters every input bit (in place)."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _code_points(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Code points of every string, concatenated (uint64), and each string's start in them."""
    values = values.cast(pa.large_string())
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)[
        values.offset : values.offset + len(values) + 1
    ]
    data = values.buffers()[2]
    raw = (
        np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]
        if data is not None
        else np.empty(0, np.uint8)
    )
    offsets = offsets - offsets[0]
    if not len(raw) or raw.max() < 0x80:  # ASCII: one byte, one code point
        return raw.astype(np.uint64), offsets
    # UTF-8 (valid, as Arrow strings are): decode each multi-byte lead with its continuations.
    lead = (raw & 0xC0) != 0x80
    at = np.flatnonzero(lead)
    cp = raw[at].astype(np.uint32)
    wide = np.flatnonzero(cp >= 0x80)
    first = cp[wide]
    size = 2 + (first >= 0xE0) + (first >= 0xF0)
    value = first & np.where(size == 2, 0x1F, np.where(size == 3, 0x0F, 0x07)).astype(np.uint32)
    for i in (1, 2, 3):
        more = size > i
        cont = raw[np.minimum(at[wide] + i, len(raw) - 1)].astype(np.uint32) & 0x3F
        value = np.where(more, (value << 6) | cont, value)
    cp[wide] = value
    starts = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(pc.utf8_length(values).to_numpy(zero_copy_only=False), out=starts[1:])
    return cp.astype(np.uint64), starts


def char_counts(values: pa.Array) -> np.ndarray:
    """Per string, how many of its characters fall in each of COUNT_BINS hashed classes, capped
    at 255: (len(values), COUNT_BINS) uint8, nulls as empty strings.

    An insertion or deletion changes one class's count by one, and capping only shrinks
    differences, so the L1 distance of two strings' counts is a lower bound of their Indel
    distance: a cheap test that rules out most candidate pairs before rapidfuzz runs.
    """
    out = np.empty((len(values), COUNT_BINS), dtype=np.uint8)
    shift = np.uint64(64 - (COUNT_BINS - 1).bit_length())
    for first, chunk in _chunks(values):
        cp, starts = _code_points(chunk)
        row = np.repeat(np.arange(len(chunk), dtype=np.int64), np.diff(starts))
        bins = ((cp * _GOLDEN) >> shift).astype(np.int64)
        counts = np.bincount(row * COUNT_BINS + bins, minlength=len(chunk) * COUNT_BINS)
        out[first : first + len(chunk)] = np.minimum(counts, 255).reshape(-1, COUNT_BINS)
    return out


def _shingle_hashes(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hash of each padded character k-gram of each string, and each string's start in
    them (string i has L_i + k - 1 k-grams)."""
    k = SHINGLE
    cp, starts = _code_points(values)
    m = len(values)
    pad = k - 1
    row = np.arange(m + 1, dtype=np.int64)
    padded_starts = starts + 2 * pad * row
    size = int(padded_starts[-1])
    begin = (padded_starts[:-1, None] + np.arange(pad)).ravel()
    end = (padded_starts[1:, None] - pad + np.arange(pad)).ravel()
    is_char = np.ones(size, dtype=bool)
    is_char[begin] = is_char[end] = False
    padded = np.empty(size, dtype=np.uint64)
    padded[is_char] = cp
    padded[begin] = _START
    padded[end] = _END
    # The k-gram starting at each position; those starting on an end mark run into the next
    # string and are dropped.
    grams = padded[: size - pad].copy()
    for i in range(1, k):
        grams |= padded[i : size - pad + i] << np.uint64(_BITS * i)
    keep = np.ones(size, dtype=bool)
    keep[end] = False
    keep = keep[: size - pad]
    grams = _mix64(grams[keep])
    hashes = (grams >> np.uint64(32)).astype(np.uint32)
    return hashes, starts + pad * row


def _signature_block(values: pa.Array, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minhashes of a few thousand strings (no nulls): (len(a), len(values)) uint32."""
    hashes, starts = _shingle_hashes(values)
    rows = len(starts) - 1
    out = np.empty((len(a), rows), dtype=np.uint32)
    buffer = np.empty((len(a), _BLOCK), dtype=np.uint32)
    lo = 0
    while lo < rows:
        # Whole strings per block, at least one even if it alone exceeds the block.
        hi = max(int(np.searchsorted(starts, starts[lo] + _BLOCK, side="right")) - 1, lo + 1)
        hi = min(hi, rows)
        s0, s1 = starts[lo], starts[hi]
        if s1 - s0 > buffer.shape[1]:
            buffer = np.empty((len(a), s1 - s0), dtype=np.uint32)
        block = buffer[:, : s1 - s0]
        np.multiply(hashes[None, s0:s1], a[:, None], out=block)
        np.add(block, b[:, None], out=block)
        out[:, lo:hi] = np.minimum.reduceat(block, starts[lo:hi] - s0, axis=1)
        lo = hi
    return out


def _chunks(values: pa.Array | pa.ChunkedArray) -> Iterator[tuple[int, pa.Array]]:
    """Slices of ``_ROW_CHUNK`` strings, nulls as empty strings, with their first row."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    for first in range(0, len(values), _ROW_CHUNK):
        yield first, pc.fill_null(values.slice(first, _ROW_CHUNK), "")


def signatures(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """MinHash signature of each string: (len(values), BANDS * ROWS) uint32. Nulls are treated
    as empty strings (callers give null rows no keys).

    Minhash i of a set of shingle hashes h is min((a_i * h + b_i) mod 2**32) with a_i odd: an
    affine bijection of the 32-bit hashes per i, which behaves like an independent random
    permutation here (measured: per-band collision rates match J**ROWS).
    """
    a, b = _parameters(BANDS * ROWS)
    out = np.empty((len(values), BANDS * ROWS), dtype=np.uint32)
    for first, chunk in _chunks(values):
        out[first : first + len(chunk)] = _signature_block(chunk, a, b).T
    return out


def band_keys(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """One uint64 per band per string, (len(values), BANDS): a hash of the band's ROWS minhashes.
    Two strings share a bucket of band j when their keys in column j are equal. Nulls get the
    keys of the empty string. (Stored band by band: each column is contiguous.)"""
    a, b = _parameters(BANDS * ROWS)
    out = np.empty((BANDS, len(values)), dtype=np.uint64)
    for first, chunk in _chunks(values):
        sig = _signature_block(chunk, a, b)
        for j in range(BANDS):
            key = np.full(len(chunk), j, dtype=np.uint64)
            for i in range(ROWS):
                # key * odd + minhash is a bijection of key for each minhash, and _mix64 one of
                # the sum: distinct bands of minhashes collide only by a 2**-64 accident.
                key *= _GOLDEN
                key += sig[j * ROWS + i]
                _mix64(key)
            out[j, first : first + len(chunk)] = key
    return out.T
