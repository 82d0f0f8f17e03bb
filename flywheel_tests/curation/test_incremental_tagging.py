"""Incremental tagging and curation: after rows are appended upstream, tagging only the
interactions they can change and merging them in, then deriving the curated sets again only for
the request ids that changed, gives exactly the tables a full rebuild gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from flywheel_assets.catalog.redacted import REDACTED_FEEDBACK, REDACTED_LOGS
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.curation.datasets import CurationPolicy
from flywheel_assets.curation.pipeline import build_curated_sets
from flywheel_assets.curation.signals import SignalWeights
from flywheel_assets.curation.tagging import FeedbackCap, build_tagged_rows
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.lake.maintenance import maintain
from flywheel_assets.lake.tables import Lake
from flywheel_assets.privacy.erasure import erase_user
from flywheel_assets.privacy.sampling import SamplingPolicy
from flywheel_assets.sample import write_sample_landing
from flywheel_tests.support.curation import Flywheel, assert_same_rows
from flywheel_tests.support.privacy import DETECTOR, KEY, build, redacted_sample
from flywheel_tests.support.records import drift_event, feedback, interaction

CAP = FeedbackCap(max_per_window=3, window_hours=24)
POLICY = CurationPolicy(holdout_share=0.0)
TIGHT = CurationPolicy(holdout_share=0.3, max_user_share=0.02, min_rows_per_user=2)


def tag(lake: Lake, cap: FeedbackCap = CAP, weights: SignalWeights | None = None):
    return build_tagged_rows(lake, DETECTOR, weights or SignalWeights(), cap, POLICY)


def rebuilt_from_scratch(lake: Lake, scratch: Path, cap: FeedbackCap = CAP) -> Lake:
    """A copy of the lake whose tagged_rows is a full build over the same sources."""
    shutil.copytree(lake.root, scratch)
    shutil.rmtree(scratch / "tagged_rows")
    fresh = Lake(str(scratch))
    assert tag(fresh, cap).retagged is None
    return fresh


CURATED = ("eval_cases", "review_queue", "sft_set", "dpo_set", "kto_set")


def assert_same_as_full_build(lake: Lake, scratch: Path, cap: FeedbackCap = CAP) -> Lake:
    """tagged_rows and, when the lake has them, the curated sets equal a full rebuild's."""
    fresh = rebuilt_from_scratch(lake, scratch, cap)
    assert_same_rows(lake, fresh, "tagged_rows")
    if lake.open("curation_state") is not None:
        # Bring the curated sets up to date (nothing to do when refresh did), by key.
        update = build_curated_sets(lake, DETECTOR, KEY, POLICY)
        assert update.rederived is not None or not update.checks
        assert lake.last_commit_metadata("curation_state")["flywheel.rederived"] != "all"
        for table in (*CURATED, "curation_state"):
            shutil.rmtree(scratch / table)
        assert build_curated_sets(fresh, DETECTOR, KEY, POLICY).rederived is None
        for table in CURATED:
            assert_same_rows(lake, fresh, table)
    return fresh


def refresh(fw: Flywheel, cap: FeedbackCap = CAP):
    """Ingest, redact, tag and curate what landed; the tagging report."""
    ingest_landing(LandingZone(str(fw.landing)), fw.lake)
    build(fw.lake, SamplingPolicy(healthy_share=1.0))
    report = tag(fw.lake, cap)
    fw.curation = build_curated_sets(fw.lake, DETECTOR, KEY, POLICY)
    return report


@pytest.mark.parametrize("policy", [POLICY, TIGHT], ids=["default", "holdout and tight caps"])
def test_a_sample_week_then_one_percent_more_matches_a_full_build(tmp_path, policy):
    lake = redacted_sample(tmp_path, 1500, seed=5)
    landing = tmp_path / "landing"
    assert tag(lake).retagged is None  # the first build is a full one
    assert build_curated_sets(lake, DETECTOR, KEY, policy).rederived is None
    # A second sample lands under new names: new interactions, feedback, annotations and drift.
    write_sample_landing(tmp_path / "more", n_interactions=150, seed=6, files_per_stream=1)
    for path in (tmp_path / "more").rglob("*.jsonl*"):
        (landing / path.parent.name).mkdir(exist_ok=True)
        shutil.move(path, landing / path.parent.name / f"more-{path.name}")
    ingest_landing(LandingZone(str(landing)), lake)
    build(lake)

    report = tag(lake)
    curation = build_curated_sets(lake, DETECTOR, KEY, policy)

    assert report.committed
    assert report.retagged is not None and 0 < report.retagged < report.rows
    assert lake.last_commit_metadata("tagged_rows")["flywheel.retagged"] == str(report.retagged)
    assert report.rows == lake.read("tagged_rows").num_rows
    # The curated sets derived again only request ids tagging wrote whose local rows may
    # differ (most re-tagged rows only gained a drift-window tag), and those they beat.
    assert curation.committed and curation.rederived is not None
    assert 0 < curation.rederived < report.retagged
    fresh = rebuilt_from_scratch(lake, tmp_path / "full")
    assert_same_rows(lake, fresh, "tagged_rows")
    for table in (*CURATED, "curation_state"):
        shutil.rmtree(tmp_path / "full" / table)
    whole = build_curated_sets(fresh, DETECTOR, KEY, policy)
    assert whole.rederived is None
    assert curation.stats == whole.stats
    assert curation.rolled_back == whole.rolled_back
    for table in CURATED:
        assert lake.read(table).num_rows > 0, table
        assert_same_rows(lake, fresh, table)


def test_a_late_comparison_tags_the_old_loser(tmp_path):
    fw = Flywheel(tmp_path / "w")
    fw.add([interaction("r1", prompt="same question"), interaction("r2", prompt="same question")])
    refresh(fw)
    fw.add(feedbacks=[feedback("f1", "r1", "comparison", other_request_id="r2")])
    report = refresh(fw)
    assert report.retagged == 2
    assert "compared" in fw.tagged("r2")["tags"]
    assert fw.tagged("r1")["preferred_over"] == ["r2"]
    assert_same_as_full_build(fw.lake, tmp_path / "full")


def test_new_feedback_makes_an_untouched_row_with_the_same_answer_a_conflict(tmp_path):
    fw = Flywheel(tmp_path / "w")
    same = {"prompt": "Where is my parcel?", "response": "It ships tomorrow."}
    fw.add(
        [interaction("r1", **same), interaction("r2", **same), interaction("r3")],
        [feedback("f1", "r1", "thumbs_up")],
    )
    refresh(fw)
    assert "conflict" not in fw.tagged("r1")["tags"]
    fw.add(feedbacks=[feedback("f2", "r2", "thumbs_down")])
    report = refresh(fw)
    assert report.retagged == 2  # r2 and its twin r1; r3 is left as it was
    assert "conflict" in fw.tagged("r1")["tags"]
    assert_same_as_full_build(fw.lake, tmp_path / "full")


def test_late_feedback_that_moves_a_users_cap_retags_their_earlier_rows(tmp_path):
    fw = Flywheel(tmp_path / "w")
    fw.add(
        [interaction(f"r{i}", prompt=f"distinct question {i}") for i in range(5)],
        [
            feedback(f"f{i}", f"r{i}", "thumbs_up", user_id="u1", ts=f"2026-11-20T10:0{i}:00Z")
            for i in range(1, 5)
        ],
    )
    refresh(fw)
    assert fw.tagged("r4")["over_cap"] and not fw.tagged("r3")["over_cap"]
    # Arrives late but happened first: now r3 is the fourth event of the window, not r4's turn.
    fw.add(feedbacks=[feedback("f0", "r0", "thumbs_up", user_id="u1", ts="2026-11-20T09:00:00Z")])
    report = refresh(fw)
    assert report.retagged == 5
    assert fw.tagged("r3")["over_cap"] and fw.tagged("r4")["over_cap"]
    assert report.over_cap_feedback == 2
    assert_same_as_full_build(fw.lake, tmp_path / "full")


def test_a_new_drift_event_tags_the_old_rows_in_its_window(tmp_path):
    fw = Flywheel(tmp_path / "w")
    fw.add(
        [
            interaction("r1", ts="2026-11-20T20:00:00Z"),
            interaction("r2", ts="2026-11-18T08:00:00Z"),
        ]
    )
    refresh(fw)
    fw.add(drift=[drift_event("d1", "2026-11-20T22:00:00Z", window_hours=6)])
    report = refresh(fw)
    assert report.retagged == 1
    assert "drift_window" in fw.tagged("r1")["tags"]
    assert "drift_window" not in fw.tagged("r2")["tags"]
    assert_same_as_full_build(fw.lake, tmp_path / "full")


def test_compaction_upstream_keeps_the_merge_exact(tmp_path):
    fw = Flywheel(tmp_path / "w")
    fw.add([interaction("r1")], [feedback("f1", "r1")])
    refresh(fw)
    fw.add([interaction("r2")], [feedback("f2", "r2", "thumbs_down")])
    ingest_landing(LandingZone(str(fw.landing)), fw.lake)
    build(fw.lake, SamplingPolicy(healthy_share=1.0))
    for table in (REDACTED_LOGS.name, REDACTED_FEEDBACK.name):
        maintain(fw.lake, table, window_days=30, vacuum=False)
    report = tag(fw.lake)
    # Compaction rewrote the old rows into new files, so they are tagged again: more work, same
    # rows.
    assert report.retagged == 2
    assert fw.tagged("r2")["label"] == "negative"
    assert_same_as_full_build(fw.lake, tmp_path / "full")


def test_an_erasure_upstream_means_a_full_rebuild(tmp_path):
    fw = Flywheel(tmp_path / "w")
    fw.add(
        [interaction("r1", user_id="u1"), interaction("r2", user_id="u2")],
        [feedback("f1", "r1", user_id="u1")],
    )
    refresh(fw)
    erase_user(fw.lake, "u1", KEY, [REDACTED_LOGS.name, REDACTED_FEEDBACK.name])
    report = tag(fw.lake)
    assert report.committed and report.retagged is None
    assert [r["request_id"] for r in fw.rows("tagged_rows")] == ["r2"]


def test_new_settings_mean_a_full_rebuild(tmp_path):
    fw = Flywheel(tmp_path / "w")
    fw.add([interaction("r1")], [feedback("f1", "r1", "copy")])
    refresh(fw)
    assert fw.tagged("r1")["label"] == "positive"
    fw.add([interaction("r2")])
    ingest_landing(LandingZone(str(fw.landing)), fw.lake)
    build(fw.lake, SamplingPolicy(healthy_share=1.0))
    report = tag(fw.lake, weights=SignalWeights(copy=0.25))
    assert report.retagged is None
    assert fw.tagged("r1")["label"] == "unknown"


def test_nothing_new_commits_nothing(tmp_path):
    fw = Flywheel(tmp_path / "w")
    fw.add([interaction("r1")], [feedback("f1", "r1")])
    refresh(fw)
    version = fw.lake.open("tagged_rows").version()
    assert not refresh(fw).committed
    assert fw.lake.open("tagged_rows").version() == version


@pytest.mark.parametrize("rows", [0, 3])
def test_appended_since_reads_only_new_files_and_refuses_after_a_delete(tmp_path, rows):
    from flywheel_assets.lake.changes import appended_since
    from flywheel_assets.lake.tables import TableSpec

    lake = Lake(str(tmp_path / "lake"))
    spec = TableSpec("t", pa.schema([("id", pa.string())]))
    lake.append(spec, pa.table({"id": ["a", "b"]}, schema=spec.schema))
    lake.append(spec, pa.table({"id": [f"n{i}" for i in range(rows)]}, schema=spec.schema))
    assert appended_since(lake, "t", 1)["id"].to_pylist() == [f"n{i}" for i in range(rows)]
    assert sorted(appended_since(lake, "t", -1)["id"].to_pylist())[:2] == ["a", "b"]
    assert appended_since(lake, "t", 2).num_rows == 0
    assert appended_since(lake, "t", 9) is None  # a version the table never had
    assert appended_since(lake, "missing", 0) is None
    assert appended_since(lake, "missing", -1).num_rows == 0
    lake.open("t").delete("id = 'a'")
    assert appended_since(lake, "t", 1) is None


def test_a_full_build_in_prompt_groups_equals_one_in_a_single_pass(tmp_path, monkeypatch):
    from flywheel_assets.curation import tagging

    lake = redacted_sample(tmp_path, 1500, seed=8)
    whole = tag(lake)
    shutil.copytree(lake.root, tmp_path / "grouped")
    grouped_lake = Lake(str(tmp_path / "grouped"))
    shutil.rmtree(tmp_path / "grouped" / "tagged_rows")
    monkeypatch.setattr(tagging, "PART_ROWS", 150)
    assert len(tagging._prompt_groups(grouped_lake, tagging.PART_ROWS)) > 5

    grouped = tag(grouped_lake)

    assert grouped.committed and grouped.retagged is None
    assert (grouped.rows, grouped.labels, grouped.over_cap_feedback) == (
        whole.rows,
        whole.labels,
        whole.over_cap_feedback,
    )
    assert [(c.check, c.passed) for c in grouped.checks] == [
        (c.check, c.passed) for c in whole.checks
    ]
    assert_same_rows(lake, grouped_lake, "tagged_rows")


def test_new_rows_that_change_no_interaction_record_the_build_and_rewrite_nothing(tmp_path):
    fw = Flywheel(tmp_path / "w")
    fw.add([interaction("r1")], [feedback("f1", "r1")])
    refresh(fw)
    before = fw.lake.read("tagged_rows")
    fw.add(feedbacks=[feedback("f2", "never-logged", "thumbs_down")])
    report = refresh(fw)
    assert report.committed and report.retagged == 0
    assert fw.lake.read("tagged_rows").equals(before)
    version = fw.lake.open("tagged_rows").version()
    assert not refresh(fw).committed  # the build was recorded: nothing to do next time
    assert fw.lake.open("tagged_rows").version() == version
