"""Near-duplicate prompt grouping and keeping one row per group."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Indel

from flywheel_assets.curation.dedup import (
    keep_one_per_group,
    near_duplicate_groups,
    synthetic_prompts,
)


def groups(values, threshold: float = 0.9) -> list[int]:
    return near_duplicate_groups(values, threshold, workers=1).to_pylist()


def partition(values: list[str | None], ids: list[int]) -> set[frozenset[str]]:
    """Groups as sets of strings (each string's group), independent of ids and row order."""
    by_id: dict[int, set[str]] = {}
    for value, gid in zip(values, ids, strict=True):
        by_id.setdefault(gid, set()).add(value)
    return {frozenset(s) for s in by_id.values()}


def test_exact_duplicates_share_the_first_rows_id():
    assert groups(["b", "a", "b", "a", "c", "b"]) == [0, 1, 0, 1, 4, 0]


def test_exact_duplicates_share_a_group_even_at_threshold_one():
    assert groups(["same", "other", "same"], threshold=1.0) == [0, 1, 0]


def test_near_duplicates_group_and_distinct_prompts_stay_apart():
    values = [
        "where is my order 123",
        "how do i reset my password",
        "where is my order 124",
        "what is the capital of france",
        "how do i reset my pasword",
        "where is my parcel",
    ]
    assert groups(values) == [0, 1, 0, 3, 1, 5]


def test_output_type_and_accepted_inputs():
    values = ["a b c", "a b c", None]
    out = near_duplicate_groups(pa.chunked_array([values[:1], values[1:]]))
    assert out.type == pa.int64()
    assert out.to_pylist() == [0, 0, 2]
    assert near_duplicate_groups(values).to_pylist() == [0, 0, 2]
    assert near_duplicate_groups(pa.array(values, pa.large_string())).to_pylist() == [0, 0, 2]


def test_nulls_are_singletons():
    assert groups([None, "x y", None, "x y"]) == [0, 1, 2, 1]


def test_empty_input():
    assert groups([]) == []


def test_threshold_edges():
    # Indel distance 2 over 20 characters: similarity exactly 0.9.
    a, b = "abcdefghij", "abcdefghik"
    assert Indel.normalized_similarity(a, b) == pytest.approx(0.9)
    assert groups([a, b], threshold=0.9) == [0, 0]
    assert groups([a, b], threshold=0.9001) == [0, 1]
    assert groups([a, b], threshold=0.5) == [0, 0]
    assert groups([a, b], threshold=1.0) == [0, 1]


@pytest.mark.parametrize("threshold", [0, -0.1, 1.01, True, "0.9"])
def test_bad_threshold(threshold):
    with pytest.raises(ValueError):
        near_duplicate_groups(["a"], threshold)


def test_non_string_input_is_rejected():
    with pytest.raises(TypeError):
        near_duplicate_groups(pa.array([1, 2]))


def letters(i: int) -> str:
    return "".join("abcdefghijklmnopqrstuvwxyz"[int(d)] for d in f"{i:04d}")


def test_edit_in_the_first_word_is_found_through_the_reversed_ordering():
    a = "please summarise this long article about llamas"
    b = "qlease summarise this long article about llamas"
    # Twenty dissimilar strings sort between a and b forwards and words-sorted, not reversed.
    fillers = [f"pz{letters(i)} about article llamas long" for i in range(20)]
    ids = groups([a, *fillers, b])
    assert ids[0] == ids[-1] == 0
    assert set(ids[1:-1]).isdisjoint({0})


def test_numbers_are_masked_so_edits_at_both_ends_are_found():
    a = "7 where is my order 123"
    b = "8 where is my order 124"
    # Unmasked, these sort between a and b in all three orderings.
    fillers = [f"7z{letters(i)} 1239 foo 93" for i in range(20)]
    ids = groups([a, *fillers, b])
    assert ids[0] == ids[-1] == 0
    assert set(ids[1:-1]).isdisjoint({0})


def test_moved_word_is_found_through_the_words_sorted_ordering():
    a = "ok please summarise this long article about llamas and alpacas for me"
    b = "please summarise this long article about llamas and alpacas for me ok"
    assert Indel.normalized_similarity(a, b) >= 0.9
    # Twenty dissimilar strings sort between a and b forwards and reversed.
    fillers = [f"oz{letters(i)} h" for i in range(20)]
    ids = groups([a, *fillers, b])
    assert ids[0] == ids[-1] == 0
    assert set(ids[1:-1]).isdisjoint({0})


def test_neighbours_within_the_window_are_compared():
    a = "alpha beta gamma delta"
    b = "alpha beta gamma deltb"
    # Ten dissimilar strings sort between a and b in every ordering; the window reaches past them.
    fillers = [f"alpha beta gamma delta z{letters(i)}qqqqqqqqqqqq ua" for i in range(10)]
    ids = groups([a, *fillers, b])
    assert ids[0] == ids[-1] == 0
    assert set(ids[1:-1]).isdisjoint({0})


def test_chain_of_template_variants_groups_together():
    values = [f"where is my order {n}" for n in range(1000, 1300)]
    rng = random.Random(1)
    rng.shuffle(values)
    assert len(set(groups(values))) == 1


def test_deterministic():
    prompts, _ = synthetic_prompts(3000, seed=3)
    first = near_duplicate_groups(prompts, workers=1).to_pylist()
    assert near_duplicate_groups(prompts, workers=-1).to_pylist() == first
    assert len(set(first)) < len(prompts)


def test_same_partition_in_any_order():
    prompts, _ = synthetic_prompts(3000, seed=5)
    prompts += prompts[:50]
    base = partition(prompts, groups(prompts))
    rng = random.Random(0)
    for _ in range(3):
        shuffled = prompts[:]
        rng.shuffle(shuffled)
        assert partition(shuffled, groups(shuffled)) == base
    assert len(base) < len(set(prompts))


def test_group_id_is_first_member_and_members_are_similar():
    prompts, _ = synthetic_prompts(2000, seed=7)
    ids = groups(prompts)
    for row, gid in enumerate(ids):
        assert gid <= row
        assert ids[gid] == gid
    # Every multi-member group has each member close to some other member.
    by_id: dict[int, list[str]] = {}
    for value, gid in zip(prompts, ids, strict=True):
        by_id.setdefault(gid, []).append(value)
    for members in by_id.values():
        for m in set(members):
            others = [o for o in set(members) if o != m]
            if others:
                assert max(Indel.normalized_similarity(m, o) for o in others) >= 0.9 - 1e-9


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(["aa bb cc dd", "aa bb cc de", "zz yy", "zz yy!", "q"]), max_size=12)
)
def test_grouping_matches_brute_force_on_small_inputs(values):
    ids = groups(values)
    n = len(values)
    # Brute-force connected components over all pairs.
    comp = list(range(n))

    def find(x: int) -> int:
        while comp[x] != x:
            x = comp[x]
        return x

    for i in range(n):
        for j in range(i + 1, n):
            if Indel.normalized_similarity(values[i], values[j]) >= 0.9 - 1e-9:
                comp[find(j)] = find(i)
    expected_first = {}
    for i in range(n):
        expected_first.setdefault(find(i), i)
    assert ids == [expected_first[find(i)] for i in range(n)]


def test_fifty_thousand_rows_run():
    prompts, originals = synthetic_prompts(50_000, seed=11)
    out = near_duplicate_groups(pa.array(prompts))
    assert len(out) == 50_000
    found = len(np.unique(out.to_numpy()))
    # Most planted edits are found; never more groups than distinct prompts.
    assert originals <= found < originals + 0.02 * (50_000 - originals)


def test_keep_one_per_group_uses_order_then_input_order():
    table = pa.table(
        {
            "group": [0, 0, 0, 3, 3, 5, None, None],
            "priority": [1, 3, 3, 2, None, 0, 1, 1],
            "ts": [10, 1, 5, 7, 9, 1, 1, 2],
            "id": ["a", "b", "c", "d", "e", "f", "g", "h"],
        }
    )
    kept = keep_one_per_group(table, "group", [("priority", "descending"), ("ts", "descending")])
    # Group 0: b and c tie on priority, c is newer; group 3: the null priority sorts last.
    assert kept["id"].to_pylist() == ["c", "d", "f", "g", "h"]
    tie = keep_one_per_group(table, "group", [("priority", "descending")])
    assert tie["id"].to_pylist() == ["b", "d", "f", "g", "h"]
    first = keep_one_per_group(table, "group", [])
    assert first["id"].to_pylist() == ["a", "d", "f", "g", "h"]


def test_keep_one_per_group_with_string_groups_and_empty_table():
    table = pa.table({"g": ["x", "y", "x"], "n": [1, 2, 3]})
    assert keep_one_per_group(table, "g", [("n", "descending")])["n"].to_pylist() == [2, 3]
    empty = table.slice(0, 0)
    assert keep_one_per_group(empty, "g", [("n", "ascending")]).num_rows == 0


@pytest.mark.parametrize(
    ("group_col", "order_by"),
    [("missing", []), ("g", [("missing", "ascending")]), ("g", [("n", "up")]), ("g", ["n"])],
)
def test_keep_one_per_group_bad_arguments(group_col, order_by):
    table = pa.table({"g": [1], "n": [1]})
    with pytest.raises(ValueError):
        keep_one_per_group(table, group_col, order_by)
