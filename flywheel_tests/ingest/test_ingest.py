"""Ingestion into real Delta tables: exactly once, every line accounted for, nothing lost."""

from __future__ import annotations

import gzip
import os
import threading

import pyarrow.compute as pc
import pytest
from deltalake import write_deltalake

from flywheel_assets.catalog.raw import LEDGER
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.contract.records import INTERACTIONS, Reason
from flywheel_assets.ingest.pipeline import IngestSettings, ingest_landing, new_landing_files
from flywheel_tests.support.records import feedback, interaction, write_lines

BAD_LINES = [
    interaction("ok-1"),
    b"\xff\xfe not utf-8",
    b"",
    b'{"request_id": "cut-off", ',
    b"[1, 2, 3]",
    {k: v for k, v in interaction("no-resp").items() if k != "response"},
    interaction("typed", latency_ms="fast"),
    interaction("no-tz", ts="2026-11-20T10:00:00"),
    interaction("bad-role", messages=[{"role": "robot", "content": "x"}]),
    interaction("ok-1"),  # a client retry
    interaction("ok-2"),
]


def ids(lake, table="raw_logs", column="request_id") -> list[str]:
    return sorted(lake.read(table, columns=[column])[column].to_pylist())


def test_every_kind_of_bad_line_is_quarantined_and_every_line_counted(zone, lake, landing_dir):
    write_lines(landing_dir, "interactions/a.jsonl", BAD_LINES)
    write_lines(
        landing_dir,
        "feedback/b.jsonl",
        [feedback("f1", "ok-1"), feedback("f2", "ok-1", kind="love"), feedback("f1", "ok-1")],
    )

    report = ingest_landing(zone, lake)

    by_path = {f.path: f for f in report.files}
    a = by_path["interactions/a.jsonl"]
    assert (a.lines_read, a.valid, a.quarantined, a.duplicates) == (11, 2, 8, 1)
    b = by_path["feedback/b.jsonl"]
    assert (b.lines_read, b.valid, b.quarantined, b.duplicates) == (3, 1, 1, 1)
    assert all(f.balanced for f in report.files)
    assert ids(lake) == ["ok-1", "ok-2"]

    q = lake.read("quarantine").sort_by([("stream", "ascending"), ("line_number", "ascending")])
    rows = [r for r in q.to_pylist() if r["stream"] == "interactions"]
    assert [(r["line_number"], r["reason_code"]) for r in rows] == [
        (2, Reason.NOT_UTF8),
        (3, Reason.EMPTY_LINE),
        (4, Reason.NOT_JSON),
        (5, Reason.NOT_OBJECT),
        (6, Reason.MISSING_FIELD),
        (7, Reason.WRONG_TYPE),
        (8, Reason.BAD_TS),
        (9, Reason.BAD_VALUE),
    ]
    assert rows[0]["raw_bytes"] == b"\xff\xfe not utf-8"  # the exact bytes survive
    assert all(r["source_file"] == "interactions/a.jsonl" and r["reason"] for r in rows)
    fb = [r for r in q.to_pylist() if r["stream"] == "feedback"]
    assert [(r["line_number"], r["reason_code"]) for r in fb] == [(2, Reason.UNKNOWN_KIND)]


def test_replay_adds_nothing_and_commits_nothing(zone, lake, landing_dir):
    write_lines(landing_dir, "interactions/a.jsonl", BAD_LINES)
    ingest_landing(zone, lake)
    versions = {t: lake.stats(t).version for t in ["raw_logs", "quarantine", LEDGER.name]}

    again = ingest_landing(zone, lake)

    assert not again.committed and again.files == []
    assert {t: lake.stats(t).version for t in versions} == versions
    assert ids(lake) == ["ok-1", "ok-2"]


def test_retries_across_files_and_runs_are_stored_once(zone, lake, landing_dir):
    write_lines(landing_dir, "interactions/1.jsonl", [interaction("r1"), interaction("r2")])
    ingest_landing(zone, lake)
    write_lines(landing_dir, "interactions/2.jsonl", [interaction("r2"), interaction("r3")])
    write_lines(landing_dir, "interactions/3.jsonl.gz", [interaction("r3"), interaction("r4")])

    report = ingest_landing(zone, lake)

    assert ids(lake) == ["r1", "r2", "r3", "r4"]
    assert report.totals() == {
        "files": 2,
        "lines_read": 4,
        "valid": 2,
        "quarantined": 0,
        "duplicates": 2,
        "erased": 0,
    }


def test_each_row_records_its_landing_line(zone, lake, landing_dir):
    write_lines(landing_dir, "interactions/day/1.jsonl.gz", [interaction("r1"), interaction("r2")])
    ingest_landing(zone, lake)
    rows = lake.read("raw_logs").sort_by("request_id").to_pylist()
    assert [(r["_source_file"], r["_source_line"]) for r in rows] == [
        ("interactions/day/1.jsonl.gz", 1),
        ("interactions/day/1.jsonl.gz", 2),
    ]
    assert rows[0]["_ingest_batch"] == 1


def test_crlf_and_missing_final_newline(zone, lake, landing_dir):
    path = landing_dir / "interactions" / "a.jsonl"
    path.parent.mkdir(parents=True)
    import json

    path.write_bytes(
        json.dumps(interaction("r1")).encode() + b"\r\n" + json.dumps(interaction("r2")).encode()
    )
    report = ingest_landing(zone, lake)
    assert ids(lake) == ["r1", "r2"]
    assert report.files[0].lines_read == 2


def test_truncated_gzip_keeps_good_lines_and_quarantines_the_rest(zone, lake, landing_dir):
    raw = b"".join(
        (line if isinstance(line, bytes) else __import__("json").dumps(line).encode()) + b"\n"
        for line in [interaction(f"r{i}", response="x" * 200) for i in range(200)]
    )
    data = gzip.compress(raw, mtime=0)
    path = landing_dir / "interactions" / "cut.jsonl.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(data[: len(data) - 40])  # lose the end of the stream and its trailer

    report = ingest_landing(zone, lake)

    f = report.files[0]
    assert f.balanced
    assert f.reasons[Reason.UNREADABLE_FILE] == 1
    assert f.valid > 0
    reasons = lake.read("quarantine")["reason_code"].to_pylist()
    assert Reason.UNREADABLE_FILE in reasons


def test_a_file_changed_after_ingestion_is_reported_not_reread(zone, lake, landing_dir):
    path = write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    ingest_landing(zone, lake)
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1"), interaction("r9")])
    os.utime(path, (1, 1))

    report = ingest_landing(zone, lake)

    assert [c.path for c in report.changed] == ["interactions/a.jsonl"]
    assert ids(lake) == ["r1"]
    assert not report.committed


def test_touching_a_file_without_changing_it_is_not_a_change(zone, lake, landing_dir):
    path = write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    ingest_landing(zone, lake)
    os.utime(path, (1, 1))
    assert ingest_landing(zone, lake).changed == []


def test_in_progress_and_foreign_files_are_skipped(zone, lake, landing_dir):
    write_lines(landing_dir, "interactions/.part-1.jsonl", [interaction("hidden")])
    write_lines(landing_dir, "interactions/_tmp/part.jsonl", [interaction("staging")])
    write_lines(landing_dir, "interactions/notes.txt", ["not a landing file"])
    write_lines(landing_dir, "interactions/real.jsonl", [interaction("r1")])
    ingest_landing(zone, lake)
    assert ids(lake) == ["r1"]


def test_tables_exist_for_streams_with_no_files(zone, lake, landing_dir):
    write_lines(
        landing_dir,
        "drift_events/d.jsonl",
        [
            {
                "event_id": "d1",
                "ts": "2026-11-20T10:00:00Z",
                "metric": "neg_rate",
                "value": 0.3,
                "threshold": 0.2,
            }
        ],
    )
    ingest_landing(zone, lake)
    assert lake.read("drift_events").num_rows == 1
    assert lake.open("annotations") is None  # the pipeline creates only what it writes


def test_small_chunks_and_batches_give_the_same_tables(tmp_path, landing_dir):
    lines = [interaction(f"r{i}") for i in range(50)] + [b"oops"] + [interaction("r3")]
    for n in range(4):
        write_lines(landing_dir, f"interactions/{n}.jsonl", lines[n * 13 : (n + 1) * 13])
    from flywheel_assets.lake.tables import Lake

    zone = LandingZone(str(landing_dir))
    big = Lake(str(tmp_path / "big"))
    small = Lake(str(tmp_path / "small"))
    ingest_landing(zone, big)
    report = ingest_landing(
        zone, small, settings=IngestSettings(chunk_lines=3, max_batch_bytes=1500)
    )

    assert len(report.batches) > 1
    assert ids(small) == ids(big)
    assert lake_counts(small) == lake_counts(big)


def lake_counts(lake) -> dict:
    ledger = lake.read(LEDGER.name)
    done = ledger.filter(pc.equal(ledger["status"], "done"))
    return {
        c: pc.sum(done[c]).as_py() for c in ["lines_read", "valid", "quarantined", "duplicates"]
    }


def test_new_landing_files_lists_only_unseen_files(zone, lake, landing_dir):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    assert [f.path for f in new_landing_files(zone, lake)] == ["interactions/a.jsonl"]
    ingest_landing(zone, lake)
    write_lines(landing_dir, "feedback/b.jsonl", [feedback("f1", "r1")])
    assert [f.path for f in new_landing_files(zone, lake)] == ["feedback/b.jsonl"]


def test_a_crash_after_the_plan_is_replayed_exactly(zone, lake, landing_dir):
    """A plan committed without its done rows is finished by the next run, with the same files."""
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1"), interaction("r2")])
    from flywheel_assets.ingest.pipeline import _commit_plan

    _commit_plan(lake, 1, new_landing_files(zone, lake), run_id="crashed")
    # A file that arrives after the crash goes to the next batch, not into the replayed one.
    write_lines(landing_dir, "interactions/b.jsonl", [interaction("r3")])

    report = ingest_landing(zone, lake)

    assert report.resumed == [1]
    assert report.batches == [1, 2]
    assert ids(lake) == ["r1", "r2", "r3"]
    batches = lake.read("raw_logs").sort_by("request_id")["_ingest_batch"].to_pylist()
    assert batches == [1, 1, 2]


def test_a_crash_after_the_rows_commit_does_not_duplicate_them(tmp_path, zone, landing_dir):
    """Rows already committed for a batch are recognised by its app transaction and not re-added."""
    import shutil

    from flywheel_assets.ingest.pipeline import _commit_plan
    from flywheel_assets.lake.tables import Lake

    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1"), interaction("r1"), b"x"])
    clean = Lake(str(tmp_path / "clean"))
    ingest_landing(zone, clean)
    # The lake as a crash leaves it right after the row commits: plan written, rows and quarantine
    # committed under batch 1, no done rows.
    crashed = Lake(str(tmp_path / "crashed"))
    _commit_plan(crashed, 1, new_landing_files(zone, crashed), run_id="crashed")
    for table in ["raw_logs", "quarantine"]:
        shutil.copytree(clean.uri(table), crashed.uri(table))

    report = ingest_landing(zone, crashed)

    assert report.resumed == [1]
    assert ids(crashed) == ["r1"]
    assert crashed.read("quarantine").num_rows == 1
    assert crashed.stats("raw_logs").version == clean.stats("raw_logs").version  # no new commit
    assert lake_counts(crashed) == lake_counts(clean)  # the replay counts lines the same way


def test_concurrent_ingestions_never_store_a_line_twice(tmp_path, landing_dir):
    from flywheel_assets.lake.tables import Lake

    for n in range(6):
        write_lines(
            landing_dir, f"interactions/{n}.jsonl", [interaction(f"r{n}-{i}") for i in range(300)]
        )
    lake = Lake(str(tmp_path / "lake"))
    errors: list[Exception] = []

    def worker():
        try:
            ingest_landing(LandingZone(str(landing_dir)), lake)
        except Exception as exc:  # one of the two may lose the race to plan a batch
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ingest_landing(LandingZone(str(landing_dir)), lake)  # finishes whatever the loser left

    assert len(errors) <= 1
    stored = ids(lake)
    assert len(stored) == len(set(stored)) == 1800


def test_unknown_extra_fields_survive_ingestion(zone, lake, landing_dir):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1", client="ios-3.2")])
    ingest_landing(zone, lake)
    assert lake.read("raw_logs")["extra"].to_pylist() == ['{"client": "ios-3.2"}']


def test_an_existing_duplicate_is_caught_by_the_bronze_check_logic(zone, lake, landing_dir):
    from flywheel_assets.ingest.quality import duplicate_ids

    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1"), interaction("r2")])
    ingest_landing(zone, lake)
    assert duplicate_ids(lake.read("raw_logs")["request_id"]) == (0, [])
    write_deltalake(lake.uri("raw_logs"), lake.read("raw_logs").slice(0, 1), mode="append")
    assert duplicate_ids(lake.read("raw_logs")["request_id"]) == (1, ["r1"])


@pytest.mark.parametrize("stream", [INTERACTIONS], ids=lambda s: s.name)
def test_missing_planned_file_is_recorded_not_fatal(zone, lake, landing_dir, stream):
    path = write_lines(landing_dir, f"{stream.name}/a.jsonl", [interaction("r1")])
    from flywheel_assets.ingest.pipeline import _commit_plan

    _commit_plan(lake, 1, new_landing_files(zone, lake), run_id="crashed")
    path.unlink()

    report = ingest_landing(zone, lake)

    assert [(f.path, f.status, f.lines_read) for f in report.files] == [
        ("interactions/a.jsonl", "missing", 0)
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_sample_landing_is_ingested_exactly_as_its_manifest_says(tmp_path, seed):
    from flywheel_assets.lake.tables import Lake
    from flywheel_assets.sample import write_sample_landing

    manifest = write_sample_landing(tmp_path / "landing", n_interactions=600, seed=seed)
    report = ingest_landing(LandingZone(str(tmp_path / "landing")), Lake(str(tmp_path / "lake")))

    for stream in manifest.files:
        assert report.totals(stream) == {
            "files": len(manifest.files[stream]),
            "lines_read": manifest.lines[stream],
            "valid": manifest.valid[stream],
            "quarantined": sum(manifest.malformed[stream].values()),
            "duplicates": manifest.duplicates[stream],
            "erased": 0,
        }
        assert report.reasons(stream) == manifest.malformed[stream]
