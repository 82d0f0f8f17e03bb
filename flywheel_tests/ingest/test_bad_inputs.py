"""No landing input stops ingestion: every line ends as a row, a quarantine with a specific reason,
a duplicate or an erasure, one file's failure never blocks later files, and the landing zone is
read only through regular files inside it."""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime, timedelta

import pyarrow.compute as pc
import pytest

from flywheel_assets.catalog.raw import LEDGER
from flywheel_assets.contract.records import (
    DRIFT_EVENTS,
    FEEDBACK,
    INTERACTIONS,
    Reason,
    Rejection,
    parse_line,
)
from flywheel_assets.ingest.pipeline import IngestSettings, ingest_landing
from flywheel_tests.support.records import drift_event, feedback, interaction, write_lines
from flywheel_tests.support.runs import run_ingest

_REQ = '"request_id": "{rid}", "prompt": "p", "response": "a", "model_version": "m"'


def _line(rid: str, **raw_fields: str) -> bytes:
    """An interaction line with some fields given as raw JSON text."""
    fields = {"ts": '"2026-11-20T10:00:00Z"', **raw_fields}
    body = _REQ.format(rid=rid) + "".join(f', "{k}": {v}' for k, v in fields.items())
    return ("{" + body + "}").encode()


def ids(lake, table="raw_logs", column="request_id") -> list[str]:
    rows = lake.read(table, columns=[column])
    return [] if rows is None else sorted(rows[column].to_pylist())


def quarantined(lake) -> dict[str, str]:
    """reason_code by source file and line number."""
    q = lake.read("quarantine")
    return {
        f"{r['source_file']}:{r['line_number']}": r["reason_code"]
        for r in ([] if q is None else q.to_pylist())
    }


def _assert_next_clean_file_ingests(zone, lake, landing_dir, name="zz-clean.jsonl"):
    write_lines(landing_dir, f"interactions/{name}", [interaction(f"clean-{name}")])
    report = ingest_landing(zone, lake)
    assert [f.path for f in report.files] == [f"interactions/{name}"]
    assert f"clean-{name}" in ids(lake)


# Lines that once raised inside ingestion, with the reason each is quarantined with now.
RAISING_LINES = {
    "lone surrogate in a field": (_line("s1", user_id='"\\ud800"'), Reason.BAD_UNICODE),
    "lone surrogate in an unknown field": (_line("s2", note='"a\\udfffb"'), Reason.BAD_UNICODE),
    "lone surrogate in an object key": (
        _line("s3", metadata='{"\\ud800": "x"}'),
        Reason.BAD_UNICODE,
    ),
    "lone surrogate in a chat": (
        _line("s4", messages='[{"role": "user", "content": "\\udc00"}]'),
        Reason.BAD_UNICODE,
    ),
    "an integer of 5,000 digits": (_line("n1", latency_ms="9" * 5000), Reason.NUMBER_TOO_LONG),
    "an unknown field of 5,000 digits": (_line("n2", size="1" * 5000), Reason.NUMBER_TOO_LONG),
    "year 1 shifted to UTC": (_line("t1", ts='"0001-01-01T00:00:00+01:00"'), Reason.BAD_TS),
    "year 9999 shifted to UTC": (_line("t2", ts='"9999-12-31T23:59:59-01:00"'), Reason.BAD_TS),
    "NaN in an unknown field": (_line("x1", score="NaN"), Reason.BAD_VALUE),
    "Infinity in an object": (_line("x2", metadata='{"a": Infinity}'), Reason.BAD_VALUE),
    "NaN in a number field": (_line("x3", response_logprob="NaN"), Reason.BAD_VALUE),
    "nesting past the parser's depth": (
        _line("d1", extra="[" * 100_000 + "]" * 100_000),
        Reason.NOT_JSON,
    ),
}


@pytest.mark.parametrize("case", sorted(RAISING_LINES))
def test_a_line_that_raised_is_quarantined_and_the_next_file_still_ingests(
    case, zone, lake, landing_dir
):
    raw, reason = RAISING_LINES[case]
    write_lines(
        landing_dir, "interactions/a.jsonl", [interaction("before"), raw, interaction("after")]
    )

    report = ingest_landing(zone, lake)

    (a,) = report.files
    assert (a.lines_read, a.valid, a.quarantined) == (3, 2, 1) and a.balanced
    assert dict(a.reasons) == {reason.value: 1}
    assert quarantined(lake) == {"interactions/a.jsonl:2": reason.value}
    assert ids(lake) == ["after", "before"]
    _assert_next_clean_file_ingests(zone, lake, landing_dir)


@pytest.mark.parametrize("case", sorted(RAISING_LINES))
def test_parse_line_rejects_each_such_line_with_its_reason(case):
    raw, reason = RAISING_LINES[case]
    with pytest.raises(Rejection) as err:
        parse_line(INTERACTIONS, raw)
    assert err.value.code == reason


def test_a_raising_line_through_the_ingest_asset_is_quarantined(landing_dir, lake):
    write_lines(
        landing_dir,
        "interactions/a.jsonl",
        [interaction("r1"), _line("s1", user_id='"\\ud800"'), _line("n1", latency_ms="9" * 5000)],
    )
    first = run_ingest(landing_dir, lake)
    assert first.success
    write_lines(landing_dir, "interactions/b.jsonl", [interaction("r2")])
    assert run_ingest(landing_dir, lake).success
    assert ids(lake) == ["r1", "r2"]
    assert sorted(quarantined(lake).values()) == ["bad_unicode", "number_too_long"]


# --- whole files ----------------------------------------------------------------------------------


def test_bytes_a_file_may_hold_each_end_in_one_place(zone, lake, landing_dir):
    good = json.dumps(interaction("bom")).encode()
    (landing_dir / "interactions").mkdir()
    (landing_dir / "interactions/a-bom.jsonl").write_bytes(b"\xef\xbb\xbf" + good + b"\n")
    (landing_dir / "interactions/b-crlf.jsonl").write_bytes(
        json.dumps(interaction("crlf-1")).encode()
        + b"\r\n"
        + json.dumps(interaction("crlf-2")).encode()
    )
    (landing_dir / "interactions/c-empty.jsonl").write_bytes(b"")
    (landing_dir / "interactions/d-nul.jsonl").write_bytes(
        b"\x00\n"
        + _line("nul", response='"a\\u0000b"')
        + b"\n"
        + good.replace(b"bom", b"\x00")
        + b"\n"
    )
    (landing_dir / "interactions/e-latin1.jsonl").write_bytes(
        _line("latin-1").replace(b'"p"', b'"caf\xe9"') + b"\n"
    )

    report = ingest_landing(zone, lake)

    by = {f.path.rsplit("/", 1)[1]: f for f in report.files}
    assert all(f.balanced for f in report.files)
    assert (by["a-bom.jsonl"].lines_read, by["a-bom.jsonl"].valid) == (1, 1)
    assert (by["b-crlf.jsonl"].lines_read, by["b-crlf.jsonl"].valid) == (2, 2)
    assert by["c-empty.jsonl"].lines_read == 0 and by["c-empty.jsonl"].status == "done"
    assert dict(by["d-nul.jsonl"].reasons) == {"not_json": 2}
    assert dict(by["e-latin1.jsonl"].reasons) == {"not_utf8": 1}
    assert ids(lake) == ["bom", "crlf-1", "crlf-2", "nul"]
    _assert_next_clean_file_ingests(zone, lake, landing_dir)


def test_a_corrupt_or_truncated_gzip_keeps_its_good_lines_and_blocks_nothing(
    zone, lake, landing_dir
):
    lines = b"".join(json.dumps(interaction(f"gz-{i}")).encode() + b"\n" for i in range(2000))
    packed = gzip.compress(lines, mtime=0)
    (landing_dir / "interactions").mkdir()
    (landing_dir / "interactions/a-cut.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    flipped = bytearray(packed)
    flipped[len(flipped) // 2] ^= 0xFF
    (landing_dir / "interactions/b-flipped.jsonl.gz").write_bytes(bytes(flipped))
    (landing_dir / "interactions/c-not-gzip.jsonl.gz").write_bytes(b"plain text, not gzip\n")

    report = ingest_landing(zone, lake)

    assert all(f.balanced for f in report.files) and len(report.files) == 3
    for f in report.files:
        assert f.reasons["unreadable_file"] == 1, f.path
    _assert_next_clean_file_ingests(zone, lake, landing_dir)


def test_a_file_that_vanishes_mid_batch_is_recorded_missing(zone, lake, landing_dir):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("a1")])
    later = write_lines(landing_dir, "interactions/b.jsonl", [interaction("b1")])

    def erased(row: dict) -> bool:
        later.unlink(missing_ok=True)  # deleted while the batch reads the first file
        return False

    report = ingest_landing(zone, lake, erased=erased)

    status = {f.path: f.status for f in report.files}
    assert status == {"interactions/a.jsonl": "done", "interactions/b.jsonl": "missing"}
    assert ids(lake) == ["a1"]
    _assert_next_clean_file_ingests(zone, lake, landing_dir)


def test_a_line_ingestion_fails_on_is_quarantined_whole_and_later_files_ingest(
    zone, lake, landing_dir
):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("a1"), interaction("a2")])
    write_lines(landing_dir, "interactions/b.jsonl", [interaction("b1")])

    def erased(row: dict) -> bool:
        if row.get("request_id") == "a2":
            raise RuntimeError("matcher failed")
        return False

    report = ingest_landing(zone, lake, erased=erased)

    by = {f.path: f for f in report.files}
    assert all(f.balanced for f in report.files)
    assert dict(by["interactions/a.jsonl"].reasons) == {"unexpected_error": 1}
    assert ids(lake) == ["a1", "b1"]
    (q,) = lake.read("quarantine").to_pylist()
    assert (q["line_number"], q["raw_bytes"]) == (2, json.dumps(interaction("a2")).encode())
    assert "RuntimeError: matcher failed" in q["reason"]


# --- long lines -----------------------------------------------------------------------------------


def test_an_overlong_line_is_quarantined_as_a_prefix(zone, lake, landing_dir):
    limit = 64 << 10
    long_line = _line("long", response=json.dumps("x" * (limit * 5)))
    write_lines(
        landing_dir,
        "interactions/a.jsonl.gz",
        [interaction("r1"), long_line, interaction("r2")],
    )
    write_lines(landing_dir, "interactions/b.jsonl", [b"y" * (limit + 1), interaction("r3")])

    report = ingest_landing(zone, lake, settings=IngestSettings(max_line_bytes=limit))

    assert all(f.balanced for f in report.files)
    assert ids(lake) == ["r1", "r2", "r3"]
    q = {r["source_file"]: r for r in lake.read("quarantine").to_pylist()}
    row = q["interactions/a.jsonl.gz"]
    assert (row["line_number"], row["reason_code"]) == (2, "line_too_long")
    assert str(len(long_line)) in row["reason"]
    assert long_line.startswith(row["raw_bytes"]) and len(row["raw_bytes"]) < limit
    assert q["interactions/b.jsonl"]["reason_code"] == "line_too_long"


def test_a_line_exactly_at_the_limit_is_read(zone, lake, landing_dir):
    base = _line("edge", response='""')
    pad = 4096 - len(base)
    line = _line("edge", response=json.dumps("z" * pad))
    assert len(line) == 4096
    write_lines(landing_dir, "interactions/a.jsonl", [line])
    ingest_landing(zone, lake, settings=IngestSettings(max_line_bytes=4096))
    assert ids(lake) == ["edge"]


# --- what the landing zone may hold ---------------------------------------------------------------


def test_a_symlink_or_special_file_in_the_landing_zone_is_never_read(
    zone, lake, landing_dir, tmp_path, caplog
):
    secret = tmp_path / "outside.jsonl"
    secret.write_bytes(json.dumps(interaction("secret")).encode() + b"\n")
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    (landing_dir / "interactions/link.jsonl").symlink_to(secret)
    (tmp_path / "outside-dir").mkdir()
    (tmp_path / "outside-dir/x.jsonl").write_bytes(secret.read_bytes())
    (landing_dir / "interactions/linked-dir").symlink_to(tmp_path / "outside-dir")
    os.mkfifo(landing_dir / "interactions/pipe.jsonl")
    os.mkdir(os.path.join(os.fsencode(landing_dir / "interactions"), b"bad-\xff"))

    with caplog.at_level("WARNING"):
        report = ingest_landing(zone, lake)

    assert [f.path for f in report.files] == ["interactions/a.jsonl"]
    assert ids(lake) == ["r1"]
    refused = {r.path: r.reason for r in report.refused}
    assert set(refused) == {
        "interactions/link.jsonl",
        "interactions/linked-dir",
        "interactions/pipe.jsonl",
        "interactions/bad-\\udcff",
    }
    assert "symbolic link" in refused["interactions/link.jsonl"]
    assert "interactions/link.jsonl" in caplog.text


# --- the contract's ranges ------------------------------------------------------------------------


def _now_plus(**delta) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (drift_event("e1", "2026-11-20T10:00:00Z", window_hours=1e9), Reason.BAD_VALUE),
        (drift_event("e2", "0001-01-01T00:00:00Z"), Reason.BAD_TS),
        (drift_event("e3", "1969-12-31T23:59:59Z"), Reason.BAD_TS),
        (drift_event("e4", "9999-12-31T00:00:00Z"), Reason.BAD_TS),
        (drift_event("e5", _now_plus(days=2)), Reason.BAD_TS),
        (drift_event("e6", "2026-11-20T10:00:00Z", value=1e308 * 10), Reason.BAD_VALUE),
    ],
)
def test_out_of_range_drift_events_are_quarantined(record, reason, zone, lake, landing_dir):
    write_lines(
        landing_dir, "drift_events/a.jsonl", [record, drift_event("ok", _now_plus(hours=1))]
    )
    report = ingest_landing(zone, lake)
    assert dict(report.files[0].reasons) == {reason.value: 1}
    assert ids(lake, "drift_events", "event_id") == ["ok"]


@pytest.mark.parametrize(
    ("stream", "record", "reason"),
    [
        (INTERACTIONS, interaction("neg", latency_ms=-1), Reason.BAD_VALUE),
        (INTERACTIONS, interaction("huge", latency_ms=10**15), Reason.BAD_VALUE),
        (INTERACTIONS, interaction("future", ts="3000-01-01T00:00:00Z"), Reason.BAD_TS),
        (FEEDBACK, feedback("f", "r", ts="1900-01-01T00:00:00Z"), Reason.BAD_TS),
        (
            DRIFT_EVENTS,
            drift_event("e", "2026-11-20T10:00:00Z", window_hours=9000),
            Reason.BAD_VALUE,
        ),
    ],
)
def test_out_of_range_records_are_rejected(stream, record, reason):
    with pytest.raises(Rejection) as err:
        parse_line(stream, json.dumps(record).encode())
    assert err.value.code == reason


def test_drift_events_at_the_contract_limits_redact(zone, lake, landing_dir):
    from flywheel_tests.support.privacy import build

    write_lines(
        landing_dir,
        "drift_events/a.jsonl",
        [
            drift_event("lo", "1970-01-01T00:00:00Z", window_hours=8784),
            drift_event("hi", _now_plus(hours=23), window_hours=1e-9),
        ],
    )
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    ingest_landing(zone, lake)
    assert ids(lake, "drift_events", "event_id") == ["hi", "lo"]
    built = build(lake)
    assert built["logs"].committed


def test_the_ledger_is_written_for_every_file(zone, lake, landing_dir):
    write_lines(landing_dir, "interactions/a.jsonl", [_line("s1", user_id='"\\ud800"')])
    ingest_landing(zone, lake)
    ledger = lake.read(LEDGER.name, filter=pc.field("status") == "done")
    assert ledger["path"].to_pylist() == ["interactions/a.jsonl"]
    assert ledger["quarantined"].to_pylist() == [1]


def test_a_landing_zone_whose_root_is_a_link_is_read(tmp_path, lake):
    from flywheel_assets.contract.landing import LandingZone

    real = tmp_path / "real-landing"
    write_lines(real, "interactions/a.jsonl", [interaction("r1")])
    (tmp_path / "linked-landing").symlink_to(real)
    report = ingest_landing(LandingZone(str(tmp_path / "linked-landing")), lake)
    assert [f.valid for f in report.files] == [1]
    assert not report.refused


def test_a_link_swapped_in_after_listing_is_not_read(zone, lake, landing_dir, tmp_path):
    secret = tmp_path / "outside.jsonl"
    secret.write_bytes(json.dumps(interaction("secret")).encode() + b"\n")
    path = write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    (landing_dir / "interactions/b.jsonl").write_bytes(path.read_bytes())

    def erased(row: dict) -> bool:  # runs while the batch reads a.jsonl, after listing
        target = landing_dir / "interactions/b.jsonl"
        if not target.is_symlink():
            target.unlink()
            target.symlink_to(secret)
        return False

    report = ingest_landing(zone, lake, erased=erased)

    assert ids(lake) == ["r1"]
    b = next(f for f in report.files if f.path == "interactions/b.jsonl")
    assert dict(b.reasons) == {"unreadable_file": 1} and b.balanced


def test_a_read_failing_in_an_unforeseen_way_quarantines_the_rest_of_that_file_only(
    zone, lake, landing_dir, monkeypatch
):
    from flywheel_assets.contract.landing import LandingZone

    lines = [interaction(f"a{i}") for i in range(3)]
    write_lines(landing_dir, "interactions/a.jsonl", lines)
    write_lines(landing_dir, "interactions/b.jsonl", [interaction("b1")])
    first = b"".join(json.dumps(r).encode() + b"\n" for r in lines[:2])
    blocks = LandingZone._blocks

    def failing_blocks(self, path):
        if path != "interactions/a.jsonl":
            yield from blocks(self, path)
            return
        yield first
        raise ValueError("decoder state lost")  # not an OSError: nothing names it

    monkeypatch.setattr(LandingZone, "_blocks", failing_blocks)
    report = ingest_landing(zone, lake)

    a = next(f for f in report.files if f.path == "interactions/a.jsonl")
    assert (a.lines_read, a.valid, a.quarantined) == (3, 2, 1) and a.balanced
    assert ids(lake) == ["a0", "a1", "b1"]
    (q,) = lake.read("quarantine").to_pylist()
    assert (q["line_number"], q["reason_code"]) == (3, "unreadable_file")
    assert "ValueError: decoder state lost" in q["reason"]
