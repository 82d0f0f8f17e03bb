"""Reviews as annotation records: validation against the landing contract, ids derived from the
form's nonce, and storage through a real collector spool into a real landing zone, once per nonce,
with reviewed request ids remembered across a restart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flywheel_assets.collector.writer import LandingWriter, WriterSettings
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.contract.records import ANNOTATIONS, parse_line, validate_record
from flywheel_assets.review.annotations import (
    MAX_CORRECTION_CHARS,
    Review,
    ReviewError,
    ReviewStore,
    annotation_record,
)

NONCE = "nonce-0123456789abcdef"
WHEN = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)


def _review(**changes) -> Review:
    values = {
        "request_id": "r-1",
        "operator": "alice",
        "verdict": "bad",
        "correction": None,
        "tags": ["tone"],
        "nonce": NONCE,
    }
    return Review(**{**values, **changes})


def test_a_verdict_becomes_a_valid_annotation():
    record = annotation_record(_review(), now=WHEN)
    assert record["annotation_id"].startswith("review-")
    assert record == {
        "annotation_id": record["annotation_id"],
        "request_id": "r-1",
        "ts": "2026-11-02T08:30:00+00:00",
        "operator": "alice",
        "tags": ["tone"],
        "correction": None,
        "verdict": "bad",
        "source": "review_page",
    }
    row = validate_record(ANNOTATIONS, dict(record))
    assert row["ts"] == WHEN
    assert json.loads(row["extra"]) == {"source": "review_page"}


def test_a_correction_alone_is_enough():
    record = annotation_record(_review(verdict=None, correction="Use the billing page."))
    assert (record["verdict"], record["correction"]) == (None, "Use the billing page.")
    validate_record(ANNOTATIONS, dict(record))


def test_the_operator_comes_from_the_review():
    assert annotation_record(_review(operator="bob"))["operator"] == "bob"


def test_the_time_defaults_to_now_in_utc():
    before = datetime.now(UTC)
    ts = datetime.fromisoformat(annotation_record(_review())["ts"])
    assert before <= ts <= datetime.now(UTC)
    assert ts.utcoffset() == timedelta(0)


def test_the_annotation_id_derives_from_the_item_and_the_nonce_only():
    first = annotation_record(_review(), now=WHEN)["annotation_id"]
    other_content = annotation_record(
        _review(verdict="good", operator="bob"), now=WHEN + timedelta(hours=1)
    )
    assert other_content["annotation_id"] == first
    assert annotation_record(_review(nonce=NONCE + "x"))["annotation_id"] != first
    # The same nonce on another item is another annotation.
    assert annotation_record(_review(request_id="r-2"))["annotation_id"] != first


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"verdict": None, "correction": None}, "accept or reject"),
        ({"verdict": None, "correction": ""}, "accept or reject"),
        ({"verdict": "meh"}, "verdict must be"),
        ({"verdict": "GOOD"}, "verdict must be"),
        ({"correction": "x" * (MAX_CORRECTION_CHARS + 1)}, "over"),
        ({"nonce": ""}, "stale"),
        ({"nonce": "1234567"}, "stale"),
        ({"nonce": "n" * 101}, "stale"),
        ({"operator": ""}, "operator"),
        ({"request_id": "  "}, "request_id"),
        ({"tags": ["ok", 3]}, "tags"),
    ],
)
def test_reviews_that_cannot_be_stored_are_refused(changes, message):
    with pytest.raises(ReviewError, match=message):
        annotation_record(_review(**changes))


@pytest.mark.parametrize("nonce", ["n" * 8, "n" * 100])
def test_nonces_at_the_length_limits_are_accepted(nonce):
    assert annotation_record(_review(nonce=nonce))["annotation_id"].startswith("review-")


def test_a_correction_of_the_maximum_length_is_accepted():
    correction = "x" * MAX_CORRECTION_CHARS
    assert annotation_record(_review(correction=correction))["correction"] == correction


@pytest.fixture
def landing(tmp_path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def spool(tmp_path) -> Path:
    return tmp_path / "spool"


def _writer(landing: Path, spool: Path) -> LandingWriter:
    settings = WriterSettings(max_file_seconds=0.1)
    return LandingWriter(LandingZone(str(landing)), spool, settings, prefix="review")


@pytest.fixture
def writer(landing, spool):
    writer = _writer(landing, spool)
    yield writer
    writer.close()


def _landed(landing: Path) -> list[dict]:
    """Every annotation line in the landing zone's published files, parsed by the contract."""
    zone = LandingZone(str(landing))
    rows = []
    for file in zone.list_files("annotations"):
        assert Path(file.path).name.startswith("review-")
        for raw in (landing / file.path).read_bytes().splitlines():
            rows.append(parse_line(ANNOTATIONS, raw))
    return rows


def test_a_stored_review_lands_as_an_annotation(writer, landing, spool):
    store = ReviewStore(writer, spool)
    answer = store.submit(_review(correction="Open Billing."))
    assert answer == {"annotation_id": answer["annotation_id"], "request_id": "r-1"}
    writer.close()
    [row] = _landed(landing)
    assert row["annotation_id"] == answer["annotation_id"]
    assert (row["request_id"], row["operator"], row["verdict"]) == ("r-1", "alice", "bad")
    assert (row["correction"], row["tags"]) == ("Open Billing.", ["tone"])


def test_a_double_submit_stores_one_annotation(writer, landing, spool):
    store = ReviewStore(writer, spool)
    first = store.submit(_review())
    again = store.submit(_review(verdict="good", correction="changed my mind"))
    assert again == first
    writer.close()
    rows = _landed(landing)
    assert [r["annotation_id"] for r in rows] == [first["annotation_id"]]
    assert rows[0]["verdict"] == "bad"


def test_different_nonces_store_two_annotations(writer, landing, spool):
    store = ReviewStore(writer, spool)
    one = store.submit(_review())
    two = store.submit(_review(request_id="r-2", verdict="good", nonce=NONCE + "-2"))
    assert one["annotation_id"] != two["annotation_id"]
    assert store.reviewed == {"r-1", "r-2"}
    writer.close()
    landed = {r["annotation_id"]: r["request_id"] for r in _landed(landing)}
    assert landed == {one["annotation_id"]: "r-1", two["annotation_id"]: "r-2"}


def test_a_nonce_reused_on_another_item_stores_that_items_review(writer, landing, spool):
    store = ReviewStore(writer, spool)
    one = store.submit(_review())
    two = store.submit(_review(request_id="r-2", verdict="good"))
    assert two["request_id"] == "r-2" and two["annotation_id"] != one["annotation_id"]
    writer.close()
    assert sorted(r["request_id"] for r in _landed(landing)) == ["r-1", "r-2"]


def test_a_refused_review_stores_nothing(writer, landing, spool):
    store = ReviewStore(writer, spool)
    with pytest.raises(ReviewError):
        store.submit(_review(verdict=None))
    assert store.reviewed == frozenset()
    writer.close()
    assert _landed(landing) == []
    # the nonce was not used up: the same form, filled in, is stored
    fixed = _writer(landing, spool)
    ReviewStore(fixed, spool).submit(_review(verdict="good"))
    fixed.close()
    assert [r["verdict"] for r in _landed(landing)] == ["good"]


def test_reviewed_ids_start_empty_and_are_a_snapshot(writer, spool):
    store = ReviewStore(writer, spool)
    before = store.reviewed
    store.submit(_review())
    assert before == frozenset()
    assert store.reviewed == {"r-1"}


def test_a_restart_remembers_reviews_and_their_answers(landing, spool):
    writer = _writer(landing, spool)
    first = ReviewStore(writer, spool).submit(_review())
    writer.close()

    writer = _writer(landing, spool)
    store = ReviewStore(writer, spool)
    assert store.reviewed == {"r-1"}
    assert store.submit(_review(verdict="good")) == first
    writer.close()
    assert [r["annotation_id"] for r in _landed(landing)] == [first["annotation_id"]]


def test_a_torn_last_journal_line_is_ignored(landing, spool):
    writer = _writer(landing, spool)
    ReviewStore(writer, spool).submit(_review())
    writer.close()
    with open(spool / "reviewed.jsonl", "a", encoding="utf-8") as f:
        f.write('{"annotation_id": "review-abc", "request_id": "r-')  # a crash mid-write

    writer = _writer(landing, spool)
    try:
        assert ReviewStore(writer, spool).reviewed == {"r-1"}
    finally:
        writer.close()


def test_a_review_after_a_torn_journal_line_survives_the_next_restart(landing, spool):
    spool.mkdir(parents=True)
    (spool / "reviewed.jsonl").write_text('{"annotation_id": "review-abc", "request_id": "r-')
    writer = _writer(landing, spool)
    store = ReviewStore(writer, spool)
    store.submit(_review(request_id="r-2"))
    assert store.reviewed == {"r-2"}
    writer.close()

    writer = _writer(landing, spool)
    try:
        assert ReviewStore(writer, spool).reviewed == {"r-2"}
    finally:
        writer.close()
