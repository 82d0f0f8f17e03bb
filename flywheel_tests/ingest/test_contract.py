"""The landing contract: which records are rows, and which are rejected for which reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from flywheel_assets.contract.records import (
    ANNOTATIONS,
    DRIFT_EVENTS,
    FEEDBACK,
    INTERACTIONS,
    STREAMS,
    Reason,
    Rejection,
    parse_line,
)
from flywheel_tests.support.records import feedback, interaction


def line(record) -> bytes:
    return json.dumps(record).encode()


def rejected(stream, raw: bytes) -> Reason:
    with pytest.raises(Rejection) as info:
        parse_line(stream, raw)
    return info.value.code


def test_valid_interaction_becomes_a_row_with_utc_ts():
    row = parse_line(INTERACTIONS, line(interaction("r1", ts="2026-11-20T12:00:00+02:00")))
    assert row["request_id"] == "r1"
    assert row["ts"] == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert row["messages"] is None and row["extra"] is None


def test_messages_give_the_last_user_turn_as_prompt():
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    rec = interaction("r1", messages=messages)
    del rec["prompt"]
    row = parse_line(INTERACTIONS, line(rec))
    assert row["prompt"] == "second"
    assert row["messages"] == messages


def test_unknown_fields_are_kept_in_extra_never_rejected():
    row = parse_line(INTERACTIONS, line(interaction("r1", client="ios-3.2", ab={"arm": 2})))
    assert json.loads(row["extra"]) == {"client": "ios-3.2", "ab": {"arm": 2}}


def test_metadata_object_is_kept_as_json():
    row = parse_line(INTERACTIONS, line(interaction("r1", metadata={"app": "bot", "n": 1})))
    assert json.loads(row["metadata"]) == {"app": "bot", "n": 1}


def test_zulu_and_fractional_timestamps_parse():
    row = parse_line(FEEDBACK, line(feedback("f1", "r1", ts="2026-11-20T10:05:00.123456Z")))
    assert row["ts"] == datetime(2026, 11, 20, 10, 5, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stream", "raw", "reason"),
    [
        (INTERACTIONS, b"\xff\xfe{}", Reason.NOT_UTF8),
        (INTERACTIONS, b"", Reason.EMPTY_LINE),
        (INTERACTIONS, b"   ", Reason.EMPTY_LINE),
        (INTERACTIONS, b'{"request_id": "r1", ', Reason.NOT_JSON),
        (INTERACTIONS, b"[1, 2]", Reason.NOT_OBJECT),
        (INTERACTIONS, b'"just a string"', Reason.NOT_OBJECT),
        (
            INTERACTIONS,
            line({k: v for k, v in interaction("r").items() if k != "request_id"}),
            Reason.MISSING_FIELD,
        ),
        (
            INTERACTIONS,
            line({k: v for k, v in interaction("r").items() if k != "response"}),
            Reason.MISSING_FIELD,
        ),
        (
            INTERACTIONS,
            line({k: v for k, v in interaction("r").items() if k != "prompt"}),
            Reason.MISSING_FIELD,
        ),
        (INTERACTIONS, line({**interaction("r"), "request_id": 17}), Reason.WRONG_TYPE),
        (INTERACTIONS, line({**interaction("r"), "request_id": "  "}), Reason.BAD_VALUE),
        (INTERACTIONS, line(interaction("r", latency_ms="fast")), Reason.WRONG_TYPE),
        (INTERACTIONS, line(interaction("r", latency_ms=True)), Reason.WRONG_TYPE),
        (INTERACTIONS, line(interaction("r", latency_ms=1.5)), Reason.WRONG_TYPE),
        (INTERACTIONS, line(interaction("r", response_logprob="low")), Reason.WRONG_TYPE),
        (
            INTERACTIONS,
            b'{"request_id":"r","ts":"2026-11-20T10:00:00Z","prompt":"p","response":"a",'
            b'"model_version":"m","response_logprob":NaN}',
            Reason.BAD_VALUE,
        ),
        (INTERACTIONS, line(interaction("r", messages="hello")), Reason.WRONG_TYPE),
        (INTERACTIONS, line(interaction("r", messages=[{"role": "user"}])), Reason.WRONG_TYPE),
        (
            INTERACTIONS,
            line(interaction("r", messages=[{"role": "bot", "content": "x"}])),
            Reason.BAD_VALUE,
        ),
        (
            INTERACTIONS,
            line(interaction("r", messages=[{"role": "system", "content": "x"}])),
            Reason.BAD_VALUE,
        ),
        (INTERACTIONS, line(interaction("r", metadata="app=bot")), Reason.WRONG_TYPE),
        (INTERACTIONS, line(interaction("r", ts="yesterday")), Reason.BAD_TS),
        (INTERACTIONS, line(interaction("r", ts="2026-11-20T10:00:00")), Reason.BAD_TS),
        (INTERACTIONS, line(interaction("r", ts=1732096800)), Reason.WRONG_TYPE),
        (FEEDBACK, line(feedback("f", "r", kind="love")), Reason.UNKNOWN_KIND),
        (FEEDBACK, line(feedback("f", "r", kind="rating")), Reason.MISSING_FIELD),
        (FEEDBACK, line(feedback("f", "r", kind="rating", score=9)), Reason.BAD_VALUE),
        (FEEDBACK, line(feedback("f", "r", kind="rating", score=0)), Reason.BAD_VALUE),
        (FEEDBACK, line(feedback("f", "r", kind="rating", score="five")), Reason.WRONG_TYPE),
        (FEEDBACK, line(feedback("f", "r", kind="edit")), Reason.MISSING_FIELD),
        (FEEDBACK, line(feedback("f", "r", kind="edit", correction=" ")), Reason.MISSING_FIELD),
        (FEEDBACK, line(feedback("f", "r", kind="comparison")), Reason.MISSING_FIELD),
        (
            FEEDBACK,
            line({"feedback_id": "f", "ts": "2026-11-20T10:00:00Z", "kind": "copy"}),
            Reason.MISSING_FIELD,
        ),
        (
            ANNOTATIONS,
            line(
                {
                    "annotation_id": "a",
                    "request_id": "r",
                    "ts": "2026-11-20T10:00:00Z",
                    "operator": "op",
                    "verdict": "meh",
                }
            ),
            Reason.BAD_VALUE,
        ),
        (
            ANNOTATIONS,
            line(
                {
                    "annotation_id": "a",
                    "request_id": "r",
                    "ts": "2026-11-20T10:00:00Z",
                    "operator": "op",
                    "tags": "hallucination",
                }
            ),
            Reason.WRONG_TYPE,
        ),
        (
            ANNOTATIONS,
            line({"annotation_id": "a", "request_id": "r", "ts": "2026-11-20T10:00:00Z"}),
            Reason.MISSING_FIELD,
        ),
        (
            DRIFT_EVENTS,
            line(
                {
                    "event_id": "d",
                    "ts": "2026-11-20T10:00:00Z",
                    "metric": "m",
                    "value": "high",
                    "threshold": 0.2,
                }
            ),
            Reason.WRONG_TYPE,
        ),
        (
            DRIFT_EVENTS,
            line(
                {
                    "event_id": "d",
                    "ts": "2026-11-20T10:00:00Z",
                    "metric": "m",
                    "value": 0.3,
                    "threshold": 0.2,
                    "window_hours": -1,
                }
            ),
            Reason.BAD_VALUE,
        ),
    ],
)
def test_bad_records_are_rejected_with_a_specific_reason(stream, raw, reason):
    assert rejected(stream, raw) == reason


def test_rejection_message_names_the_field():
    with pytest.raises(Rejection, match="latency_ms"):
        parse_line(INTERACTIONS, line(interaction("r", latency_ms="fast")))


@pytest.mark.parametrize(
    "kind", ["thumbs_up", "thumbs_down", "regenerate", "copy", "accept", "report"]
)
def test_plain_feedback_kinds_need_no_extra_field(kind):
    assert parse_line(FEEDBACK, line(feedback("f", "r", kind=kind)))["kind"] == kind


def test_feedback_with_payloads_is_accepted():
    rating = parse_line(FEEDBACK, line(feedback("f1", "r", kind="rating", score=4)))
    edit = parse_line(FEEDBACK, line(feedback("f2", "r", kind="edit", correction="better")))
    comp = parse_line(FEEDBACK, line(feedback("f3", "r", kind="comparison", other_request_id="r2")))
    down = parse_line(FEEDBACK, line(feedback("f4", "r", kind="thumbs_down", correction="fix")))
    assert (rating["score"], edit["correction"], comp["other_request_id"], down["correction"]) == (
        4,
        "better",
        "r2",
        "fix",
    )


def test_annotation_tags_default_to_empty_list():
    row = parse_line(
        ANNOTATIONS,
        line(
            {"annotation_id": "a", "request_id": "r", "ts": "2026-11-20T10:00:00Z", "operator": "o"}
        ),
    )
    assert row["tags"] == []


@pytest.mark.parametrize("stream", STREAMS, ids=lambda s: s.name)
def test_every_row_fits_its_arrow_schema(stream):
    samples = {
        "interactions": interaction(
            "r1", messages=[{"role": "user", "content": "q"}], latency_ms=3
        ),
        "feedback": feedback("f1", "r1", kind="rating", score=5, comment="nice"),
        "annotations": {
            "annotation_id": "a",
            "request_id": "r",
            "ts": "2026-11-20T10:00:00Z",
            "operator": "o",
            "tags": ["tone"],
            "verdict": "bad",
        },
        "drift_events": {
            "event_id": "d",
            "ts": "2026-11-20T10:00:00Z",
            "metric": "m",
            "value": 1,
            "threshold": 0.5,
            "window_hours": 6,
        },
    }
    row = parse_line(stream, line(samples[stream.name]))
    row.update(_source_file="x", _source_line=1, _ingest_batch=1, _ingested_at=datetime.now(UTC))
    batch = pa.RecordBatch.from_pylist([row], schema=stream.schema)
    assert batch.num_rows == 1
    assert batch.column(stream.id_field).null_count == 0
