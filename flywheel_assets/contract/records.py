"""The landing contract: what producers may write per stream, as Arrow schemas and a line validator.

A line becomes either one row of its stream's table or a `Rejection` with a reason code.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

# Columns every bronze row carries so it can be traced to the exact landing line that produced it.
PROVENANCE_FIELDS = [
    pa.field("_source_file", pa.string()),
    pa.field("_source_line", pa.int64()),
    pa.field("_ingest_batch", pa.int64()),
    pa.field("_ingested_at", TIMESTAMP),
]

ROLES = frozenset({"system", "user", "assistant", "tool"})
FEEDBACK_KINDS = frozenset(
    {
        "thumbs_up",
        "thumbs_down",
        "rating",
        "edit",
        "regenerate",
        "copy",
        "accept",
        "report",
        "comparison",
    }
)
VERDICTS = frozenset({"good", "bad"})


class Reason(StrEnum):
    """Why a landing line went to quarantine."""

    NOT_UTF8 = "not_utf8"
    EMPTY_LINE = "empty_line"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    BAD_TS = "bad_ts"
    UNKNOWN_KIND = "unknown_kind"
    BAD_VALUE = "bad_value"
    BAD_UNICODE = "bad_unicode"
    NUMBER_TOO_LONG = "number_too_long"
    LINE_TOO_LONG = "line_too_long"
    UNREADABLE_FILE = "unreadable_file"
    UNEXPECTED_ERROR = "unexpected_error"


# The range of timestamps the pipeline accepts: nothing before the Unix epoch, and nothing more
# than this far after the line was received (clocks drift; a far-future stamp never expires).
EARLIEST_TS = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE_TS_SLACK = timedelta(days=1)
# A drift event's window reaches back at most a year (longer windows overflow datetime at 1970).
MAX_WINDOW_HOURS = 24.0 * 366
# Latency up to a day, in milliseconds.
MAX_LATENCY_MS = 24 * 3600 * 1000


def latest_ts(received_at: datetime | None = None) -> datetime:
    """The latest `ts` a line received at `received_at` (default: now) may carry."""
    return (received_at or datetime.now(UTC)) + FUTURE_TS_SLACK


class Rejection(ValueError):
    def __init__(self, code: Reason, detail: str):
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail


# Field kinds understood by the validator; each maps to one Arrow type.
_ARROW_TYPES = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "ts": TIMESTAMP,
    "messages": pa.list_(MESSAGE),
    "tags": pa.list_(pa.string()),
    "object": pa.string(),  # stored as JSON text: any shape survives
}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str
    required: bool = False
    low: float | None = None  # inclusive bounds of an int or float field
    high: float | None = None


@dataclass(frozen=True)
class Stream:
    """One landing folder and the bronze table it feeds."""

    name: str  # folder under the landing root
    table: str  # Delta table under the lake root
    id_field: str  # unique per record; a repeat is a client retry and is stored once
    fields: tuple[FieldSpec, ...]

    @property
    def schema(self) -> pa.Schema:
        cols = [pa.field(f.name, _ARROW_TYPES[f.kind]) for f in self.fields]
        # Unknown top-level fields are kept, never a reason to reject.
        cols.append(pa.field("extra", pa.string()))
        return pa.schema(cols + PROVENANCE_FIELDS)

    @property
    def required(self) -> list[str]:
        return [f.name for f in self.fields if f.required]


INTERACTIONS = Stream(
    name="interactions",
    table="raw_logs",
    id_field="request_id",
    fields=(
        FieldSpec("request_id", "str", required=True),
        FieldSpec("ts", "ts", required=True),
        FieldSpec("prompt", "str"),
        FieldSpec("messages", "messages"),
        FieldSpec("response", "str", required=True),
        FieldSpec("model_version", "str", required=True),
        FieldSpec("user_id", "str"),
        FieldSpec("session_id", "str"),
        FieldSpec("latency_ms", "int", low=0, high=MAX_LATENCY_MS),
        FieldSpec("response_logprob", "float"),
        FieldSpec("metadata", "object"),
    ),
)
FEEDBACK = Stream(
    name="feedback",
    table="raw_feedback",
    id_field="feedback_id",
    fields=(
        FieldSpec("feedback_id", "str", required=True),
        FieldSpec("request_id", "str", required=True),
        FieldSpec("ts", "ts", required=True),
        FieldSpec("kind", "str", required=True),
        FieldSpec("score", "int"),
        FieldSpec("correction", "str"),
        FieldSpec("other_request_id", "str"),
        FieldSpec("comment", "str"),
        FieldSpec("user_id", "str"),
    ),
)
ANNOTATIONS = Stream(
    name="annotations",
    table="annotations",
    id_field="annotation_id",
    fields=(
        FieldSpec("annotation_id", "str", required=True),
        FieldSpec("request_id", "str", required=True),
        FieldSpec("ts", "ts", required=True),
        FieldSpec("operator", "str", required=True),
        FieldSpec("tags", "tags"),
        FieldSpec("correction", "str"),
        FieldSpec("verdict", "str"),
    ),
)
DRIFT_EVENTS = Stream(
    name="drift_events",
    table="drift_events",
    id_field="event_id",
    fields=(
        FieldSpec("event_id", "str", required=True),
        FieldSpec("ts", "ts", required=True),
        FieldSpec("metric", "str", required=True),
        FieldSpec("value", "float", required=True),
        FieldSpec("threshold", "float", required=True),
        FieldSpec("window_hours", "float"),
    ),
)

STREAMS: tuple[Stream, ...] = (INTERACTIONS, FEEDBACK, ANNOTATIONS, DRIFT_EVENTS)
STREAMS_BY_NAME = {s.name: s for s in STREAMS}


def parse_line(
    stream: Stream, raw: bytes, *, received_at: datetime | None = None
) -> dict[str, Any]:
    """Decode and validate one landing line; return the row for the stream's table.

    Raises `Rejection` with the first problem found, and nothing else for any bytes. The returned
    dict holds every schema column except provenance, and every string in it is UTF-8 encodable.
    `received_at` (default: now) bounds how far in the future `ts` may be.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection(Reason.NOT_UTF8, f"invalid UTF-8 byte at offset {exc.start}") from None
    if not text.strip():
        raise Rejection(Reason.EMPTY_LINE, "blank line")
    try:
        record = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise Rejection(Reason.NOT_JSON, f"invalid JSON: {exc}") from None
    except ValueError as exc:  # an integer past Python's digit limit (sys.int_info)
        raise Rejection(Reason.NUMBER_TOO_LONG, f"a number is too long: {str(exc)[:120]}") from None
    if not isinstance(record, dict):
        raise Rejection(Reason.NOT_OBJECT, f"expected a JSON object, got {type(record).__name__}")
    if _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(record)
    return validate_record(stream, record, received_at=received_at)


# A \uD800-\uDFFF escape; json.loads joins a valid pair into one character and leaves a lone one
# as a surrogate, which is not Unicode text and which no UTF-8 column can store.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(record: dict[str, Any]) -> None:
    for key, value in record.items():
        try:
            json.dumps({key: value}, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            name = key.encode("utf-8", errors="backslashreplace").decode()
            raise Rejection(
                Reason.BAD_UNICODE,
                f"field '{name}' holds a lone surrogate escape (\\ud800-\\udfff), not text",
            ) from None
        except (ValueError, RecursionError):
            continue  # NaN or deep nesting: decided by validation


_ID_FIELD = re.compile(r'"(request_id|user_id)"\s*:\s*"((?:[^"\\]|\\.)*)"')


def salvage_ids(raw: bytes) -> dict[str, str]:
    """The request_id and user_id a rejected line seems to carry, found as text.

    Lets erasure recognise a user's malformed lines too, which cannot be parsed as records.
    """
    found: dict[str, str] = {}
    for name, value in _ID_FIELD.findall(raw.decode("utf-8", errors="replace")):
        try:
            found.setdefault(name, json.loads(f'"{value}"'))
        except json.JSONDecodeError:
            continue
    return found


def validate_record(
    stream: Stream, record: dict[str, Any], *, received_at: datetime | None = None
) -> dict[str, Any]:
    """The stream's row for a decoded record, or `Rejection`; `received_at` as in `parse_line`."""
    row: dict[str, Any] = {}
    for spec in stream.fields:
        value = record.get(spec.name)
        if value is None:
            if spec.required:
                raise Rejection(Reason.MISSING_FIELD, f"required field '{spec.name}' is missing")
            row[spec.name] = None
            continue
        row[spec.name] = _coerce(spec, value, received_at)
    known = {f.name for f in stream.fields}
    extra = {k: v for k, v in record.items() if k not in known}
    row["extra"] = _json_text("extra", extra) if extra else None
    _STREAM_RULES[stream.name](row)
    return row


def _json_text(name: str, value: Any) -> str:
    """A value stored as JSON text: strict JSON (no NaN or Infinity), valid Unicode."""
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)
    except ValueError:
        raise Rejection(
            Reason.BAD_VALUE, f"field '{name}' holds NaN or Infinity, which JSON does not allow"
        ) from None
    except RecursionError:
        raise Rejection(Reason.NOT_JSON, f"field '{name}' is nested too deeply") from None
    except TypeError:  # keys of mixed types cannot be sorted
        raise _wrong_type(name, "an object with comparable keys", value) from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejection(
            Reason.BAD_UNICODE, f"field '{name}' holds a lone surrogate escape, not text"
        ) from None
    return text


def _coerce(spec: FieldSpec, value: Any, received_at: datetime | None) -> Any:
    name, kind = spec.name, spec.kind
    if kind == "str":
        if not isinstance(value, str):
            raise _wrong_type(name, "a string", value)
        if spec.required and not value.strip():
            raise Rejection(Reason.BAD_VALUE, f"field '{name}' is empty")
        _unicode(name, value)
        return value
    if kind == "int":
        # bool is an int subclass in Python but never a valid count or score here.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong_type(name, "an integer", value)
        if isinstance(value, float) and not value.is_integer():
            raise _wrong_type(name, "an integer", value)
        if not -(2**63) <= value < 2**63:
            raise Rejection(Reason.BAD_VALUE, f"field '{name}' is out of the int64 range")
        _in_bounds(spec, value)
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong_type(name, "a number", value)
        try:
            value = float(value)
        except OverflowError:  # an integer literal past the float range
            raise Rejection(Reason.BAD_VALUE, f"field '{name}' is not finite") from None
        if not math.isfinite(value):
            raise Rejection(Reason.BAD_VALUE, f"field '{name}' is not finite")
        _in_bounds(spec, value)
        return value
    if kind == "ts":
        return parse_ts(name, value, received_at)
    if kind == "messages":
        return _messages(value)
    if kind == "tags":
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise _wrong_type(name, "a list of strings", value)
        for t in value:
            _unicode(name, t)
        return value
    if kind == "object":
        if not isinstance(value, dict):
            raise _wrong_type(name, "an object", value)
        return _json_text(name, value)
    raise AssertionError(f"unknown field kind {kind}")


def _in_bounds(spec: FieldSpec, value: float) -> None:
    if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
        low = "" if spec.low is None else f"{spec.low:g}"
        high = "" if spec.high is None else f"{spec.high:g}"
        raise Rejection(Reason.BAD_VALUE, f"field '{spec.name}' is outside {low}..{high}")


def _unicode(name: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejection(
            Reason.BAD_UNICODE, f"field '{name}' holds a lone surrogate escape, not text"
        ) from None


def parse_ts(name: str, value: Any, received_at: datetime | None = None) -> datetime:
    """An ISO-8601 timestamp with a zone, in UTC, between 1970 and a day after `received_at`."""
    if not isinstance(value, str):
        raise _wrong_type(name, "an ISO-8601 string", value)
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise Rejection(Reason.BAD_TS, f"field '{name}' is not ISO-8601: {value[:40]!r}") from None
    if ts.tzinfo is None:
        raise Rejection(Reason.BAD_TS, f"field '{name}' has no timezone: {value[:40]!r}")
    try:
        ts = ts.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed past datetime's range by the offset
        raise Rejection(
            Reason.BAD_TS, f"field '{name}' is out of range in UTC: {value[:40]!r}"
        ) from None
    if ts < EARLIEST_TS:
        raise Rejection(Reason.BAD_TS, f"field '{name}' is before 1970: {value[:40]!r}")
    if ts > latest_ts(received_at):
        raise Rejection(
            Reason.BAD_TS,
            f"field '{name}' is more than a day after it was received: {value[:40]!r}",
        )
    return ts


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise _wrong_type("messages", "a list", value)
    out = []
    for i, msg in enumerate(value):
        if not isinstance(msg, dict):
            raise _wrong_type(f"messages[{i}]", "an object", msg)
        role, content = msg.get("role"), msg.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            raise _wrong_type(f"messages[{i}]", "an object with string role and content", msg)
        if role not in ROLES:
            raise Rejection(Reason.BAD_VALUE, f"messages[{i}] has unknown role {role!r}")
        _unicode(f"messages[{i}]", content)
        out.append({"role": role, "content": content})
    return out


def _interaction_rules(row: dict[str, Any]) -> None:
    messages = row["messages"]
    if row["prompt"] is None and messages is None:
        raise Rejection(Reason.MISSING_FIELD, "one of 'prompt' or 'messages' is required")
    if messages is not None:
        user_turns = [m["content"] for m in messages if m["role"] == "user"]
        if not user_turns:
            raise Rejection(Reason.BAD_VALUE, "messages has no user turn")
        if row["prompt"] is None:
            row["prompt"] = user_turns[-1]


def _feedback_rules(row: dict[str, Any]) -> None:
    kind = row["kind"]
    if kind not in FEEDBACK_KINDS:
        raise Rejection(Reason.UNKNOWN_KIND, f"unknown feedback kind {kind!r}")
    if kind == "rating":
        if row["score"] is None:
            raise Rejection(Reason.MISSING_FIELD, "a rating needs 'score'")
        if not 1 <= row["score"] <= 5:
            raise Rejection(Reason.BAD_VALUE, f"rating score {row['score']} is not in 1..5")
    if kind == "edit" and not (row["correction"] or "").strip():
        raise Rejection(Reason.MISSING_FIELD, "an edit needs a non-empty 'correction'")
    if kind == "comparison" and not row["other_request_id"]:
        raise Rejection(Reason.MISSING_FIELD, "a comparison needs 'other_request_id'")


def _annotation_rules(row: dict[str, Any]) -> None:
    if row["verdict"] is not None and row["verdict"] not in VERDICTS:
        raise Rejection(Reason.BAD_VALUE, f"verdict {row['verdict']!r} is not 'good' or 'bad'")
    if row["tags"] is None:
        row["tags"] = []


def _drift_rules(row: dict[str, Any]) -> None:
    if row["window_hours"] is not None and row["window_hours"] <= 0:
        raise Rejection(Reason.BAD_VALUE, "window_hours must be positive")
    if row["window_hours"] is not None and row["window_hours"] > MAX_WINDOW_HOURS:
        raise Rejection(Reason.BAD_VALUE, f"window_hours must be at most {MAX_WINDOW_HOURS:g}")


_STREAM_RULES = {
    "interactions": _interaction_rules,
    "feedback": _feedback_rules,
    "annotations": _annotation_rules,
    "drift_events": _drift_rules,
}


def _wrong_type(name: str, expected: str, value: Any) -> Rejection:
    return Rejection(
        Reason.WRONG_TYPE, f"field '{name}' must be {expected}, got {type(value).__name__}"
    )
