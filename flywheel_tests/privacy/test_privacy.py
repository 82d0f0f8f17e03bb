"""The privacy stage on real tables: redaction, keyed hashing, the sampling budget, exactly once."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flywheel_assets.catalog.redacted import REDACTED_ANNOTATIONS, REDACTED_FEEDBACK, REDACTED_LOGS
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.governance.hashing import DevelopmentKeyWarning, hash_column, load_key
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.lake.tables import Lake
from flywheel_assets.privacy.pipeline import (
    ingested_watermark,
    redact_feedback,
    redact_logs,
)
from flywheel_assets.privacy.redact import residual_pii
from flywheel_assets.privacy.sampling import SamplingPolicy
from flywheel_assets.sample import write_sample_landing
from flywheel_tests.support.privacy import DETECTOR, KEY, build, redacted_sample
from flywheel_tests.support.records import drift_event, feedback, interaction, write_lines


@pytest.fixture(scope="module")
def sample_lake(tmp_path_factory) -> Lake:
    return redacted_sample(tmp_path_factory.mktemp("sample"), 1500, seed=11)


@pytest.mark.parametrize("spec", [REDACTED_LOGS, REDACTED_FEEDBACK, REDACTED_ANNOTATIONS])
def test_no_detector_fires_on_any_redacted_string_column(sample_lake, spec):
    table = sample_lake.read(spec.name)
    assert table.num_rows > 0
    assert residual_pii(table, DETECTOR) == {}


def test_the_sample_really_had_pii_and_it_was_counted(sample_lake):
    raw = sample_lake.read("raw_logs")
    assert residual_pii(raw.select(["prompt", "response", "messages"]), DETECTOR)  # there was PII
    logs = sample_lake.read(REDACTED_LOGS.name)
    assert pc.sum(logs["pii_total"]).as_py() > 0
    kinds = {k for row in logs["pii_counts"].to_pylist() for k, _ in row}
    assert {"email", "card", "phone"} <= kinds
    texts = " ".join(logs["prompt"].to_pylist())
    assert "[EMAIL]" in texts and "[CARD]" in texts


def test_no_table_after_raw_holds_a_raw_user_id(sample_lake):
    raw_users = set(sample_lake.read("raw_logs")["user_id"].drop_null().to_pylist())
    raw_users |= set(sample_lake.read("raw_feedback")["user_id"].drop_null().to_pylist())
    assert any("@" in u for u in raw_users)
    for spec in (REDACTED_LOGS, REDACTED_FEEDBACK, REDACTED_ANNOTATIONS):
        table = sample_lake.read(spec.name)
        assert "user_id" not in table.column_names and "session_id" not in table.column_names
        for name in table.column_names:
            col = table[name]
            if pa.types.is_string(col.type):
                assert not raw_users & set(col.drop_null().to_pylist()), (spec.name, name)


def test_a_dictionary_attack_on_user_hashes_finds_nothing(sample_lake):
    users = set(sample_lake.read("raw_logs")["user_id"].drop_null().to_pylist())
    # An attacker hashes every candidate email (here: the true ones) the plain way.
    dictionary = {hashlib.sha256(u.encode()).hexdigest() for u in users}
    dictionary |= {hashlib.sha256(u.lower().strip().encode()).hexdigest() for u in users}
    stored = set(sample_lake.read(REDACTED_LOGS.name)["user_hash"].drop_null().to_pylist())
    stored |= set(sample_lake.read(REDACTED_FEEDBACK.name)["user_hash"].drop_null().to_pylist())
    assert stored and not stored & dictionary


def test_user_hash_is_keyed_and_stable():
    ids = pa.array(["alice@example.com", None, "alice@example.com", "bob"])
    once = hash_column(ids, KEY, "user").to_pylist()
    assert once[0] == once[2] != once[3] and once[1] is None
    assert hash_column(ids, KEY, "user").to_pylist() == once
    assert hash_column(ids, b"another-key-0123456789", "user").to_pylist()[0] != once[0]
    assert hash_column(ids, KEY, "session").to_pylist()[0] != once[0]


def test_missing_key_falls_back_loudly_and_short_keys_are_refused(monkeypatch):
    from flywheel_assets.governance import hashing

    monkeypatch.delenv("FLYWHEEL_TEST_KEY", raising=False)
    monkeypatch.setattr(hashing, "_warned", set())
    with pytest.warns(DevelopmentKeyWarning, match="PUBLIC development key"):
        assert load_key("FLYWHEEL_TEST_KEY") == hashing.DEVELOPMENT_KEY.encode()
    monkeypatch.setenv("FLYWHEEL_TEST_KEY", "short")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        load_key("FLYWHEEL_TEST_KEY")
    monkeypatch.setenv("FLYWHEEL_TEST_KEY", "a-real-secret-of-enough-length")
    assert load_key("FLYWHEEL_TEST_KEY") == b"a-real-secret-of-enough-length"


def test_sampling_keeps_every_signal_and_counts_add_up(sample_lake):
    raw = sample_lake.read("raw_logs")
    kept = sample_lake.read(REDACTED_LOGS.name)
    reasons = pc.value_counts(kept["keep_reason"]).to_pylist()
    assert sum(r["counts"] for r in reasons) == kept.num_rows
    with_feedback = set(sample_lake.read("raw_feedback")["request_id"].to_pylist())
    raw_ids = set(raw["request_id"].to_pylist())
    kept_ids = set(kept["request_id"].to_pylist())
    assert (with_feedback & raw_ids) <= kept_ids
    annotated = set(sample_lake.read("annotations")["request_id"].to_pylist()) & raw_ids
    assert annotated <= kept_ids
    low = raw.filter(pc.less(raw["response_logprob"], -3.0))["request_id"].to_pylist()
    assert low and set(low) <= kept_ids
    assert len(kept_ids) == kept.num_rows  # each interaction once


def test_the_healthy_share_is_close_to_the_budget(tmp_path):
    landing = tmp_path / "landing"
    write_lines(landing, "interactions/a.jsonl", [interaction(f"r{i}") for i in range(4000)])
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    report = redact_logs(lake, DETECTOR, KEY, SamplingPolicy(healthy_share=0.1))
    assert report.kept["sampled"] + report.kept["unsampled"] == 4000
    assert 0.08 < report.kept["sampled"] / 4000 < 0.12


def test_sampling_is_deterministic_across_runs_and_lakes(tmp_path):
    landing = tmp_path / "landing"
    write_sample_landing(landing, n_interactions=800, seed=5)
    kept = []
    for name in ("a", "b"):
        lake = Lake(str(tmp_path / name))
        ingest_landing(LandingZone(str(landing)), lake)
        build(lake)
        kept.append(sorted(lake.read(REDACTED_LOGS.name)["request_id"].to_pylist()))
    assert kept[0] == kept[1]


def test_a_late_signal_brings_back_an_interaction_dropped_earlier(tmp_path):
    landing = tmp_path / "landing"
    write_lines(landing, "interactions/a.jsonl", [interaction(f"r{i}") for i in range(50)])
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    build(lake, SamplingPolicy(healthy_share=0.0))
    assert lake.read(REDACTED_LOGS.name).num_rows == 0

    write_lines(landing, "feedback/b.jsonl", [feedback("f1", "r7", kind="thumbs_down")])
    write_lines(
        landing,
        "annotations/c.jsonl",
        [
            {
                "annotation_id": "a1",
                "request_id": "r9",
                "ts": "2026-11-21T00:00:00Z",
                "operator": "o",
            }
        ],
    )
    ingest_landing(LandingZone(str(landing)), lake)
    reports = build(lake, SamplingPolicy(healthy_share=0.0))

    rows = lake.read(REDACTED_LOGS.name).sort_by("request_id").to_pylist()
    assert [(r["request_id"], r["keep_reason"]) for r in rows] == [
        ("r7", "feedback"),
        ("r9", "annotation"),
    ]
    assert reports["logs"].late_kept == 2
    build(lake, SamplingPolicy(healthy_share=0.0))  # and never twice
    assert lake.read(REDACTED_LOGS.name).num_rows == 2


def test_a_drift_event_keeps_the_window_before_it(tmp_path):
    landing = tmp_path / "landing"
    hours = [1, 5, 11, 13, 30]
    write_lines(
        landing,
        "interactions/a.jsonl",
        [interaction(f"h{h}", ts=f"2026-11-20T{24 - h - 1:02d}:00:00Z") for h in hours if h < 24]
        + [interaction("old", ts="2026-11-18T00:00:00Z")],
    )
    write_lines(
        landing,
        "drift_events/d.jsonl",
        [drift_event("d1", "2026-11-20T23:00:00Z")],
    )
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    build(lake, SamplingPolicy(healthy_share=0.0))
    kept = lake.read(REDACTED_LOGS.name)
    assert sorted(kept["request_id"].to_pylist()) == ["h1", "h11", "h5"]  # default 12 h window
    assert set(kept["keep_reason"].to_pylist()) == {"drift_window"}


def test_redaction_is_incremental_and_exactly_once(tmp_path):
    landing = tmp_path / "landing"
    write_lines(landing, "feedback/a.jsonl", [feedback(f"f{i}", f"r{i}") for i in range(5)])
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    first = redact_feedback(lake, DETECTOR, KEY)
    again = redact_feedback(lake, DETECTOR, KEY)
    assert (first.rows_written, again.rows_written, again.committed) == (5, 0, False)
    version = lake.stats(REDACTED_FEEDBACK.name).version

    write_lines(landing, "feedback/b.jsonl", [feedback("f9", "r9", comment="mail a@b.co")])
    ingest_landing(LandingZone(str(landing)), lake)
    third = redact_feedback(lake, DETECTOR, KEY)

    assert third.rows_written == 1 and third.watermark == ingested_watermark(lake) == 2
    assert lake.stats(REDACTED_FEEDBACK.name).version == version + 1
    comments = lake.read(REDACTED_FEEDBACK.name)["comment"].to_pylist()
    assert "mail [EMAIL]" in comments


def test_an_open_ingest_batch_holds_back_the_watermark(tmp_path):
    from flywheel_assets.ingest.pipeline import _commit_plan, new_landing_files

    landing = tmp_path / "landing"
    write_lines(landing, "feedback/a.jsonl", [feedback("f1", "r1")])
    lake = Lake(str(tmp_path / "lake"))
    zone = LandingZone(str(landing))
    ingest_landing(zone, lake)
    write_lines(landing, "feedback/b.jsonl", [feedback("f2", "r2")])
    _commit_plan(lake, 2, new_landing_files(zone, lake), run_id="crashed")
    assert ingested_watermark(lake) == 1


def test_metadata_and_extra_json_stay_valid_after_redaction(tmp_path):
    landing = tmp_path / "landing"
    write_lines(
        landing,
        "interactions/a.jsonl",
        [interaction("r1", metadata={"email": "x@example.com", "n": 1}, client="ip 10.1.2.3")],
    )
    write_lines(landing, "feedback/a.jsonl", [feedback("f1", "r1")])
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    build(lake)
    row = lake.read(REDACTED_LOGS.name).to_pylist()[0]
    assert json.loads(row["metadata"]) == {"email": "[EMAIL]", "n": 1}
    assert json.loads(row["extra"]) == {"client": "ip [IP]"}


def test_chat_messages_are_redacted_turn_by_turn(tmp_path):
    landing = tmp_path / "landing"
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "My card is 4111 1111 1111 1111"},
        {"role": "assistant", "content": "Thanks."},
        {"role": "user", "content": "and my email is jo@example.org"},
    ]
    rec = interaction("r1", messages=messages)
    del rec["prompt"]
    write_lines(landing, "interactions/a.jsonl", [rec])
    write_lines(landing, "feedback/a.jsonl", [feedback("f1", "r1")])
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    build(lake)
    row = lake.read(REDACTED_LOGS.name).to_pylist()[0]
    assert [m["content"] for m in row["messages"]] == [
        "You are helpful.",
        "My card is [CARD]",
        "Thanks.",
        "and my email is [EMAIL]",
    ]
    assert row["prompt"] == "and my email is [EMAIL]"
    assert dict(row["pii_counts"]) == {"card": 1, "email": 2}


def test_redacting_in_small_pieces_writes_what_one_piece_writes(tmp_path, monkeypatch):
    from flywheel_assets.privacy import pipeline

    landing = tmp_path / "landing"
    write_sample_landing(landing, n_interactions=1500, seed=12)
    lakes = {}
    reports = {}
    for name, piece_rows in (("whole", 1_000_000), ("pieces", 97)):
        monkeypatch.setattr(pipeline, "PIECE_ROWS", piece_rows)
        lakes[name] = Lake(str(tmp_path / name))
        ingest_landing(LandingZone(str(landing)), lakes[name])
        reports[name] = build(lakes[name])
    for stream, report in reports["pieces"].items():
        whole = reports["whole"][stream]
        assert report.rows_written == whole.rows_written > 0
        assert (report.kept, report.pii_found) == (whole.kept, whole.pii_found)
        table = report.table
        key = table.replace("redacted_", "").rstrip("s") + "_id"
        key = {"redacted_logs": "request_id"}.get(table, key)
        mine, theirs = (
            lakes[n].read(table).drop_columns(["_redacted_at"]).sort_by(key)
            for n in ("pieces", "whole")
        )
        assert mine.equals(theirs), table
    assert lakes["pieces"].open("redacted_logs").version() == 1  # one commit for all the pieces
