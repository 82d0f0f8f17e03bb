"""The columnar ingest path against the per-line reference: the same rows, the same quarantine
(codes and details), every line of every file counted once."""

from __future__ import annotations

import gzip
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel_assets.catalog.raw import STREAM_TABLES
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.contract.records import (
    FEEDBACK,
    FEEDBACK_KINDS,
    INTERACTIONS,
    ROLES,
    STREAMS,
    VERDICTS,
    Rejection,
    Stream,
    parse_line,
)
from flywheel_assets.governance.hashing import keyed_hash
from flywheel_assets.governance.tombstones import RecordMatcher
from flywheel_assets.ingest import columnar, pipeline
from flywheel_assets.ingest.pipeline import IngestSettings, ingest_landing
from flywheel_assets.lake.tables import Lake
from flywheel_assets.sample import write_sample_landing
from flywheel_tests.support.records import feedback, interaction, write_lines
from flywheel_tests.support.reference.ingest import reference_stream_rows

KEY = b"a-test-key-of-enough-length"
PY_SPACES = list(columnar.PY_WHITESPACE)


# --- outcomes, line by line -----------------------------------------------------------------------


def _plain(value):
    """Rows compared exactly: floats by their bits (so -0.0 is not 0.0), containers recursively."""
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def reference_outcome(stream: Stream, raw: bytes) -> tuple:
    """What today's per-line path makes of a line: a stored row, a rejection, or an exception."""
    try:
        row = parse_line(stream, raw)
    except Rejection as rej:
        return ("rejected", rej.code.value, rej.detail)
    except Exception as exc:  # noqa: BLE001 - e.g. OverflowError for year 1 shifted to UTC
        return ("raises", type(exc).__name__)
    try:
        stored = pa.Table.from_pylist([row], schema=columnar.row_schema(stream)).to_pylist()[0]
    except Exception as exc:  # noqa: BLE001 - e.g. a lone surrogate Arrow cannot store
        return ("unstorable", type(exc).__name__)
    return ("row", _plain(stored))


def columnar_outcomes(stream: Stream, lines: list[bytes]) -> list[tuple]:
    """The columnar path's outcome per line: its own row, or `parse_line`'s for lines it left."""
    parsed = columnar.parse_chunk(stream, lines)
    fast = dict(zip(parsed.index.tolist(), parsed.rows.to_pylist(), strict=True))
    assert not set(fast) & set(parsed.fallback)
    assert sorted([*fast, *parsed.fallback]) == list(range(len(lines)))
    return [
        ("row", _plain(fast[i])) if i in fast else reference_outcome(stream, raw)
        for i, raw in enumerate(lines)
    ]


# --- random landing lines -------------------------------------------------------------------------


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=12
) | st.sampled_from(["ok", "a b", "héllo", "日本語", "😀", 'q"uote', "back\\slash", "tab\t"])
_space_only = st.text(alphabet=st.sampled_from(PY_SPACES), min_size=1, max_size=3)
_json_str = st.one_of(
    _text.map(_dumps),
    _text.map(json.dumps),  # \\uXXXX escapes
    _space_only.map(_dumps),
    st.sampled_from(['"\\ud800"', '"a\\udc00b"', '"\\ud83d\\ude00"', '"\\u0000"', '"a\x01b"']),
)
_wrong = st.sampled_from(["null", "true", "false", "1", "-2.5", "[]", "{}", '"7"', '["x"]'])
_ints = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.integers(-5, 10).map(str),
    st.sampled_from(["2.0", "1e2", "-0", "9223372036854775807", "9223372036854775808", "1.5"]),
    st.just("9" * 5000),  # past Python's int digit limit: json.loads raises ValueError
)
_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-(2**80), 2**80).map(str),
    st.sampled_from(["1e400", "-1e400", "NaN", "Infinity", "-0", "-0.0", "0", "1e-400", "-1e-400"]),
    st.sampled_from(["0.5", "12", "-3", "1E5", "4.9e-324", "123456789012345678901"]),
)


@st.composite
def _timestamps(draw) -> str:
    form = draw(st.integers(0, 4))
    if form <= 2:
        dt = draw(st.datetimes())
        digits = draw(st.sampled_from([0, 0, 1, 3, 6, 6, 7]))
        frac = ("." + f"{dt.microsecond:06d}5"[:digits]) if digits else ""
        text = (
            f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}{draw(st.sampled_from('TTT t'))}"
            f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}{frac}"
        )
    elif form == 3:  # every field may be out of range
        y, mo, d = draw(st.integers(0, 9999)), draw(st.integers(0, 13)), draw(st.integers(0, 32))
        h, mi, s = draw(st.integers(0, 25)), draw(st.integers(0, 61)), draw(st.integers(0, 61))
        text = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}"
    else:
        return draw(st.sampled_from(["yesterday", "", "2026-11-20", "20/11/2026 10:00", "T"]))
    zone = draw(
        st.sampled_from(
            ["Z", "Z", "+00:00", "-00:00", "+05:30", "-11:59", "+23:59", "+24:00", "+05:60"]
            + ["", "z", "+0530", "+05", " Z", "Z "]
        )
    )
    return text + zone


_ts = st.one_of(_timestamps().map(_dumps), _wrong)


@st.composite
def _message(draw) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(_wrong)
    pairs = [
        ("role", draw(st.sampled_from(sorted(ROLES)).map(_dumps) | _json_str | _wrong)),
        ("content", draw(_json_str | _wrong)),
    ]
    if draw(st.integers(0, 9)) == 0:
        pairs.append(draw(st.sampled_from([("lang", '"en"'), ("role", '"user"')])))
    if draw(st.integers(0, 9)) == 0:
        pairs.pop(draw(st.integers(0, len(pairs) - 1)))
    return _object(pairs)


_messages = st.one_of(
    st.lists(_message(), max_size=4).map(lambda ms: "[" + ", ".join(ms) + "]"), _wrong
)
_tags = st.one_of(st.lists(_json_str, max_size=3).map(lambda ts: "[" + ",".join(ts) + "]"), _wrong)
_objects = st.one_of(
    st.dictionaries(_text, _text, max_size=4).map(_dumps),
    st.dictionaries(_text, _text, max_size=2).map(json.dumps),
    st.sampled_from(['{"a": 1}', '{"a": {"b": "c"}}', '{"a": null}', '{"k": "1", "k": "2"}']),
    _wrong,
)
_VALUES = {
    "str": _json_str,
    "int": _ints,
    "float": _floats,
    "ts": _ts,
    "messages": _messages,
    "tags": _tags,
    "object": _objects,
}
_CHOICES = {"kind": sorted(FEEDBACK_KINDS), "verdict": sorted(VERDICTS), "role": sorted(ROLES)}


def _object(pairs: list[tuple[str, str]], sep: str = ", ", colon: str = ": ") -> str:
    return "{" + sep.join(f"{json.dumps(k)}{colon}{v}" for k, v in pairs) + "}"


_word = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8)
_some_text = st.one_of(
    st.sampled_from(["r-1", "r-2", "x y", "m-1", "héllo wörld", "日本語", "😀 ok"]),
    _word.filter(lambda t: not t.isspace()),
)


@st.composite
def _good_ts(draw) -> str:
    dt = draw(st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)))
    digits = draw(st.sampled_from([0, 3, 6, 1, 5]))
    frac = ("." + f"{dt.microsecond:06d}"[:digits]) if digits else ""
    zone = draw(st.sampled_from(["Z", "+00:00", "-05:00", "+05:30", "+13:45", "-00:00"]))
    return f"{dt.isoformat(timespec='seconds')}{frac}{zone}"


@st.composite
def _good_messages(draw) -> list[dict]:
    turns = draw(
        st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(sorted(ROLES)), "content": _some_text | _text}
            ),
            max_size=4,
        )
    )
    at = draw(st.integers(0, len(turns)))
    return turns[:at] + [{"role": "user", "content": draw(_some_text | _text)}] + turns[at:]


# Values `parse_line` accepts, with the odd but valid ones (unicode, escapes, big numbers).
_GOOD = {
    "str": _some_text | _text.filter(lambda t: t.strip()),
    "int": st.integers(-(2**63), 2**63 - 1) | st.integers(-5, 1000),
    "float": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**70), 2**70),
    "ts": _good_ts(),
    "messages": _good_messages(),
    "tags": st.lists(_some_text | _text, max_size=3),
    "object": st.dictionaries(_some_text | _text, _some_text | _text, max_size=4),
}
_GOOD_CHOICES = {
    "kind": st.sampled_from(sorted(FEEDBACK_KINDS)),
    "verdict": st.sampled_from(sorted(VERDICTS)),
    "score": st.integers(1, 5),
    "window_hours": st.floats(min_value=1e-6, max_value=1e6),
}


@st.composite
def _record_line(draw, stream: Stream) -> bytes:
    """Mostly records `parse_line` accepts; some with a field or the whole line spoiled."""
    noisy = draw(st.integers(0, 9)) < 3
    pairs = []
    for spec in stream.fields:
        if draw(st.integers(0, 19)) < (1 if spec.required and noisy else 0 if spec.required else 8):
            continue  # absent
        if noisy and draw(st.integers(0, 3)) == 0:
            value = draw(_VALUES[spec.kind])
        elif spec.name in _CHOICES and noisy and draw(st.booleans()):
            value = _dumps(draw(st.sampled_from(_CHOICES[spec.name])))
        else:
            good = _GOOD_CHOICES.get(spec.name, _GOOD[spec.kind])
            value = draw(good)
            value = (_dumps if draw(st.integers(0, 3)) else json.dumps)(value)
        pairs.append((spec.name, value))
    if draw(st.integers(0, 14)) == 0:  # a field the contract does not know
        pairs.append((draw(st.sampled_from(["client", "extra", "_source_file"])), draw(_wrong)))
    if pairs and draw(st.integers(0, 14)) == 0:  # a key given twice
        name, _ = pairs[draw(st.integers(0, len(pairs) - 1))]
        pairs.append((name, draw(_json_str | _wrong)))
    draw(st.randoms()).shuffle(pairs)
    text = _object(
        pairs, draw(st.sampled_from([", ", ",", ",\r"])), draw(st.sampled_from([": ", ":"]))
    )
    raw = text.encode()
    mutation = draw(st.integers(0, 39))
    if mutation == 0:
        return draw(st.sampled_from([b"", b"   ", b"\t", b"\x0c", "\u3000".encode()]))
    if mutation == 1 and raw:
        at = draw(st.integers(0, len(raw)))
        bad = draw(st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\x80"]))
        return raw[:at] + bad + raw[at:]
    if mutation == 2:
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    if mutation == 3:
        return draw(st.sampled_from([b"[" + raw + b"]", raw + b" " + raw, b"\xef\xbb\xbf" + raw]))
    if mutation == 4:
        return b" " + raw + b"\t "
    return raw


@st.composite
def _stream_lines(draw) -> tuple[Stream, list[bytes]]:
    stream = draw(st.sampled_from(STREAMS))
    return stream, draw(st.lists(_record_line(stream), min_size=1, max_size=25))


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=_stream_lines())
def test_every_random_line_has_the_reference_outcome(case):
    stream, lines = case
    assert columnar_outcomes(stream, lines) == [reference_outcome(stream, raw) for raw in lines]


# --- the fast path's pieces -----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(_timestamps() | _good_ts(), min_size=1, max_size=20))
def test_timestamps_are_what_fromisoformat_gives_in_utc(texts):
    values, parsed = columnar._timestamps(pa.array(texts, pa.string()))
    for text, value, ok in zip(texts, values.to_pylist(), parsed.tolist(), strict=True):
        if ok:  # only what the fast path takes; the rest is parse_line's
            assert value == datetime.fromisoformat(text).astimezone(UTC), text


def test_the_whitespace_set_is_what_str_strip_removes():
    spaces = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
    assert spaces == columnar.PY_WHITESPACE


def test_the_common_timestamp_forms_are_taken():
    texts = [
        "2026-11-20T10:00:00.123456+00:00",
        "2026-11-20T10:00:00.123Z",
        "2024-02-29T23:59:59-05:00",
    ]
    values, parsed = columnar._timestamps(pa.array(texts))
    assert parsed.all()
    assert values.to_pylist() == [datetime.fromisoformat(t).astimezone(UTC) for t in texts]


@settings(max_examples=200, deadline=None)
@given(objects=st.lists(st.none() | st.dictionaries(_text, _text, max_size=5), max_size=12))
def test_object_text_is_json_dumps_with_sorted_keys(objects):
    keys = sorted({k for o in objects if o for k in o})
    col = pa.array(objects, pa.struct([(k, pa.string()) for k in keys]))
    text, exact = columnar._object_text(col, keys)
    assert len(text) == len(objects)  # an all-null row must not be dropped
    for obj, got, ok in zip(objects, text.to_pylist(), exact.tolist(), strict=True):
        if ok:
            want = None if obj is None else json.dumps(obj, ensure_ascii=False, sort_keys=True)
            assert got == want


def test_a_duplicated_key_is_left_to_parse_line_and_the_rest_still_fast():
    lines = [json.dumps(interaction(f"r{i}")).encode() for i in range(40)]
    lines[17] = (
        b'{"request_id": "r17", "request_id": "dup", "ts": "2026-11-20T10:00:00Z", '
        b'"prompt": "p", "response": "a", "model_version": "m"}'
    )
    parsed = columnar.parse_chunk(INTERACTIONS, lines)
    assert parsed.fallback == [17]
    assert parse_line(INTERACTIONS, lines[17])["request_id"] == "dup"  # json.loads: last wins
    assert columnar_outcomes(INTERACTIONS, lines) == [
        reference_outcome(INTERACTIONS, raw) for raw in lines
    ]


def test_objects_with_too_many_keys_are_left_to_parse_line():
    meta = {f"k{i}": str(i) for i in range(columnar._MAX_OBJECT_KEYS + 1)}
    lines = [
        json.dumps(interaction("r1", metadata=meta)).encode(),
        json.dumps(interaction("r2", metadata={"app": "x"})).encode(),
        json.dumps(interaction("r3")).encode(),
    ]
    parsed = columnar.parse_chunk(INTERACTIONS, lines)
    assert parsed.fallback == [0, 1] and parsed.index.tolist() == [2]
    assert columnar_outcomes(INTERACTIONS, lines) == [
        reference_outcome(INTERACTIONS, raw) for raw in lines
    ]


def test_stream_rules_leave_every_doubtful_row_to_parse_line():
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "u1"}]
    chat += [{"role": "assistant", "content": "a"}, {"role": "user", "content": "u2"}]
    interactions = [
        {k: v for k, v in interaction("no-prompt", messages=chat).items() if k != "prompt"},
        interaction("no-user-turn", messages=chat[:1]),
        {k: v for k, v in interaction("neither").items() if k != "prompt"},
        interaction("blank", response=" \u3000"),
        interaction("odd-ts", ts="2026-11-20 10:00:00+00:00"),
        interaction("neg-zero", response_logprob=-0.0),
    ]
    feedbacks = [
        feedback("f1", "r", kind="rating", score=5),
        feedback("f2", "r", kind="rating", score=6),
        feedback("f3", "r", kind="rating"),
        feedback("f4", "r", kind="edit", correction="\t"),
        feedback("f5", "r", kind="edit", correction="better"),
        feedback("f6", "r", kind="comparison", other_request_id=""),
        feedback("f7", "r", kind="comparison", other_request_id=" "),
    ]
    for stream, records, fast in [
        (INTERACTIONS, interactions, [0]),
        (FEEDBACK, feedbacks, [0, 4, 6]),
    ]:
        lines = [json.dumps(r).encode() for r in records]
        assert columnar.parse_chunk(stream, lines).index.tolist() == fast
        assert columnar_outcomes(stream, lines) == [reference_outcome(stream, r) for r in lines]
    row = columnar.parse_chunk(INTERACTIONS, [json.dumps(interactions[0]).encode()]).rows
    assert row["prompt"].to_pylist() == ["u2"]  # the last user turn


# --- whole landing zones --------------------------------------------------------------------------


def _edge_files(root: Path) -> None:
    """Hand-made lines the sample does not write, and a gzip file cut short."""
    dup = (
        b'{"feedback_id": "fd", "feedback_id": "fd2", "request_id": "r", '
        b'"ts": "2026-11-20T10:00:00Z", "kind": "copy"}'
    )
    write_lines(
        root,
        "feedback/zz-edge.jsonl",
        [
            feedback("fe-1", "r", source="api"),
            dup,
            feedback("fe-2", "r", kind="rating", score=1.0),
            feedback("fe-3", "r", ts="2026-11-20T10:00:00.5+05:60"),
            b"   ",
            feedback("fe-1", "r"),  # a retry of the first
        ],
    )
    write_lines(
        root,
        "interactions/zz-edge.jsonl",
        [
            interaction("ie-1", metadata={"app": 'say "hi"', "n": "\n"}),
            interaction("ie-2", metadata={"nested": {"a": 1}}),
            interaction("ie-3", metadata={}),
            interaction("ie-4", latency_ms=2**63),
            interaction("ie-5", response_logprob=1e308, ts="2026-11-20T10:00:00.000001-00:00"),
        ],
    )
    lines = b"".join(json.dumps(interaction(f"gz-{i}")).encode() + b"\n" for i in range(300))
    cut = gzip.compress(lines, mtime=0)
    (root / "interactions" / "zz-cut.jsonl.gz").write_bytes(cut[: len(cut) * 2 // 3])


def _erasure(root: Path) -> RecordMatcher:
    """A matcher for a few sample users (their valid and malformed lines) and request ids."""
    users = [f"u_{k}" for k in range(0, 100, 7)]
    requests = set()
    for path in sorted((root / "interactions").glob("*.jsonl")):
        for raw in path.read_bytes().splitlines()[:400:37]:
            try:
                requests.add(json.loads(raw)["request_id"])
            except (ValueError, KeyError, TypeError):
                continue
    return RecordMatcher(KEY, {keyed_hash(u, KEY, "user") for u in users}, requests)


def _ingest(root: Path, lake_dir: Path, **kwargs):
    lake = Lake(str(lake_dir))
    return lake, ingest_landing(LandingZone(str(root)), lake, **kwargs)


def _table(lake: Lake, name: str, keys: list[str]) -> list[dict]:
    table = lake.read(name)
    assert table is not None
    table = table.drop_columns(["_ingested_at"]).sort_by([(k, "ascending") for k in keys])
    return _plain(table.to_pylist())


def _files(report) -> list[tuple]:
    return [
        (f.stream, f.path, f.status, f.sha256, f.lines_read, f.valid, f.quarantined)
        + (f.duplicates, f.erased, dict(f.reasons))
        for f in report.files
    ]


@pytest.mark.parametrize(
    ("seed", "chunk_lines", "erase"),
    [(1, 50_000, "matcher"), (2, 97, "matcher"), (3, 211, "callback"), (4, 50_000, None)],
)
def test_sample_landing_ingests_exactly_as_the_reference(
    tmp_path, monkeypatch, seed, chunk_lines, erase
):
    root = tmp_path / "landing"
    write_sample_landing(root, n_interactions=600, seed=seed)
    _edge_files(root)
    matcher = _erasure(root)
    erased = {
        "matcher": matcher,
        "callback": lambda row: row.get("user_id") in {"u_7", "u_14"} or row.get("kind") == "copy",
        None: None,
    }[erase]
    settings_ = IngestSettings(chunk_lines=chunk_lines)

    fast_lake, fast = _ingest(root, tmp_path / "fast", settings=settings_, erased=erased)
    monkeypatch.setattr(pipeline, "_stream_rows", reference_stream_rows)
    ref_lake, ref = _ingest(root, tmp_path / "ref", settings=settings_, erased=erased)

    assert _files(fast) == _files(ref)
    for stream in STREAMS:
        table = STREAM_TABLES[stream.name].name
        assert _table(fast_lake, table, [stream.id_field]) == _table(
            ref_lake, table, [stream.id_field]
        )
    quarantine = ["source_file", "line_number"]
    assert _table(fast_lake, "quarantine", quarantine) == _table(ref_lake, "quarantine", quarantine)
    totals = fast.totals()
    assert totals["quarantined"] > 0 and totals["duplicates"] > 0
    if erase:
        assert totals["erased"] > 0


def test_every_file_balances_and_every_line_is_read(tmp_path):
    root = tmp_path / "landing"
    write_sample_landing(root, n_interactions=300, seed=5)
    _edge_files(root)
    lake, report = _ingest(root, tmp_path / "lake", erased=_erasure(root))

    assert report.files and all(f.balanced for f in report.files)
    for f in report.files:
        path = root / f.path
        if f.path.endswith("zz-cut.jsonl.gz"):  # the lines before the cut, plus the cut
            assert f.reasons["unreadable_file"] == 1
            continue
        data = gzip.decompress(path.read_bytes()) if f.path.endswith(".gz") else path.read_bytes()
        assert f.lines_read == data.count(b"\n")
    ledger = lake.read("ingest_ledger").to_pylist()
    done = [r for r in ledger if r["status"] == "done"]
    assert len(done) == len(report.files)
    for r in done:
        assert r["valid"] + r["quarantined"] + r["duplicates"] + r["erased"] == r["lines_read"]


def test_the_fast_path_takes_nearly_every_valid_sample_line(tmp_path):
    root = tmp_path / "landing"
    manifest = write_sample_landing(root, n_interactions=600, seed=6, gzip_share=0.0)
    zone = LandingZone(str(root))
    for stream in STREAMS:
        taken = 0
        for f in zone.list_files(stream.name):
            lines = (root / f.path).read_bytes().split(b"\n")[:-1]
            taken += len(columnar.parse_chunk(stream, lines).index)
        valid = manifest.valid[stream.name] + manifest.duplicates[stream.name]
        assert taken >= 0.95 * valid, stream.name
