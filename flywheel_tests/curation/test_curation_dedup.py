"""Near-duplicate prompt grouping and keeping one row per group."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import Indel

from flywheel_assets.curation import dedup, minhash
from flywheel_assets.curation.dedup import (
    BAND_KEY_COLUMNS,
    BUCKET_WINDOW,
    WINDOW,
    assign_near_duplicates,
    keep_one_per_group,
    near_duplicate_band_keys,
    near_duplicate_groups,
    planted_pair_recall,
    planted_prompts,
    synthetic_prompts,
)
from flywheel_tests.support.reference import dedup as reference


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
    prompts, sources = planted_prompts(50_000, seed=11)
    originals = int((sources < 0).sum())
    out = near_duplicate_groups(pa.array(prompts))
    assert len(out) == 50_000
    found = len(np.unique(out.to_numpy()))
    # Most planted edits are found; never more groups than distinct prompts.
    assert originals <= found < originals + 0.02 * (50_000 - originals)
    hits, planted = planted_pair_recall(prompts, sources, out.to_numpy())
    assert planted > 9_000
    assert hits == planted  # every planted near-duplicate pair


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


# -- MinHash LSH candidates ---------------------------------------------------------------------


def between_fillers(count: int) -> list[str]:
    """Strings that sort between "b <core> b" and "c <core> c" forwards, reversed and with words
    sorted (the three orderings of the sorted-neighbourhood pass), for a core of words that sort
    after "article" and before "zq"."""
    return [f"b zq{letters(i)} about article zz b" for i in range(count)]


def test_near_duplicates_edited_at_both_ends_behind_many_others_are_found():
    a = "b please summarise this long article about llamas b"
    b = "c please summarise this long article about llamas c"
    values = [a, *between_fillers(2 * WINDOW), b]
    # The old windowed grouping misses the pair: every ordering puts 32 strings between them.
    old = reference.near_duplicate_groups(values, workers=1).to_pylist()
    assert old[0] != old[-1]
    ids = groups(values)
    assert ids[0] == ids[-1] == 0
    assert set(ids[1:-1]).isdisjoint({0})


def test_a_pair_exactly_at_the_threshold_behind_many_others_is_found():
    a, b = "b summarise llamas b", "c summarise llamas c"
    assert Indel.normalized_similarity(a, b) == pytest.approx(0.9)  # distance 4 over 40
    fillers = [f"b zq{letters(i)} zz b" for i in range(2 * WINDOW)]
    values = [a, *fillers, b]
    old = reference.near_duplicate_groups(values, workers=1).to_pylist()
    assert old[0] != old[-1]
    assert groups(values)[-1] == 0
    assert groups(values, threshold=0.9001)[-1] == len(values) - 1


def test_grouping_only_ever_joins_what_the_old_grouping_split():
    # New candidates are a superset of the old ones, so each old group lies inside a new group.
    prompts, _ = planted_prompts(4000, seed=13)
    new = np.array(groups(prompts))
    old = reference.near_duplicate_groups(prompts, workers=1).to_numpy()
    for gid in np.unique(old):
        assert len(np.unique(new[old == gid])) == 1


def template_family(count: int, seed: int) -> list[str]:
    """Prompts from one template with random ids: thousands share LSH bands (huge buckets), and
    some pairs happen to be near-duplicates."""
    rng = random.Random(seed)
    prefixes = ["", "hi ", "hello ", "hey there ", "good morning "]
    suffixes = ["", " thanks", " please help", " thank you in advance"]
    return [
        f"{rng.choice(prefixes)}where is my order {rng.randrange(10**8):08d}{rng.choice(suffixes)}"
        for _ in range(count)
    ]


def test_same_partition_in_any_order_with_huge_buckets():
    values = template_family(1500, seed=2) + synthetic_prompts(500, seed=4)[0]
    keys = minhash.band_keys(pa.array(values))
    largest = max(np.unique(column, return_counts=True)[1].max() for column in keys.T)
    assert largest > 20 * BUCKET_WINDOW  # the bucket bound is in play
    base = partition(values, groups(values))
    assert len(base) < len(set(values))
    rng = random.Random(3)
    for _ in range(2):
        shuffled = values[:]
        rng.shuffle(shuffled)
        assert partition(shuffled, groups(shuffled)) == base


def test_a_bucket_compares_all_its_pairs_when_small_and_a_bounded_number_when_huge():
    m = 1000
    by_content = np.arange(m, dtype=np.int64)[::-1].copy()
    rank = dedup._content_rank(by_content)
    keys = np.zeros(m, dtype=np.uint64)
    keys[: BUCKET_WINDOW + 1] = 7  # one small bucket; the other 991 strings share key 0
    a, b = dedup._bucket_pairs(keys, by_content, rank)
    pairs = {(min(x, y), max(x, y)) for x, y in zip(a.tolist(), b.tolist(), strict=True)}
    small = set(range(BUCKET_WINDOW + 1))
    assert {(x, y) for x in small for y in small if x < y} <= pairs
    assert all((x in small) == (y in small) for x, y in pairs)
    big = [p for p in pairs if p[0] not in small]
    assert len(big) <= BUCKET_WINDOW * (m - BUCKET_WINDOW - 1)
    # In the huge bucket, neighbours in content order (here: descending index) are compared.
    assert (m - 2, m - 1) in pairs and (BUCKET_WINDOW + 1, m - 1) not in pairs


def test_banding_meets_the_stated_collision_probabilities():
    assert minhash.collision_probability(0.59) >= 0.999
    assert minhash.collision_probability(0.58) >= 0.999 > minhash.collision_probability(0.57)
    assert minhash.collision_probability(0.5) == pytest.approx(0.9861, abs=1e-4)
    assert minhash.collision_probability(0.2) < 0.25


def shingles(text: str) -> set[str]:
    padded = "\x01\x01" + text + "\x02\x02"
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def test_minhash_agreement_estimates_jaccard():
    rng = random.Random(5)
    words = ["".join(rng.choices("abcdefghij", k=rng.randint(2, 7))) for _ in range(300)]
    a = [" ".join(rng.choices(words, k=rng.randint(3, 12))) for _ in range(1500)]
    b = [dedup._mutate(dedup._mutate(x, rng), rng) for x in a]
    sig_a, sig_b = minhash.signatures(pa.array(a)), minhash.signatures(pa.array(b))
    jaccard = np.array(
        [
            len(shingles(x) & shingles(y)) / len(shingles(x) | shingles(y))
            for x, y in zip(a, b, strict=True)
        ]
    )
    agree = sig_a == sig_b
    assert abs(agree.mean() - jaccard.mean()) < 0.01
    # Bands of ROWS agree at the rate J**ROWS: the minhashes act independently.
    bands = agree.reshape(len(a), minhash.BANDS, minhash.ROWS).all(axis=2)
    assert abs(bands.mean() - (jaccard**minhash.ROWS).mean()) < 0.01


def test_signatures_depend_on_the_string_alone():
    prompts, _ = synthetic_prompts(3000, seed=8)
    values = pa.array(prompts + ["héllo wörld ✓ 𝄞", "", "a", "ab"])
    keys = minhash.band_keys(values)
    order = np.random.default_rng(0).permutation(len(values))
    assert (minhash.band_keys(values.take(pa.array(order))) == keys[order]).all()
    assert (minhash.band_keys(values.slice(100, 50)) == keys[100:150]).all()
    assert (minhash.band_keys(pa.chunked_array([values[:7], values[7:]])) == keys).all()
    # Fixed seeds: the same keys in every process (a change here breaks stored keys).
    assert int(minhash.band_keys(pa.array(["where is my order"]))[0, 0]) == WHERE_IS_MY_ORDER_KEY


WHERE_IS_MY_ORDER_KEY = 9778748039622963656


def test_shingles_are_code_points_not_bytes():
    # One edited character costs the same grams whatever its UTF-8 length.
    ascii_pair = ["naive cafe owner", "naive cafx owner"]
    wide_pair = ["naïve café owner", "naïve caf𝄞 owner"]
    sa, sw = minhash.signatures(pa.array(ascii_pair)), minhash.signatures(pa.array(wide_pair))
    hashes, starts = minhash._shingle_hashes(pa.array(wide_pair + ["", "é"]))
    assert np.diff(starts).tolist() == [18, 18, 2, 3]  # L + 2 grams each
    assert len(hashes) == starts[-1]
    assert (sa[0] == sa[1]).mean() > 0.5 and (sw[0] == sw[1]).mean() > 0.5


@settings(max_examples=200, deadline=None)
@given(st.text("abcé𝄞 ", max_size=12), st.text("abcé𝄞 ", max_size=12))
def test_character_counts_bound_the_indel_distance(x, y):
    counts = minhash.char_counts(pa.array([x, y])).astype(np.int64)
    assert np.abs(counts[0] - counts[1]).sum() <= Indel.distance(x, y)


# -- incremental --------------------------------------------------------------------------------


def apply_update(existing_groups: list[int], update) -> list[int]:
    """The grouping of existing + new rows after an update."""
    merged = dict(
        zip(
            update.merges["from_group"].to_pylist(),
            update.merges["into_group"].to_pylist(),
            strict=True,
        )
    )
    return [merged.get(g, g) for g in existing_groups] + update.groups.to_pylist()


def incremental_corpus() -> list[str | None]:
    prompts, _ = synthetic_prompts(1500, seed=21)
    rng = random.Random(22)
    # Chains a ~ b ~ c where a and c are not near-duplicates: b arriving later merges groups.
    chains = []
    for i in range(40):
        a = f"chain {letters(i)} " + " ".join(rng.choices(["alpha", "beta", "gamma"], k=6))
        b = a[:-3] + "xyz"
        c = b[:-6] + "uvwxyz"
        assert Indel.normalized_similarity(a, c) < 0.9 <= Indel.normalized_similarity(a, b)
        assert Indel.normalized_similarity(b, c) >= 0.9
        chains += [a, b, c]
    return prompts + chains + prompts[:30] + [None, None, "", ""]


@pytest.mark.parametrize("seed", range(6))
def test_incremental_grouping_equals_a_whole_recomputation(seed):
    rng = random.Random(seed)
    values = incremental_corpus()
    rng.shuffle(values)
    cut = rng.randrange(len(values) + 1)
    existing, new = values[:cut], values[cut:]
    existing_groups = near_duplicate_groups(existing, workers=1)
    update = assign_near_duplicates(
        existing, existing_groups, near_duplicate_band_keys(existing), new, workers=1
    )
    assert apply_update(existing_groups.to_pylist(), update) == groups(values)
    assert update.band_keys.equals(near_duplicate_band_keys(new))
    into = set(update.merges["into_group"].to_pylist())
    assert into.isdisjoint(update.merges["from_group"].to_pylist())


SMALL_VOCABULARY = [
    "aa bb cc dd ee",
    "aa bb cc dd ef",
    "aa bb cc dx ef",
    "zz yy xx ww",
    "zz yy xx ww!",
    "q",
    None,
]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(SMALL_VOCABULARY), max_size=12), st.data())
def test_incremental_grouping_equals_a_whole_recomputation_on_small_inputs(values, data):
    cut = data.draw(st.integers(0, len(values)))
    existing, new = values[:cut], values[cut:]
    ids = near_duplicate_groups(existing, workers=1)
    update = assign_near_duplicates(
        existing, ids, near_duplicate_band_keys(existing), new, workers=1
    )
    assert apply_update(ids.to_pylist(), update) == groups(values)


def test_incremental_updates_chain_and_report_merges():
    values = incremental_corpus()
    rng = random.Random(7)
    rng.shuffle(values)
    # Existing rows hold the chains' ends, the middles arrive in two batches.
    middles = {v for v in values if v and v.startswith("chain") and v.endswith("xyz")}
    middles = {v for v in middles if not v.endswith("uvwxyz")}
    existing = [v for v in values if v not in middles]
    batches = [sorted(middles)[:20], sorted(middles)[20:]]
    ids = near_duplicate_groups(existing, workers=1).to_pylist()
    keys = near_duplicate_band_keys(existing)
    merges = 0
    for batch in batches:
        update = assign_near_duplicates(existing, ids, keys, batch, workers=1)
        merges += update.merges.num_rows
        ids = apply_update(ids, update)
        existing = existing + batch
        keys = pa.concat_tables([keys, update.band_keys])
    assert merges == 40  # each middle joins its chain's two ends
    assert ids == groups(existing)


def test_incremental_exact_duplicates_nulls_and_threshold_one():
    existing = ["same", None, "other", "same"]
    ids = near_duplicate_groups(existing)
    keys = near_duplicate_band_keys(existing)
    update = assign_near_duplicates(existing, ids, keys, [None, "same", "new", "new"], 1.0)
    assert update.groups.to_pylist() == [4, 0, 6, 6]
    assert update.merges.num_rows == 0
    assert update.band_keys.column(0).null_count == 1
    empty = assign_near_duplicates(existing, ids, keys, [])
    assert empty.groups.to_pylist() == [] and empty.band_keys.num_rows == 0


def test_band_keys_table():
    table = near_duplicate_band_keys(["a b c", None, "a b c", "d"])
    assert table.column_names == list(BAND_KEY_COLUMNS)
    assert len(BAND_KEY_COLUMNS) == minhash.BANDS
    assert all(t == pa.uint64() for t in table.schema.types)
    assert table.column(0).to_pylist()[1] is None
    assert table.slice(0, 1).equals(table.slice(2, 1))
    assert table.schema.metadata[b"flywheel.near_duplicates"] == minhash.SCHEME.encode()
    assert near_duplicate_band_keys([]).num_rows == 0


def test_incremental_refuses_keys_that_do_not_fit():
    existing = ["a b c", "d e f"]
    ids = near_duplicate_groups(existing)
    keys = near_duplicate_band_keys(existing)
    with pytest.raises(ValueError, match="made by"):
        other = keys.replace_schema_metadata({b"flywheel.near_duplicates": b"minhash-v0"})
        assign_near_duplicates(existing, ids, other, ["x"])
    with pytest.raises(ValueError, match="missing"):
        assign_near_duplicates(existing, ids, keys.drop_columns([BAND_KEY_COLUMNS[0]]), ["x"])
    with pytest.raises(ValueError, match="band key rows"):
        assign_near_duplicates(existing, ids, keys.slice(0, 1), ["x"])
    with pytest.raises(ValueError, match="existing groups"):
        assign_near_duplicates(existing, [0], keys, ["x"])
    with pytest.raises(ValueError):
        assign_near_duplicates(existing, ids, keys, ["x"], threshold=0)
