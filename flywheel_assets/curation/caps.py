"""Feedback and training-set caps per account, so that no single user can steer the model."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flywheel_assets.curation.dedup import row_order

__all__ = ["cap_affected", "cap_user_share", "over_cap_feedback"]

_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _combined(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _user_codes(users: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Dense int code per user, -1 for null."""
    users = _combined(users)
    if pa.types.is_null(users.type):
        return np.full(len(users), -1, dtype=np.int64)
    encoded = pc.dictionary_encode(users)
    return pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64)


def over_cap_feedback(
    user_hash: pa.Array | pa.ChunkedArray,
    ts: pa.Array | pa.ChunkedArray,
    *,
    max_per_window: int = 20,
    window_hours: float = 24.0,
) -> pa.BooleanArray:
    """True for each feedback event beyond a user's first ``max_per_window`` in a rolling window.

    Events are ordered by ``ts`` (ties in input order); an event is over cap when more than
    ``max_per_window`` events of the same user, itself included, fall in the ``window_hours``
    ending at it (an event exactly ``window_hours`` earlier is outside). Every event counts,
    over cap or not, so a flood keeps the user capped until it has aged out. Rows with a null
    user or a null ``ts`` are never over cap and do not count.
    """
    if isinstance(max_per_window, bool) or not isinstance(max_per_window, int):
        raise ValueError(f"max_per_window must be an integer, got {max_per_window!r}")
    if max_per_window < 1:
        raise ValueError(f"max_per_window must be >= 1, got {max_per_window}")
    if isinstance(window_hours, bool) or not isinstance(window_hours, (int, float)):
        raise ValueError(f"window_hours must be a number, got {window_hours!r}")
    if not (window_hours > 0 and math.isfinite(window_hours)):
        raise ValueError(f"window_hours must be a positive number, got {window_hours}")
    ts = _combined(ts)
    if len(user_hash) != len(ts):
        raise ValueError(f"user_hash has {len(user_hash)} rows but ts has {len(ts)}")
    if not pa.types.is_timestamp(ts.type):
        raise TypeError(f"ts must be a timestamp array, got {ts.type}")

    n = len(ts)
    over = np.zeros(n, dtype=bool)
    codes = _user_codes(user_hash)
    ticks = pc.fill_null(ts.cast(pa.int64()), 0).to_numpy().astype(np.int64)
    counted = (codes >= 0) & _valid(ts)
    # Only users with more events than the cap overall can ever exceed it in a window.
    per_user = np.bincount(codes[counted], minlength=1)
    heavy = per_user > max_per_window
    candidates = np.flatnonzero(counted & heavy[np.where(codes >= 0, codes, 0)])
    if not len(candidates):
        return pa.array(over)
    window = round(window_hours * 3600 * _PER_SECOND[ts.type.unit])
    order = candidates[np.lexsort((candidates, ticks[candidates], codes[candidates]))]
    users = codes[order]
    bounds = np.flatnonzero(np.diff(users)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(order)]))
    for start, end in zip(starts, ends, strict=True):
        times = ticks[order[start:end]]
        # Events inside the window ending at each event: those later than (t - window).
        first_inside = np.searchsorted(times, times - window, side="right")
        in_window = np.arange(len(times)) - first_inside + 1
        over[order[start:end]] = in_window > max_per_window
    return pa.array(over)


def cap_affected(
    user_hash: pa.Array | pa.ChunkedArray,
    ts: pa.Array | pa.ChunkedArray,
    new: np.ndarray,
    *,
    max_per_window: int,
    window_hours: float,
) -> np.ndarray:
    """The events whose ``over_cap_feedback`` result the ``new`` events (a mask) can have changed.

    A new event counts in the windows of its user's events from its own time to ``window_hours``
    later, and only a user with more than ``max_per_window`` events can be over the cap at all.
    Both bounds are taken inclusively, so the answer may hold a few events too many, never too
    few.
    """
    ts = _combined(ts)
    n = len(ts)
    affected = np.zeros(n, dtype=bool)
    codes = _user_codes(user_hash)
    ticks = pc.fill_null(ts.cast(pa.int64()), 0).to_numpy().astype(np.int64)
    counted = (codes >= 0) & _valid(ts)
    per_user = np.bincount(codes[counted], minlength=max(1, int(codes.max(initial=-1)) + 1))
    heavy = counted & (per_user[np.where(codes >= 0, codes, 0)] > max_per_window)
    seeds = np.flatnonzero(np.asarray(new, dtype=bool) & heavy)
    if not len(seeds):
        return affected
    window = round(window_hours * 3600 * _PER_SECOND[ts.type.unit])
    # Users with a new event, renumbered densely so (user, time) fits one sortable integer.
    seed_users, dense = np.unique(codes[seeds], return_inverse=True)
    rows = np.flatnonzero(heavy & np.isin(codes, seed_users))
    start = int(ticks[rows].min())
    span = int(ticks[rows].max()) - start + window + 2
    if span * len(seed_users) >= 2**62:  # would overflow: every event of those users, then
        affected[rows] = True
        return affected
    seed_keys = np.sort(dense * span + (ticks[seeds] - start))
    row_users = np.searchsorted(seed_users, codes[rows])
    row_keys = row_users * span + (ticks[rows] - start)
    # The latest new event of the same user at or before each event, and how long before.
    latest = np.searchsorted(seed_keys, row_keys, side="right") - 1
    found = latest >= 0
    same_user = np.zeros(len(rows), dtype=bool)
    same_user[found] = seed_keys[latest[found]] // span == row_users[found]
    near = same_user & (row_keys - seed_keys[np.maximum(latest, 0)] <= window)
    affected[rows[near]] = True
    return affected


def _valid(values: pa.Array) -> np.ndarray:
    return np.asarray(pc.is_valid(values).to_numpy(zero_copy_only=False), dtype=bool)


def cap_user_share(
    table: pa.Table,
    *,
    user_col: str = "user_hash",
    max_share: float = 0.1,
    min_rows_per_user: int = 5,
    order_by: Sequence[tuple[str, str]] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Split ``table`` into (kept, dropped) so no user has more than
    ``max(min_rows_per_user, floor(max_share * num_rows))`` rows.

    Each user keeps their first rows under ``order_by`` (ties, or no ``order_by``, in input
    order); rows with a null user are always kept. Both tables keep the input row order.
    """
    if isinstance(max_share, bool) or not isinstance(max_share, (int, float)):
        raise ValueError(f"max_share must be a number in (0, 1], got {max_share!r}")
    if not 0 < max_share <= 1:
        raise ValueError(f"max_share must be in (0, 1], got {max_share}")
    if isinstance(min_rows_per_user, bool) or not isinstance(min_rows_per_user, int):
        raise ValueError(f"min_rows_per_user must be an integer, got {min_rows_per_user!r}")
    if min_rows_per_user < 1:
        raise ValueError(f"min_rows_per_user must be >= 1, got {min_rows_per_user}")
    if user_col not in table.column_names:
        raise ValueError(f"user column {user_col!r} is not in the table")

    n = table.num_rows
    if n == 0:
        return table, table
    # The epsilon keeps float error from flooring e.g. 0.29 * 100 down to 28.
    cap = max(min_rows_per_user, math.floor(max_share * n + 1e-9))
    order = row_order(table, order_by)
    codes = _user_codes(table[user_col])
    ranked = codes[order]
    # Rank of each row within its user, in the order_by order: a stable sort by user keeps it.
    by_user = np.argsort(ranked, kind="stable")
    users_sorted = ranked[by_user]
    starts = np.flatnonzero(np.r_[True, users_sorted[1:] != users_sorted[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank = np.empty(n, dtype=np.int64)
    rank[order[by_user]] = np.arange(n) - group_start
    keep = (codes < 0) | (rank < cap)
    mask = pa.array(keep)
    return table.filter(mask), table.filter(pc.invert(mask))
