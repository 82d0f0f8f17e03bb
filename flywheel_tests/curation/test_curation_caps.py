"""Per-user caps on feedback rate and on share of a training set."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flywheel_assets.curation.caps import cap_user_share, over_cap_feedback

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
TS = pa.timestamp("us", tz="UTC")


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def over(users, times, **kwargs) -> list[bool]:
    return over_cap_feedback(
        pa.array(users, pa.string()), pa.array(times, TS), **kwargs
    ).to_pylist()


def test_burst_in_one_hour_has_ten_over_cap():
    times = [at(i / 30) for i in range(30)]
    got = over(["u"] * 30, times, max_per_window=20, window_hours=24)
    assert got == [False] * 20 + [True] * 10


def test_burst_in_shuffled_input_flags_the_latest_events():
    hours = [i / 30 for i in range(30)]
    rows = list(range(30))
    random.Random(0).shuffle(rows)
    got = over(["u"] * 30, [at(hours[r]) for r in rows], max_per_window=20)
    assert sorted(r for r, flag in zip(rows, got, strict=True) if flag) == list(range(20, 30))


def test_ties_broken_by_input_order():
    got = over(["u"] * 5, [at(0)] * 5, max_per_window=3)
    assert got == [False, False, False, True, True]


def test_events_spread_over_days_are_not_over_cap():
    # 60 events, one every 2 hours: 12 per 24 hours at most.
    times = [at(2 * i) for i in range(60)]
    assert not any(over(["u"] * 60, times, max_per_window=20))
    assert sum(over(["u"] * 60, times, max_per_window=11)) > 0


def test_window_boundary_is_exclusive():
    # Three events exactly 24 hours apart never share a window.
    assert over(["u"] * 3, [at(0), at(24), at(48)], max_per_window=1) == [False] * 3
    assert over(["u"] * 2, [at(0), at(23.99)], max_per_window=1) == [False, True]


def test_window_rolls_instead_of_resetting_at_midnight():
    # 20 events late on day one and 20 early on day two fall within one rolling 24 hours.
    times = [at(20 + i / 10) for i in range(20)] + [at(25 + i / 10) for i in range(20)]
    assert sum(over(["u"] * 40, times, max_per_window=20)) == 20


def test_users_are_counted_separately_and_null_users_never_capped():
    users = ["a"] * 25 + ["b"] * 20 + [None] * 30
    times = [at(0)] * 75
    got = over(users, times, max_per_window=20)
    assert got == [False] * 20 + [True] * 5 + [False] * 20 + [False] * 30


def test_null_timestamps_do_not_count():
    times = [at(0)] * 2 + [None] * 3
    assert over(["u"] * 5, times, max_per_window=2) == [False] * 5


def test_over_cap_accepts_chunked_arrays_and_other_units():
    users = pa.chunked_array([["u"] * 3, ["u"] * 2])
    times = pa.array([at(0)] * 5, pa.timestamp("s"))
    out = over_cap_feedback(users, times, max_per_window=4, window_hours=0.5)
    assert isinstance(out, pa.BooleanArray)
    assert out.to_pylist() == [False] * 4 + [True]


def test_many_users_vectorized_result_matches_a_direct_count():
    rng = np.random.default_rng(0)
    n = 5000
    users = [f"u{u}" for u in rng.integers(0, 40, n)]
    hours = rng.uniform(0, 72, n)
    got = over(users, [at(float(h)) for h in hours], max_per_window=20, window_hours=6)
    seen: dict[str, list[float]] = {}
    expected = []
    for i in sorted(range(n), key=lambda i: (users[i], hours[i], i)):
        prior = seen.setdefault(users[i], [])
        expected.append((i, sum(1 for h in prior if h > hours[i] - 6) + 1 > 20))
        prior.append(hours[i])
    assert got == [flag for _, flag in sorted(expected)]
    assert 0 < sum(got) < n


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_per_window": 0},
        {"max_per_window": 2.5},
        {"window_hours": 0},
        {"window_hours": -1},
        {"window_hours": float("inf")},
        {"window_hours": "24"},
    ],
)
def test_over_cap_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        over(["u"], [at(0)], **kwargs)


def test_over_cap_length_mismatch_and_bad_type():
    with pytest.raises(ValueError, match="rows"):
        over_cap_feedback(pa.array(["u", "v"]), pa.array([at(0)], TS))
    with pytest.raises(TypeError, match="timestamp"):
        over_cap_feedback(pa.array(["u"]), pa.array([1]))


def share_table() -> pa.Table:
    # 100 rows: user a has 30, b has 12, c has 3, 55 rows have no user.
    users = ["a"] * 30 + ["b"] * 12 + ["c"] * 3 + [None] * 55
    return pa.table({"user_hash": users, "score": list(range(100)), "row": list(range(100))})


def test_share_cap_exact_counts():
    kept, dropped = cap_user_share(share_table(), max_share=0.1, min_rows_per_user=5)
    assert kept.num_rows + dropped.num_rows == 100
    users = kept["user_hash"].drop_null().to_pylist()
    counts = {u: users.count(u) for u in set(users)}
    assert counts == {"a": 10, "b": 10, "c": 3}
    assert kept["user_hash"].null_count == 55
    assert dropped["user_hash"].to_pylist() == ["a"] * 20 + ["b"] * 2
    # Without order_by each user keeps their first rows in input order.
    assert kept.filter(pc.equal(kept["user_hash"], "a"))["row"].to_pylist() == list(range(10))


def test_share_cap_min_rows_per_user_wins_on_small_sets():
    kept, dropped = cap_user_share(share_table(), max_share=0.01, min_rows_per_user=4)
    assert dropped.num_rows == (30 - 4) + (12 - 4)
    assert kept.num_rows == 100 - dropped.num_rows


def test_share_cap_floor_is_exact():
    # 0.29 * 100 is 28.999... in floating point; the cap must still be 29.
    kept, _ = cap_user_share(share_table(), max_share=0.29, min_rows_per_user=1)
    assert kept.filter(pc.equal(kept["user_hash"], "a")).num_rows == 29


def test_share_cap_keeps_first_rows_under_order_by():
    table = share_table()
    kept, dropped = cap_user_share(table, max_share=0.1, order_by=[("score", "descending")])
    a_rows = kept.filter(pc.equal(kept["user_hash"], "a"))["row"].to_pylist()
    assert a_rows == list(range(20, 30))
    assert kept["row"].to_pylist() == sorted(kept["row"].to_pylist())
    assert sorted(dropped["row"].to_pylist()) == list(range(20)) + [30, 31]


def test_share_cap_ties_in_order_by_fall_back_to_input_order():
    table = pa.table({"user_hash": ["a"] * 6, "score": [1, 2, 2, 2, 2, 1]})
    kept, _ = cap_user_share(
        table, max_share=0.5, min_rows_per_user=1, order_by=[("score", "descending")]
    )
    # Cap is floor(0.5 * 6) = 3: the first three of the four tied rows.
    assert kept["score"].to_pylist() == [2, 2, 2]
    assert table.num_rows - kept.num_rows == 3


def test_share_cap_full_share_keeps_everything_and_empty_table():
    kept, dropped = cap_user_share(share_table(), max_share=1.0)
    assert kept.num_rows == 100 and dropped.num_rows == 0
    empty = share_table().slice(0, 0)
    kept, dropped = cap_user_share(empty)
    assert kept.num_rows == 0 and dropped.num_rows == 0
    assert kept.schema == empty.schema


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_share": 0},
        {"max_share": 1.5},
        {"max_share": -0.1},
        {"max_share": "0.1"},
        {"min_rows_per_user": 0},
        {"min_rows_per_user": 2.0},
        {"user_col": "nope"},
        {"order_by": [("nope", "ascending")]},
        {"order_by": [("score", "sideways")]},
    ],
)
def test_share_cap_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        cap_user_share(share_table(), **kwargs)


@pytest.mark.parametrize("seed", range(40))
def test_cap_affected_holds_every_event_whose_cap_status_new_events_change(seed):
    from flywheel_assets.curation.caps import cap_affected

    rng = np.random.default_rng(seed)
    n_old, n_new = int(rng.integers(5, 60)), int(rng.integers(1, 10))
    users = pa.array([f"u{rng.integers(0, 4)}" for _ in range(n_old + n_new)])
    base = 1_795_000_000_000_000  # microseconds, late 2026
    hours = rng.integers(0, 72, n_old + n_new) * 3_600_000_000 // int(rng.integers(1, 4))
    ts = pa.array(base + hours, pa.timestamp("us", tz="UTC"))
    cap = {"max_per_window": int(rng.integers(1, 5)), "window_hours": float(rng.integers(1, 30))}
    before = over_cap_feedback(users[:n_old], ts[:n_old], **cap).to_numpy(zero_copy_only=False)
    after = over_cap_feedback(users, ts, **cap).to_numpy(zero_copy_only=False)
    new = np.r_[np.zeros(n_old, bool), np.ones(n_new, bool)]

    affected = cap_affected(users, ts, new, **cap)

    changed = np.flatnonzero(before != after[:n_old])
    assert affected[changed].all()
    assert affected[n_old:][after[n_old:]].all()  # a new event over the cap is itself affected
    # Events of users who never exceed the cap are never affected.
    light = {
        u for u in set(users.to_pylist()) if users.to_pylist().count(u) <= cap["max_per_window"]
    }
    assert not any(a for a, u in zip(affected, users.to_pylist(), strict=True) if u in light)
