"""The review queue on real Delta tables: counts per reason, filters, sort orders, paging, rows
hidden after review, new table versions, an empty lake, and one item with its context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from flywheel_assets.catalog.curated import REVIEW_QUEUE, TAGGED_ROWS
from flywheel_assets.catalog.redacted import REDACTED_FEEDBACK
from flywheel_assets.lake.tables import Lake, TableSpec
from flywheel_assets.review.queue import REASONS, SORTS, ReviewQueue
from flywheel_assets.settings import open_lake

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _write(lake: Lake, spec: TableSpec, rows: list[dict]) -> None:
    """Overwrite the table with `rows`, every schema column present (None where not given)."""
    full = [{name: row.get(name) for name in spec.schema.names} for row in rows]
    unknown = {k for row in rows for k in row} - set(spec.schema.names)
    assert not unknown, f"not columns of {spec.name}: {unknown}"
    lake.overwrite(spec, pa.Table.from_pylist(full, schema=spec.schema))


def _queued(request_id: str, reason: str, minutes: int, tags: list[str] | None = None) -> dict:
    return {
        "request_id": request_id,
        "reason": reason,
        "ts": _at(minutes),
        "prompt": f"prompt of {request_id}",
        "response": f"answer to {request_id}",
        "tags": tags,
        "user_hash": f"user-{request_id}",
        "source_request_ids": [request_id],
        "model_version": "m-1",
        "feedback_kinds": ["thumbs_down"],
        "source_versions": '{"redacted_logs": 1}',
        "_curated_at": _at(1000),
    }


def _tagged(request_id: str, normalized: str, correction: str | None = None, **more) -> dict:
    return {
        "request_id": request_id,
        "ts": _at(0),
        "prompt": f"prompt of {request_id}",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": f"prompt of {request_id}"},
        ],
        "response": f"answer to {request_id}",
        "normalized_prompt": normalized,
        "user_hash": f"user-{request_id}",
        "tags": [],
        "label": "negative",
        "confidence": 0.25,
        "correction": correction,
        "correction_source": "user" if correction else None,
        **more,
    }


def _feedback(feedback_id: str, request_id: str, minutes: int, **more) -> dict:
    return {
        "feedback_id": feedback_id,
        "request_id": request_id,
        "ts": _at(minutes),
        "kind": "thumbs_down",
        "score": None,
        "user_hash": "user-x",
        **more,
    }


# Six queued rows; r2, r3 and r4 share a normalized prompt (a cluster of three), r6 has no
# tagged row. Age order is r1..r6, cluster order is r2, r3, r4 (size 3) then r1, r5, r6.
QUEUE = [
    _queued("r1", "negative_without_correction", 1, []),
    _queued("r2", "negative_without_correction,over_cap", 2, ["drift_window"]),
    _queued("r3", "safety:pii", 3, ["low_confidence"]),
    _queued("r4", "conflict", 4, ["conflict", "drift_window"]),
    _queued("r5", "safety:pii+toxicity,negative_without_correction", 5, None),
    _queued("r6", "over_cap", 6, []),
]
TAGGED = [
    _tagged("r1", "p-a"),
    _tagged("r2", "p-b", label="negative", confidence=0.5),
    _tagged("r3", "p-b"),
    _tagged("r4", "p-b", correction="the fix written on r4"),
    _tagged("r5", "p-c"),
    # not queued: an already corrected twin of the p-b rows, and an uncorrected one
    _tagged("t-fixed", "p-b", correction="the fix written on t-fixed"),
    _tagged("t-open", "p-b"),
]
FEEDBACK = [
    _feedback("f-late", "r2", 30, comment="wrong again"),
    _feedback("f-pair", "r-other", 10, kind="preference", other_request_id="r2"),
    _feedback("f-r3", "r3", 20, comment="not about r2"),
]
COUNTS = {
    "negative_without_correction": 3,
    "conflict": 1,
    "safety": 2,
    "over_cap": 2,
    "drift_window": 2,
    "low_confidence": 1,
}


@pytest.fixture
def lake(tmp_path) -> Lake:
    lake = open_lake(str(tmp_path / "lake"))
    _write(lake, REVIEW_QUEUE, QUEUE)
    _write(lake, TAGGED_ROWS, TAGGED)
    _write(lake, REDACTED_FEEDBACK, FEEDBACK)
    return lake


@pytest.fixture
def queue(lake) -> ReviewQueue:
    return ReviewQueue(lake)


def _ids(page) -> list[str]:
    return [r.request_id for r in page.rows]


def test_counts_cover_every_reason_over_the_whole_queue(queue):
    page = queue.page(per_page=2)
    assert page.counts == COUNTS
    assert set(page.counts) == set(REASONS)
    assert page.total == 6


@pytest.mark.parametrize(
    ("reason", "ids"),
    [
        ("negative_without_correction", ["r1", "r2", "r5"]),
        ("conflict", ["r4"]),
        ("safety", ["r3", "r5"]),
        ("over_cap", ["r2", "r6"]),
        ("drift_window", ["r2", "r4"]),
        ("low_confidence", ["r3"]),
    ],
)
def test_a_reason_filters_the_listing(queue, reason, ids):
    page = queue.page(reason=reason)
    assert _ids(page) == ids
    assert page.total == len(ids) == page.counts[reason]
    assert page.counts == COUNTS  # counts stay those of the whole queue


def test_a_reason_matches_whole_entries_only(tmp_path):
    lake = open_lake(str(tmp_path / "lake"))
    rows = [
        _queued("a", "over_capacity", 1, ["drift_window_closed"]),
        _queued("b", "unsafety", 2, []),
        _queued("c", "conflict,over_cap", 3, []),
    ]
    _write(lake, REVIEW_QUEUE, rows)
    page = ReviewQueue(lake).page()
    assert page.counts == {**dict.fromkeys(REASONS, 0), "conflict": 1, "over_cap": 1}


def test_rows_carry_their_reasons_tags_and_cluster_size(queue):
    rows = {r.request_id: r for r in queue.page().rows}
    assert rows["r5"].reasons == ["safety:pii+toxicity", "negative_without_correction"]
    assert rows["r5"].tags == []  # a null tags list reads as no tags
    assert rows["r4"].tags == ["conflict", "drift_window"]
    assert rows["r3"].ts == _at(3)
    assert rows["r3"].prompt == "prompt of r3"
    assert rows["r3"].response == "answer to r3"
    # Only queued rows count towards a cluster: t-fixed and t-open share p-b but are not queued.
    assert {k: r.cluster_size for k, r in rows.items()} == {
        "r1": 1,
        "r2": 3,
        "r3": 3,
        "r4": 3,
        "r5": 1,
        "r6": 1,
    }


@pytest.mark.parametrize("reason", ["safety:pii", "everything", ""])
def test_an_unknown_reason_is_refused(queue, reason):
    with pytest.raises(ValueError, match="unknown reason"):
        queue.page(reason=reason)


@pytest.mark.parametrize("sort", ["oldest", "", "AGE"])
def test_an_unknown_sort_is_refused(queue, sort):
    with pytest.raises(ValueError, match="unknown sort"):
        queue.page(sort=sort)


@pytest.mark.parametrize(
    ("sort", "ids"),
    [
        ("age", ["r1", "r2", "r3", "r4", "r5", "r6"]),
        ("newest", ["r6", "r5", "r4", "r3", "r2", "r1"]),
        ("cluster", ["r2", "r3", "r4", "r1", "r5", "r6"]),
    ],
)
def test_sort_orders(queue, sort, ids):
    assert sort in SORTS
    assert _ids(queue.page(sort=sort)) == ids


def test_equal_times_are_ordered_by_request_id(tmp_path):
    lake = open_lake(str(tmp_path / "lake"))
    _write(lake, REVIEW_QUEUE, [_queued(i, "over_cap", 1, []) for i in ("q-c", "q-a", "q-b")])
    assert _ids(ReviewQueue(lake).page(sort="age")) == ["q-a", "q-b", "q-c"]


def test_the_largest_cluster_wins_even_when_newest(tmp_path):
    lake = open_lake(str(tmp_path / "lake"))
    _write(lake, REVIEW_QUEUE, [_queued(i, "over_cap", n, []) for n, i in enumerate("abcd")])
    _write(lake, TAGGED_ROWS, [_tagged("a", "old"), _tagged("c", "new"), _tagged("d", "new")])
    ids = _ids(ReviewQueue(lake).page(sort="cluster"))
    assert ids[:2] == ["c", "d"]  # the pair, oldest first, before the older singletons
    assert sorted(ids[2:]) == ["a", "b"]


def test_a_filter_sorts_and_pages_together(queue):
    page = queue.page(reason="negative_without_correction", sort="newest", page=2, per_page=2)
    assert _ids(page) == ["r1"]
    assert (page.total, page.page, page.pages) == (3, 2, 2)


def test_pages_split_the_listing(queue):
    first = queue.page(per_page=4)
    second = queue.page(per_page=4, page=2)
    assert (_ids(first), first.page, first.pages) == (["r1", "r2", "r3", "r4"], 1, 2)
    assert (_ids(second), second.page, second.pages) == (["r5", "r6"], 2, 2)
    assert first.total == second.total == 6


@pytest.mark.parametrize(("asked", "shown"), [(3, 2), (99, 2), (0, 1), (-4, 1)])
def test_a_page_out_of_range_clamps(queue, asked, shown):
    page = queue.page(per_page=4, page=asked)
    assert page.page == shown
    assert _ids(page) == (["r5", "r6"] if shown == 2 else ["r1", "r2", "r3", "r4"])


def test_an_exact_multiple_of_per_page_has_no_empty_last_page(queue):
    page = queue.page(per_page=3, page=5)
    assert (page.page, page.pages, _ids(page)) == (2, 2, ["r4", "r5", "r6"])


def test_the_default_page_holds_fifty_rows(tmp_path):
    lake = open_lake(str(tmp_path / "lake"))
    _write(lake, REVIEW_QUEUE, [_queued(f"q{n:03d}", "over_cap", n, []) for n in range(120)])
    queue = ReviewQueue(lake)
    last = queue.page(page=3)
    assert (len(queue.page().rows), last.pages, len(last.rows)) == (50, 3, 20)
    assert last.rows[-1].request_id == "q119"


def test_hidden_rows_leave_the_listing_and_the_counts(queue):
    page = queue.page(hidden={"r2", "r5", "not-queued"})
    assert _ids(page) == ["r1", "r3", "r4", "r6"]
    assert page.total == 4
    assert page.counts == {
        "negative_without_correction": 1,
        "conflict": 1,
        "safety": 1,
        "over_cap": 1,
        "drift_window": 1,
        "low_confidence": 1,
    }


def test_a_filter_with_every_row_hidden_is_one_empty_page(queue):
    page = queue.page(reason="conflict", hidden=["r4"], page=3)
    assert (page.rows, page.total, page.page, page.pages) == ([], 0, 1, 1)
    assert page.counts["conflict"] == 0


def test_a_new_queue_version_is_picked_up(lake, queue):
    assert queue.page().total == 6
    _write(lake, REVIEW_QUEUE, [_queued("r9", "conflict", 9, ["low_confidence"]), QUEUE[0]])
    page = queue.page()
    assert _ids(page) == ["r1", "r9"]
    assert page.counts["conflict"] == 1
    assert page.counts["low_confidence"] == 1
    assert page.counts["safety"] == 0
    assert queue.item("r3") is None
    assert queue.item("r9") is not None


def test_an_emptied_queue_lists_nothing(lake, queue):
    assert queue.page().total == 6
    _write(lake, REVIEW_QUEUE, [])
    page = queue.page()
    assert (page.rows, page.total, page.pages) == ([], 0, 1)
    assert page.counts == dict.fromkeys(REASONS, 0)


def test_a_lake_without_a_queue_is_one_empty_page(tmp_path):
    queue = ReviewQueue(open_lake(str(tmp_path / "nothing")))
    page = queue.page(reason="safety", sort="cluster", page=4)
    assert (page.rows, page.total, page.page, page.pages) == ([], 0, 1, 1)
    assert page.counts == dict.fromkeys(REASONS, 0)
    assert queue.item("r1") is None


def test_a_queue_appears_once_it_is_written(tmp_path):
    lake = open_lake(str(tmp_path / "lake"))
    queue = ReviewQueue(lake)
    assert queue.page().total == 0
    _write(lake, REVIEW_QUEUE, QUEUE[:2])
    assert _ids(queue.page()) == ["r1", "r2"]


def test_an_item_has_its_messages_label_and_confidence(queue):
    item = queue.item("r2")
    assert item.row.request_id == "r2"
    assert item.row.reasons == ["negative_without_correction", "over_cap"]
    assert item.row.cluster_size == 3
    assert item.messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "prompt of r2"},
    ]
    assert (item.label, item.confidence) == ("negative", 0.5)


def test_an_item_has_its_feedback_and_the_comparisons_it_took_part_in(queue):
    feedback = queue.item("r2").feedback
    assert [f["kind"] for f in feedback] == ["preference", "thumbs_down"]  # oldest first
    assert [f["request_id"] for f in feedback] == ["r-other", "r2"]
    assert feedback[1]["comment"] == "wrong again"
    assert feedback[0]["ts"] == _at(10)
    assert set(feedback[0]) == {"kind", "score", "comment", "correction", "ts", "request_id"}


def test_corrected_twins_share_the_prompt_and_exclude_the_item(queue):
    twins = {t["request_id"]: t["correction"] for t in queue.item("r2").corrected_twins}
    assert twins == {"r4": "the fix written on r4", "t-fixed": "the fix written on t-fixed"}
    own = queue.item("r4").corrected_twins
    assert [t["request_id"] for t in own] == ["t-fixed"]
    assert own[0]["correction_source"] == "user"
    assert queue.item("r1").corrected_twins == []


def test_at_most_five_corrected_twins(tmp_path):
    lake = open_lake(str(tmp_path / "lake"))
    _write(lake, REVIEW_QUEUE, [_queued("q", "over_cap", 1, [])])
    twins = [_tagged(f"t{n}", "same", correction=f"fix {n}") for n in range(7)]
    _write(lake, TAGGED_ROWS, [_tagged("q", "same"), *twins])
    assert len(ReviewQueue(lake).item("q").corrected_twins) == 5


def test_an_item_without_tagged_rows_or_feedback_falls_back_to_its_prompt(tmp_path):
    lake = open_lake(str(tmp_path / "lake"))
    _write(lake, REVIEW_QUEUE, QUEUE)
    item = ReviewQueue(lake).item("r6")
    assert item.messages == [{"role": "user", "content": "prompt of r6"}]
    assert (item.label, item.confidence) == (None, None)
    assert (item.feedback, item.corrected_twins) == ([], [])
    assert item.row.cluster_size == 1


def test_an_item_missing_from_tagged_rows_falls_back_to_its_prompt(queue):
    item = queue.item("r6")
    assert item.messages == [{"role": "user", "content": "prompt of r6"}]
    assert item.label is None
    assert item.feedback == []


def test_an_id_not_queued_has_no_item(queue):
    assert queue.item("t-fixed") is None  # tagged, but not in the queue
    assert queue.item("nope") is None


def test_next_id_follows_the_default_order_skipping_hidden_rows(queue):
    assert queue.item("r1").next_id == "r2"
    assert queue.item("r1", hidden={"r2", "r3"}).next_id == "r4"
    everything_else = {"r2", "r3", "r4", "r5", "r6"}
    assert queue.item("r1", hidden=everything_else).next_id is None


def test_skipping_an_item_moves_on_to_the_one_after_it(queue):
    # The item page's "skip" link follows next_id: from r2 it must reach r3, not go back to r1.
    assert queue.item("r2").next_id == "r3"
