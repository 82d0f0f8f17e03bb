"""Right to erasure and retention on real tables: nothing of the user survives anywhere."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from flywheel_assets.catalog.governance import TOMBSTONES
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.governance.hashing import keyed_hash
from flywheel_assets.governance.tombstones import Tombstones
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.lake.tables import Lake
from flywheel_assets.privacy.erasure import erase_user
from flywheel_assets.privacy.retention import LandingAction, expire_raw
from flywheel_assets.privacy.sampling import SamplingPolicy
from flywheel_tests.support.erasure import TABLES, USER, landing_with_user, user_rows
from flywheel_tests.support.privacy import DETECTOR, KEY, build
from flywheel_tests.support.records import feedback, interaction, write_lines


@pytest.fixture
def erased_lake(tmp_path) -> tuple[Lake, Path]:
    landing = tmp_path / "landing"
    landing_with_user(landing)
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    build(lake)
    # Several versions of every table, so there is history to leak from.
    write_lines(landing, "feedback/b.jsonl", [feedback("f5", "e2", kind="copy")])
    ingest_landing(LandingZone(str(landing)), lake)
    build(lake)
    report = erase_user(lake, USER, KEY, TABLES, reason="ticket 7")
    return lake, landing, report


def test_erasure_reports_what_it_touched(erased_lake):
    lake, _, report = erased_lake
    assert report.request_ids == ["e1", "e2"]
    assert report.tables["raw_logs"]["rows_deleted"] == 2
    assert report.tables["raw_feedback"]["rows_deleted"] == 3  # f1, f5 on e1/e2; f2 by the user
    assert report.tables["quarantine"]["rows_deleted"] == 1
    assert report.tables["annotations"]["rows_deleted"] == 1
    assert all(t["version_after"] > t["version_before"] for t in report.tables.values())


def test_other_users_rows_are_untouched(erased_lake):
    lake, _, _ = erased_lake
    assert sorted(lake.read("raw_logs")["request_id"].to_pylist()) == ["o1", "o2"]
    assert sorted(lake.read("raw_feedback")["feedback_id"].to_pylist()) == ["f3", "f4"]
    assert sorted(lake.read("redacted_feedback")["feedback_id"].to_pylist()) == ["f3", "f4"]


@pytest.mark.parametrize("table", TABLES)
def test_no_loadable_version_of_any_table_holds_the_user(erased_lake, table):
    lake, _, _ = erased_lake
    dt = lake.open(table)
    loadable = 0
    for version in range(dt.version() + 1):
        try:
            data = DeltaTable(lake.uri(table), version=version).to_pyarrow_table()
        except Exception:  # its files were vacuumed: the version cannot be read any more
            continue
        loadable += 1
        assert user_rows(data) == 0, f"{table} version {version} still holds the user"
    assert loadable >= 1


def test_no_file_anywhere_in_the_lake_holds_the_user(erased_lake):
    lake, _, _ = erased_lake
    root = Path(lake.root)
    # The tombstone holds the keyed hash by design; every other file must hold nothing of the user.
    parquet = [p for p in root.rglob("*.parquet") if TOMBSTONES.name not in p.parts]
    assert parquet
    for path in parquet:
        assert user_rows(pq.read_table(path)) == 0, path
    for path in root.rglob("*.json"):  # the Delta log: predicates, statistics, commit info
        assert USER.encode() not in path.read_bytes(), path
        assert b"erin@example.com" not in path.read_bytes(), path


def test_a_tombstone_holds_the_hash_never_the_raw_id(erased_lake):
    lake, _, _ = erased_lake
    rows = lake.read(TOMBSTONES.name).to_pylist()
    assert len(rows) == 1
    assert rows[0]["user_hash"] == keyed_hash(USER, KEY, "user")
    assert rows[0]["reason"] == "ticket 7"
    assert USER not in str(rows)


def test_replaying_old_landing_files_does_not_bring_the_user_back(erased_lake, tmp_path):
    lake, landing, _ = erased_lake
    # The same landing files under new names (a re-sent backfill): ingestion reads them again.
    shutil.copytree(landing / "interactions", landing / "interactions" / "replay")
    shutil.copytree(landing / "feedback", landing / "feedback" / "replay")
    tombstones = Tombstones.load(lake)

    report = ingest_landing(LandingZone(str(landing)), lake, erased=tombstones.matcher(KEY))
    build(lake)

    assert report.totals()["erased"] == 6  # e1, e2, the broken e3 line, and f1, f2, f5
    assert all(f.balanced for f in report.files)
    for table in TABLES:
        assert user_rows(lake.read(table)) == 0, table


def test_erasing_an_unknown_user_changes_no_table(tmp_path):
    landing = tmp_path / "landing"
    landing_with_user(landing)
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    versions = {t: lake.stats(t).version for t in ["raw_logs", "raw_feedback"]}
    report = erase_user(lake, "nobody@example.com", KEY, TABLES)
    assert report.tables == {}
    assert {t: lake.stats(t).version for t in versions} == versions


def test_a_blank_user_id_is_refused(tmp_path):
    with pytest.raises(ValueError, match="non-empty"):
        erase_user(Lake(str(tmp_path)), "  ", KEY, TABLES)


def test_retention_deletes_old_raw_rows_and_keeps_redacted_ones(tmp_path):
    landing = tmp_path / "landing"
    now = datetime.now(UTC)
    old, new = (now - timedelta(days=40)).isoformat(), (now - timedelta(days=2)).isoformat()
    write_lines(
        landing,
        "interactions/a.jsonl",
        [interaction("old", ts=old), interaction("new", ts=new)],
    )
    write_lines(landing, "feedback/a.jsonl", [feedback("f1", "old", ts=old)])
    lake = Lake(str(tmp_path / "lake"))
    zone = LandingZone(str(landing))
    ingest_landing(zone, lake)
    build(lake, SamplingPolicy(healthy_share=1.0))
    versions_before = lake.stats("raw_logs").version

    report = expire_raw(
        lake, zone, cutoff=now - timedelta(days=30), landing_action=LandingAction.KEEP
    )

    assert report.rows_deleted["raw_logs"] == 1 and report.rows_deleted["raw_feedback"] == 1
    assert lake.read("raw_logs")["request_id"].to_pylist() == ["new"]
    assert sorted(lake.read("redacted_logs")["request_id"].to_pylist()) == ["new", "old"]
    for version in range(versions_before + 1):  # the expired text is gone from every version
        try:
            data = DeltaTable(lake.uri("raw_logs"), version=version).to_pyarrow_table()
        except Exception:
            continue
        assert "old" not in data["request_id"].to_pylist()


@pytest.mark.parametrize("action", [LandingAction.DELETE, LandingAction.ARCHIVE])
def test_retention_deletes_or_archives_expired_landing_files(tmp_path, action):
    landing = tmp_path / "landing"
    path = write_lines(landing, "interactions/a.jsonl", [interaction("r1")])
    lake = Lake(str(tmp_path / "lake"))
    zone = LandingZone(str(landing))
    ingest_landing(zone, lake)

    kept = expire_raw(
        lake, zone, cutoff=datetime.now(UTC) - timedelta(days=1), landing_action=action
    )
    assert kept.landing_files == [] and path.exists()  # ingested just now: inside the window

    report = expire_raw(
        lake, zone, cutoff=datetime.now(UTC) + timedelta(seconds=1), landing_action=action
    )
    assert report.landing_files == ["interactions/a.jsonl"]
    assert not path.exists()
    archived = landing / "_archive" / "interactions" / "a.jsonl"
    assert archived.exists() == (action == LandingAction.ARCHIVE)
    assert ingest_landing(zone, lake).files == []  # archived files are never read again
    assert os.listdir(landing / "interactions") == []


def test_redaction_skips_rows_of_erased_users_still_in_raw(tmp_path):
    """If raw rows of an erased user reappear (e.g. a restored backup), redaction drops them."""
    landing = tmp_path / "landing"
    landing_with_user(landing)
    lake = Lake(str(tmp_path / "lake"))
    erase_user(lake, USER, KEY, TABLES)  # tombstone first, raw rows arrive after
    ingest_landing(LandingZone(str(landing)), lake)  # no matcher: as a restored backup would
    reports = build(lake, SamplingPolicy(healthy_share=1.0))
    assert sorted(lake.read("redacted_logs")["request_id"].to_pylist()) == ["o1", "o2"]
    assert "f2" not in lake.read("redacted_feedback")["feedback_id"].to_pylist()
    assert reports["logs"].erased_skipped == 2 and reports["feedback"].erased_skipped == 1


def test_erasure_reaches_curated_rows_that_only_mention_the_user(tmp_path):
    from flywheel_assets.curation.datasets import CurationPolicy
    from flywheel_assets.curation.pipeline import FeedbackCap, build_curated_sets, build_tagged_rows
    from flywheel_assets.curation.signals import SignalWeights

    landing = tmp_path / "landing"
    write_lines(
        landing,
        "interactions/a.jsonl",
        [
            interaction("mine", user_id=USER, prompt="Shipping?", response="A month, maybe."),
            interaction("theirs", user_id="other", prompt="Shipping?", response="Two days."),
        ],
    )
    # Another user preferred their answer over the erased user's; the erased user liked "theirs".
    write_lines(
        landing,
        "feedback/a.jsonl",
        [
            feedback("c1", "theirs", "comparison", other_request_id="mine", user_id="other"),
            feedback("c2", "theirs", "thumbs_up", user_id=USER),
        ],
    )
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    build(lake, SamplingPolicy(healthy_share=1.0))
    policy = CurationPolicy(holdout_share=0.0)
    build_tagged_rows(lake, DETECTOR, SignalWeights(), FeedbackCap(), policy)
    build_curated_sets(lake, DETECTOR, KEY, policy)
    assert [p["rejected"] for p in lake.read("dpo_set").to_pylist()] == ["A month, maybe."]

    report = erase_user(lake, USER, KEY, [*TABLES, "tagged_rows", "dpo_set", "sft_set"])

    assert lake.read("dpo_set").num_rows == 0
    assert report.tables["dpo_set"]["rows_deleted"] == 1
    user_hash = keyed_hash(USER, KEY, "user")
    for row in lake.read("tagged_rows").to_pylist():
        assert user_hash not in row["feedback_user_hashes"] and row["request_id"] != "mine"
