"""Ingestion of random landing files on real Delta tables: whatever a file holds, nothing raises,
every line of every file is accounted for once, and the next clean file is ingested."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel_assets.catalog.raw import LEDGER
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.contract.records import STREAMS, Reason
from flywheel_assets.ingest import quality
from flywheel_assets.ingest.pipeline import IngestSettings, ingest_landing
from flywheel_assets.lake.tables import Lake
from flywheel_tests.support.records import drift_event, feedback, interaction


def annotation_like(annotation_id: str) -> dict:
    return {
        "annotation_id": annotation_id,
        "request_id": "r",
        "ts": "2026-11-20T10:00:00Z",
        "operator": "op",
        "tags": ["t"],
        "verdict": "good",
    }


_VALID = {
    "interactions": lambda i: interaction(f"p-{i}"),
    "feedback": lambda i: feedback(f"p-{i}", "r", kind="rating", score=3),
    "annotations": lambda i: annotation_like(f"p-{i}"),
    "drift_events": lambda i: drift_event(f"p-{i}", "2026-11-20T10:00:00Z", window_hours=6),
}
_CLEAN = {
    "interactions": lambda i: interaction(f"clean-{i}"),
    "feedback": lambda i: feedback(f"clean-{i}", "r"),
    "annotations": lambda i: annotation_like(f"clean-{i}"),
    "drift_events": lambda i: drift_event(f"clean-{i}", "2026-11-20T10:00:00Z"),
}

# JSON text the standard parser may meet, odd cases included: NaN, huge and long numbers, lone
# surrogates, control characters, deep nesting.
_scalar_text = st.one_of(
    st.sampled_from(
        ["null", "true", "0", "-0", "1e400", "NaN", "-Infinity", "9" * 4400, '"\\ud800"']
        + ['"\\u0000"', '"2026-11-20T10:00:00Z"', '"0001-01-01T00:00:00+01:00"', '""', '" "']
        + ['"9999-12-31T23:59:59-01:00"', "1e9", "-1", "[" * 50 + "]" * 50, "[" * 5000]
    ),
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(lambda x: json.dumps(x)),
    st.text(max_size=12).map(json.dumps),
    st.text(max_size=12).map(lambda t: json.dumps(t, ensure_ascii=False)),
)
_json_text = st.recursive(
    _scalar_text,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.dictionaries(st.text(max_size=5), inner, max_size=3).map(
            lambda d: "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=6,
)


@st.composite
def _mutated_record(draw, stream: str, i: int) -> bytes:
    """A valid record with some fields replaced by arbitrary JSON, removed, or added."""
    record = {k: json.dumps(v) for k, v in _VALID[stream](i).items()}
    for name in list(record):
        action = draw(st.integers(0, 9))
        if action == 0:
            record[name] = draw(_json_text)
        elif action == 1:
            del record[name]
    if draw(st.integers(0, 4)) == 0:
        record[draw(st.text(max_size=6))] = draw(_json_text)
    return ("{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in record.items()) + "}").encode()


@st.composite
def _landing_file(draw) -> tuple[str, bytes, bool]:
    """(stream, file bytes, whether the bytes are gzip)."""
    stream = draw(st.sampled_from([s.name for s in STREAMS]))
    lines = []
    for i in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            lines.append(draw(st.binary(max_size=60)))
        elif kind == 1:
            lines.append(draw(_json_text).encode())
        else:
            lines.append(draw(_mutated_record(stream, i)))
    sep = draw(st.sampled_from([b"\n", b"\r\n"]))
    data = draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + sep.join(lines)
    if draw(st.booleans()):
        data += sep
    packed = draw(st.integers(0, 3))
    if packed == 0:
        return stream, data, False
    gz = gzip.compress(data, mtime=0)
    if packed == 1:  # cut short or damaged
        gz = gz[: draw(st.integers(0, len(gz)))] if draw(st.booleans()) else _flip(gz, draw)
    return stream, gz, True


def _flip(data: bytes, draw) -> bytes:
    if not data:
        return data
    at = draw(st.integers(0, len(data) - 1))
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def _line_count(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(files=st.lists(_landing_file(), min_size=1, max_size=3))
def test_random_files_never_stop_ingestion_and_every_line_is_accounted_for(files):
    root = Path(tempfile.mkdtemp(prefix="flywheel-prop-"))
    landing, lake = root / "landing", Lake(str(root / "lake"))
    plain: dict[str, bytes] = {}
    for n, (stream, data, is_gz) in enumerate(files):
        rel = f"{stream}/f{n}.jsonl" + (".gz" if is_gz else "")
        (landing / stream).mkdir(parents=True, exist_ok=True)
        (landing / rel).write_bytes(data)
        if not is_gz:
            plain[rel] = data
    zone = LandingZone(str(landing))
    # A small line limit and chunk size reach those paths with small examples.
    small = IngestSettings(chunk_lines=5, max_line_bytes=256)

    report = ingest_landing(zone, lake, settings=small)

    assert len(report.files) == len(files)
    for f in report.files:
        assert f.balanced, f
        assert f.status == "done"
        if f.path in plain:
            assert f.lines_read == _line_count(plain[f.path]), f.path
    codes = {r.value for r in Reason}
    quarantine = lake.read("quarantine")
    assert set(quarantine["reason_code"].to_pylist()) <= codes
    assert quality.unbalanced_files(lake.read(LEDGER.name)) == []

    for stream in STREAMS:  # the next clean file of every stream goes in whole
        rows = [json.dumps(_CLEAN[stream.name](0)).encode()]
        (landing / stream.name).mkdir(parents=True, exist_ok=True)
        (landing / stream.name / "zz-clean.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    after = ingest_landing(zone, lake, settings=small)
    assert [(f.valid, f.lines_read) for f in after.files] == [(1, 1)] * len(STREAMS)
    for stream in STREAMS:
        stored = lake.read(stream.table, columns=[stream.id_field])[stream.id_field].to_pylist()
        assert "clean-0" in stored
