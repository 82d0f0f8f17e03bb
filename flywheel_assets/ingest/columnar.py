"""Columnar parsing of landing lines: a msgspec screen, one Arrow JSON read, vectorized checks.

A line is taken here only when it is surely one `parse_line` accepts, with the same row; every
other line is handed back for `parse_line`, so reason codes and details stay exactly its own.
No Dagster: small functions of lines and Arrow tables, to run per file on any worker.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from ..contract.records import (
    EARLIEST_TS,
    FEEDBACK_KINDS,
    MAX_WINDOW_HOURS,
    PROVENANCE_FIELDS,
    ROLES,
    TIMESTAMP,
    VERDICTS,
    Stream,
    latest_ts,
)
from ..governance.hashing import hash_column
from ..governance.tombstones import RecordMatcher

# Arrow's JSON reader needs every line inside one block; blocks are read in parallel.
_BLOCK_BYTES = 4 << 20
# An `object` field is rebuilt from one string column per key; past this many keys in a chunk
# its lines go to `parse_line` instead.
_MAX_OBJECT_KEYS = 64
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)

# What `str.strip()` removes (every c with chr(c).isspace(); a test recomputes it), so "non-empty
# after strip" is "has a character not in here".
PY_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_PY_SPACE = "".join(f"\\x{{{ord(c):x}}}" for c in PY_WHITESPACE)
_HAS_TEXT = f"[^{_PY_SPACE}]"
# What json.dumps escapes in a string (ensure_ascii=False); such values go to `parse_line`.
_NEEDS_ESCAPE = r'[\x{0}-\x{1f}"\\]'
# The one timestamp form taken here; `datetime.fromisoformat` decides every other one. Matched
# text is ASCII with the date and time at fixed positions, so it is read from the bytes directly.
_TS = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})$"
)
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
_US_PER_MINUTE = 60_000_000

# What msgspec checks per field kind: exactly the JSON types `parse_line` accepts, no coercion
# (an integral float such as 1.0 for an int, which `parse_line` takes, is left to it).
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class _Message(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal[tuple(sorted(ROLES))]  # type: ignore[valid-type]
    content: str


_SCREEN_TYPES: dict[str, Any] = {
    "str": str,
    "int": _Int64,
    "float": float,
    "ts": str,
    "messages": list[_Message],
    "tags": list[str],
    "object": dict[str, str],  # other shapes: `parse_line`
}
# Closed vocabularies the stream rules enforce; an unknown value is left to `parse_line`.
_CHOICES = {("feedback", "kind"): FEEDBACK_KINDS, ("annotations", "verdict"): VERDICTS}


@dataclass(frozen=True)
class ParsedChunk:
    """The rows the fast path took (stream columns, no provenance) and the lines it left."""

    rows: pa.Table
    index: np.ndarray  # each row's line, as an index into the chunk's lines
    fallback: list[int]  # indexes of the lines `parse_line` must decide, ascending


def row_schema(stream: Stream) -> pa.Schema:
    """The stream's table schema without the provenance columns."""
    return pa.schema(list(stream.schema)[: -len(PROVENANCE_FIELDS)])


def parse_chunk(
    stream: Stream, lines: list[bytes], *, received_at: datetime | None = None
) -> ParsedChunk:
    """Rows for the lines surely valid, in line order; every other line left for `parse_line`
    (`received_at` as `parse_line` takes it)."""
    ok, fallback, keys = screen(stream, lines)
    tables, failed = _read_bisect(stream, lines, np.asarray(ok, dtype=np.int64), keys)
    fallback.extend(failed)
    schema = row_schema(stream)
    if not tables:
        return ParsedChunk(schema.empty_table(), np.empty(0, np.int64), sorted(fallback))
    table = pa.concat_tables(t for t, _ in tables)
    index = np.concatenate([i for _, i in tables])
    rows, good = build_rows(stream, table, keys, received_at=received_at)
    fallback.extend(index[~good].tolist())
    return ParsedChunk(rows.filter(pa.array(good)), index[good], sorted(fallback))


def screen(stream: Stream, lines: list[bytes]) -> tuple[list[int], list[int], dict[str, list[str]]]:
    """Split line indexes into those msgspec decodes as the stream's record and the rest, with
    the sorted keys each `object` field showed."""
    # A per-line decode loop, not Decoder.decode_lines: measured no faster on the sample's chunks
    # (even without errors), and it reads whitespace-separated values, so a line holding two
    # objects, or one object split over two lines, would shift every later index.
    decode = _decoder(stream).decode
    ok: list[int] = []
    rest: list[int] = []
    objects = [s.name for s in stream.fields if s.kind == "object"]
    if not objects:
        for i, raw in enumerate(lines):
            try:
                decode(raw)
            except _DECODE_ERRORS:
                rest.append(i)
                continue
            ok.append(i)
        return ok, rest, {}
    keys: dict[str, set[str]] = {name: set() for name in objects}
    carriers: list[int] = []  # positions in `ok` of lines with a non-empty object
    for i, raw in enumerate(lines):
        try:
            rec = decode(raw)
        except _DECODE_ERRORS:
            rest.append(i)
            continue
        carried = False
        for name in objects:
            value = getattr(rec, name)
            if value:
                keys[name].update(value)
                carried = True
        if carried:
            carriers.append(len(ok))
        ok.append(i)
    if any(len(k) > _MAX_OBJECT_KEYS for k in keys.values()):
        drop = set(carriers)
        rest.extend(ok[j] for j in carriers)
        ok = [i for j, i in enumerate(ok) if j not in drop]
        keys = {name: set() for name in objects}
    return ok, rest, {name: sorted(k) for name, k in keys.items()}


def read_lines(stream: Stream, lines: list[bytes], keys: dict[str, list[str]]) -> pa.Table:
    """Screened lines parsed in bulk into the stream's columns (timestamps still text, objects
    as structs of `keys`). Raises `pa.ArrowException` on anything Arrow's reader refuses."""
    data = b"\n".join(lines)
    block = max(_BLOCK_BYTES, max(map(len, lines)) + 2)
    table = pj.read_json(
        io.BytesIO(data),
        read_options=pj.ReadOptions(block_size=block),
        parse_options=pj.ParseOptions(
            explicit_schema=_read_schema(stream, keys), unexpected_field_behavior="error"
        ),
    )
    if table.num_rows != len(lines):
        raise pa.ArrowInvalid(f"read {table.num_rows} rows from {len(lines)} lines")
    return table


def build_rows(
    stream: Stream,
    table: pa.Table,
    keys: dict[str, list[str]],
    *,
    received_at: datetime | None = None,
) -> tuple[pa.Table, np.ndarray]:
    """The stream's rows from `read_lines`' table and whether each surely passes the contract;
    a row marked False must go to `parse_line`."""
    n = table.num_rows
    good = np.ones(n, dtype=bool)
    earliest = pa.scalar(EARLIEST_TS, TIMESTAMP)
    latest = pa.scalar(latest_ts(received_at), TIMESTAMP)
    cols: dict[str, pa.Array] = {}
    for spec in stream.fields:
        col = table[spec.name].combine_chunks()
        if spec.required:
            good &= _np(col.is_valid())
        if spec.kind == "str" and spec.required:
            good &= _np(pc.match_substring_regex(col, _HAS_TEXT))
        elif spec.kind == "float":
            good &= _np(col.is_null()) | _np(pc.is_finite(col))
            # "-0" is int 0 to json.loads, hence 0.0; Arrow reads -0.0.
            values = col.to_numpy(zero_copy_only=False)
            good &= ~((values == 0) & np.signbit(values))
        elif spec.kind == "ts":
            col, parsed = _timestamps(col)
            good &= parsed
            within = pc.and_(pc.greater_equal(col, earliest), pc.less_equal(col, latest))
            good &= _np(col.is_null()) | _np(within)
        elif spec.kind == "object":
            col, exact = _object_text(col, keys[spec.name])
            good &= exact
        if spec.low is not None or spec.high is not None:
            within = pa.repeat(True, n)
            if spec.low is not None:
                within = pc.and_(within, pc.greater_equal(col, spec.low))
            if spec.high is not None:
                within = pc.and_(within, pc.less_equal(col, spec.high))
            good &= _np(col.is_null()) | _np(within)
        cols[spec.name] = col
    good &= _RULES[stream.name](cols)
    cols["extra"] = pa.nulls(n, pa.string())  # lines with unknown fields went to `parse_line`
    schema = row_schema(stream)
    return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema), good


def merge_rows(
    stream: Stream, parsed: ParsedChunk, rows: list[dict], index: list[int]
) -> tuple[pa.Table, np.ndarray]:
    """The fast rows and `parse_line`'s rows (at line indexes `index`) in one table, line order."""
    if not rows:
        return parsed.rows, parsed.index
    slow = pa.Table.from_pylist(rows, schema=row_schema(stream))
    table = pa.concat_tables([parsed.rows, slow])
    lines = np.concatenate([parsed.index, np.asarray(index, dtype=np.int64)])
    order = np.argsort(lines, kind="stable")
    return table.take(order), lines[order]


def first_seen(ids: pa.ChunkedArray | pa.Array, seen: set[str]) -> np.ndarray:
    """True for each id not in `seen` and not earlier in `ids`; adds those to `seen`."""
    keep = np.zeros(len(ids), dtype=bool)
    for i, value in enumerate(ids.to_pylist()):
        if value not in seen:
            seen.add(value)
            keep[i] = True
    return keep


def erased_rows(
    erased: Callable[[dict], bool] | None,
) -> Callable[[pa.Table], np.ndarray] | None:
    """A table-at-once form of the `erased` callback: a boolean mask of the rows it would flag.

    The tombstone matcher becomes two `is_in` lookups (user ids hashed once per distinct value);
    any other callback is called per row, with the row as `parse_line` returns it.
    """
    if erased is None:
        return None
    if not isinstance(erased, RecordMatcher):
        return lambda table: np.array([bool(erased(r)) for r in table.to_pylist()], dtype=bool)
    request_ids = pa.array(sorted(erased.request_ids), pa.string())
    user_hashes = pa.array(sorted(erased.user_hashes), pa.string())

    def mask(table: pa.Table) -> np.ndarray:
        hit = np.zeros(table.num_rows, dtype=bool)
        names = table.column_names
        if "request_id" in names and len(request_ids):
            hit |= _np(pc.is_in(table["request_id"], value_set=request_ids))
        if "user_id" in names and len(user_hashes) and table.num_rows:
            hashed = hash_column(table["user_id"], erased.key, "user")
            hit |= _np(pc.is_in(hashed, value_set=user_hashes))
        return hit

    return mask


def with_provenance(
    stream: Stream,
    rows: pa.Table,
    line_numbers: np.ndarray,
    source_file: str,
    batch: int,
    ingested_at: datetime,
) -> pa.Table:
    """`rows` with the provenance columns, in the stream's table schema."""
    n = rows.num_rows
    provenance = [
        pa.repeat(pa.scalar(source_file, pa.string()), n),
        pa.array(line_numbers, pa.int64()),
        pa.repeat(pa.scalar(batch, pa.int64()), n),
        pa.repeat(pa.scalar(ingested_at, TIMESTAMP), n),
    ]
    return pa.Table.from_arrays(rows.columns + provenance, schema=stream.schema)


# ---------------------------------------------------------------------------------------------


@cache
def _decoder(stream: Stream) -> msgspec.json.Decoder:
    fields: list[tuple[Any, ...]] = []
    for spec in stream.fields:
        kind = _SCREEN_TYPES[spec.kind]
        choices = _CHOICES.get((stream.name, spec.name))
        if choices:
            kind = Literal[tuple(sorted(choices))]
        # null is "absent" to `parse_line`: required fields must not be null.
        fields.append((spec.name, kind) if spec.required else (spec.name, kind | None, None))
    record = msgspec.defstruct(
        f"_{stream.name}_line", fields, kw_only=True, forbid_unknown_fields=True
    )
    return msgspec.json.Decoder(record)


def _read_schema(stream: Stream, keys: dict[str, list[str]]) -> pa.Schema:
    fields = []
    for spec in stream.fields:
        if spec.kind == "ts":
            kind = pa.string()
        elif spec.kind == "object":
            kind = pa.struct([(k, pa.string()) for k in keys[spec.name]])
        else:
            kind = stream.schema.field(spec.name).type
        fields.append(pa.field(spec.name, kind))
    return pa.schema(fields)


def _read_bisect(
    stream: Stream, lines: list[bytes], index: np.ndarray, keys: dict[str, list[str]]
) -> tuple[list[tuple[pa.Table, np.ndarray]], list[int]]:
    """`read_lines` over the lines at `index`; when Arrow refuses a block (a duplicated key, which
    json.loads allows), halves it until the refused lines are found. Returns the tables with
    their line indexes, and the refused lines."""
    if len(index) == 0:
        return [], []
    try:
        return [(read_lines(stream, [lines[i] for i in index], keys), index)], []
    except pa.ArrowException:
        if len(index) == 1:
            return [], [int(index[0])]
    mid = len(index) // 2
    left, left_failed = _read_bisect(stream, lines, index[:mid], keys)
    right, right_failed = _read_bisect(stream, lines, index[mid:], keys)
    return left + right, left_failed + right_failed


def _np(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as numpy, null as False."""
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    if mask.null_count:
        mask = pc.fill_null(mask, False)
    return mask.to_numpy(zero_copy_only=False)


def _timestamps(col: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """UTC timestamps for strict ISO-8601 text with a zone, as fromisoformat + astimezone(UTC)
    give them, and which rows had that form; null stays null (and counts as parsed)."""
    n = len(col)
    matched = _np(pc.match_substring_regex(col, _TS))
    micros = np.zeros(n, dtype=np.int64)
    good = _np(col.is_null())
    if matched.any():
        offsets = np.frombuffer(col.buffers()[1], np.int32)[col.offset : col.offset + n + 1]
        text = np.frombuffer(col.buffers()[2], np.uint8)
        start = offsets[:-1][matched].astype(np.int64)
        end = offsets[1:][matched].astype(np.int64)

        def number(at: np.ndarray, width: int) -> np.ndarray:
            value = np.zeros(len(at), dtype=np.int64)
            for k in range(width):
                value = value * 10 + (text[at + k].astype(np.int64) - 48)
            return value

        y, mo, d = number(start, 4), number(start + 5, 2), number(start + 8, 2)
        h, mi, s = number(start + 11, 2), number(start + 14, 2), number(start + 17, 2)
        # "Z", or "+HH:MM" / "-HH:MM" in the last six characters (text is >= 20 characters long).
        zulu = text[end - 1] == ord("Z")
        zone = np.where(zulu, end - 1, end - 6)
        sign = np.where(zulu, 0, np.where(text[end - 6] == ord("-"), -1, 1))
        tzh, tzm = number(end - 5, 2), number(end - 2, 2)
        # ".f" with 1-6 digits between the seconds and the zone; ".5" is 500000 microseconds.
        digits = np.maximum(zone - start - 20, 0)
        f = np.zeros(len(start), dtype=np.int64)
        for k in range(6):
            at = np.minimum(start + 20 + k, end - 1)
            f = f * 10 + np.where(k < digits, text[at].astype(np.int64) - 48, 0)
        leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
        month_days = _MONTH_DAYS[np.clip(mo, 0, 12)] + ((mo == 2) & leap)
        # Years 1 and 9999 can leave datetime's range when shifted to UTC: `parse_line` decides.
        valid = (y >= 2) & (y <= 9998) & (mo >= 1) & (mo <= 12) & (d >= 1) & (d <= month_days)
        valid &= (h <= 23) & (mi <= 59) & (s <= 59) & (zulu | ((tzh <= 23) & (tzm <= 59)))
        minutes = (_days_from_civil(y, mo, d) * 24 + h) * 60 + mi - sign * (tzh * 60 + tzm)
        micros[matched] = minutes * _US_PER_MINUTE + s * 1_000_000 + f
        good[matched] = valid
        matched[matched] = valid
    return pa.array(micros, TIMESTAMP, mask=~matched), good


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm)."""
    y = y - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _object_text(col: pa.StructArray, keys: list[str]) -> tuple[pa.Array, np.ndarray]:
    """json.dumps(value, ensure_ascii=False, sort_keys=True) of string-valued objects read as
    structs of `keys`, and which rows it is exact for (values needing an escape are not)."""
    exact = np.ones(len(col), dtype=bool)
    pieces = []
    for key in keys:  # sorted, as sort_keys sorts
        # By position: a name such as "." or "a.b" would be read as a path.
        value = pc.struct_field(col, [col.type.get_field_index(key)])
        exact &= ~_np(pc.match_substring_regex(value, _NEEDS_ESCAPE))
        prefix = ", " + json.dumps(key, ensure_ascii=False) + ': "'
        pieces.append(pc.fill_null(pc.binary_join_element_wise(prefix, value, '"', ""), ""))
    if pieces:
        # Each present key adds ', "k": "v"'; the first separator is cut off.
        body = pc.utf8_slice_codeunits(pc.binary_join_element_wise(*pieces, ""), 2)
        text = pc.binary_join_element_wise("{", body, "}", "")
    else:
        text = pa.repeat(pa.scalar("{}"), len(col))
    return pc.if_else(col.is_valid(), text, pa.scalar(None, pa.string())), exact


# Vectorized stream rules: True where `parse_line`'s rule surely passes. They may also rewrite a
# column the way the rule does (the prompt of a chat, the tags of an annotation).


def _interaction_rules(cols: dict[str, pa.Array]) -> np.ndarray:
    prompt, messages = cols["prompt"], cols["messages"]
    has_messages = _np(messages.is_valid())
    last_user = _last_user_turn(messages)
    has_user = _np(last_user.is_valid())
    cols["prompt"] = pc.coalesce(prompt, last_user)
    return (_np(prompt.is_valid()) | has_messages) & (~has_messages | has_user)


def _last_user_turn(messages: pa.ListArray) -> pa.Array:
    """The content of each chat's last user turn; null for no chat or no user turn."""
    flat = pc.list_flatten(messages)
    parents = pc.list_parent_indices(messages).to_numpy()
    users = np.flatnonzero(_np(pc.equal(pc.struct_field(flat, "role"), "user")))
    owner = parents[users]
    last = np.ones(len(users), dtype=bool)
    last[:-1] = owner[1:] != owner[:-1]  # turns are in row order: the last of a run is the last
    at = np.full(len(messages), -1, dtype=np.int64)
    at[owner[last]] = users[last]
    return pc.take(pc.struct_field(flat, "content"), pa.array(at, pa.int64(), mask=at < 0))


def _feedback_rules(cols: dict[str, pa.Array]) -> np.ndarray:
    kind, score = cols["kind"], cols["score"]
    rating = _np(pc.equal(kind, "rating"))
    scored = _np(pc.and_(pc.greater_equal(score, 1), pc.less_equal(score, 5)))
    edit = _np(pc.equal(kind, "edit"))
    corrected = _np(pc.match_substring_regex(cols["correction"], _HAS_TEXT))
    comparison = _np(pc.equal(kind, "comparison"))
    other = _np(pc.greater(pc.utf8_length(cols["other_request_id"]), 0))
    return (~rating | scored) & (~edit | corrected) & (~comparison | other)


def _annotation_rules(cols: dict[str, pa.Array]) -> np.ndarray:
    tags = cols["tags"]
    cols["tags"] = pc.if_else(tags.is_null(), pa.scalar([], tags.type), tags)
    return np.ones(len(tags), dtype=bool)  # verdicts were screened as a closed vocabulary


def _drift_rules(cols: dict[str, pa.Array]) -> np.ndarray:
    window = cols["window_hours"]
    bounded = pc.and_(pc.greater(window, 0), pc.less_equal(window, MAX_WINDOW_HOURS))
    return _np(window.is_null()) | _np(bounded)


_RULES: dict[str, Callable[[dict[str, pa.Array]], np.ndarray]] = {
    "interactions": _interaction_rules,
    "feedback": _feedback_rules,
    "annotations": _annotation_rules,
    "drift_events": _drift_rules,
}
