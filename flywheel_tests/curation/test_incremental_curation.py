"""Curated sets by key: when an incremental build is exact it derives only the request ids that
changed and commits one merge per set; everything else (a rollback, an erasure, new settings, a
build that stopped half-way) means a whole build. Either way, the sets equal a whole build's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel_assets import catalog
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.curation import incremental
from flywheel_assets.curation.datasets import CurationPolicy
from flywheel_assets.curation.pipeline import FeedbackCap, build_curated_sets, build_tagged_rows
from flywheel_assets.curation.signals import SignalWeights
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.lake.tables import REWRITE_KEY, ROWS_ADDED_KEY, Lake
from flywheel_assets.privacy.erasure import erase_user
from flywheel_assets.privacy.sampling import SamplingPolicy
from flywheel_assets.versioning.rollback import rollback_table
from flywheel_tests.support.curation import Flywheel, assert_same_rows
from flywheel_tests.support.privacy import DETECTOR, KEY, build
from flywheel_tests.support.records import drift_event, feedback, interaction

POLICY = CurationPolicy(holdout_share=0.0)
CURATED = ("eval_cases", "review_queue", "sft_set", "dpo_set", "kto_set")


WORDS = [
    "billing",
    "parcel",
    "refund",
    "invoice",
    "password",
    "account",
    "delivery",
    "coupon",
    "warranty",
    "upgrade",
]


def prompt(i: int) -> str:
    """A prompt no other `i` below 1,000 comes near (near-duplicates collapse)."""
    return " ".join(WORDS[(i // 10**k) % 10] for k in range(3)) + f" and my {WORDS[i % 7]} too"


def week(fw: Flywheel, start: int, n: int = 12) -> Flywheel:
    """`n` interactions with every kind of feedback the sets take."""
    kinds = ["thumbs_up", "thumbs_down", "edit", "copy"]
    rows, events = [], []
    for i in range(start, start + n):
        rows.append(interaction(f"r{i:03d}", prompt=prompt(i)))
        kind = kinds[i % len(kinds)]
        extra = {"correction": f"a better answer to question {i}"} if kind == "edit" else {}
        events.append(feedback(f"f{i:03d}", f"r{i:03d}", kind, **extra))
    return fw.add(rows, events)


NEW = {f"r{i:03d}" for i in range(100, 104)}


def _source(row: dict) -> str:
    return row.get("source_request_id") or row.get("request_id") or row["source_request_ids"][0]


def curate(fw: Flywheel, policy: CurationPolicy = POLICY):
    return build_curated_sets(fw.lake, DETECTOR, KEY, policy)


def assert_equals_a_whole_build(lake: Lake, scratch: Path, policy: CurationPolicy = POLICY):
    shutil.copytree(lake.root, scratch)
    for table in (*CURATED, "curation_state"):
        shutil.rmtree(scratch / table)
    fresh = Lake(str(scratch))
    assert build_curated_sets(fresh, DETECTOR, KEY, policy).rederived is None
    for table in CURATED:
        assert_same_rows(lake, fresh, table)


@pytest.fixture
def fw(tmp_path) -> Flywheel:
    flywheel = week(Flywheel(tmp_path / "w", POLICY), 0).run()
    assert flywheel.curation.rederived is None  # the first build is a whole one
    return flywheel


def test_files_an_increment_writes_keep_plain_strings_and_load_in_pandas(fw):
    """Delta's merge writes string_view, which pandas cannot load; the lake's keyed replace
    keeps every table's own types in every file it writes."""
    week(fw, 100, n=4).run()
    for table in ("tagged_rows", *CURATED):
        dt = fw.lake.open(table)
        assert dt.history(1)[0][REWRITE_KEY] == "replace", table
        for uri in dt.file_uris():
            schema = pq.read_schema(uri)
            assert not any(pa.types.is_string_view(f.type) for f in schema), (table, uri)
            pd.read_parquet(uri)  # raises on string_view inside lists


def test_new_rows_are_derived_by_key_and_merged(fw, tmp_path):
    versions = {t: fw.lake.open(t).version() for t in CURATED}
    week(fw, 100, n=4).run()
    report = fw.curation
    assert report.committed and report.rederived == 4
    # One keyed replace per set, writing only the new rows and rewriting no other file.
    for table in CURATED:
        assert fw.lake.open(table).version() == versions[table] + 1, table
        commit = fw.lake.open(table).history(1)[0]
        assert commit[REWRITE_KEY] == "replace", table
        assert int(commit[ROWS_ADDED_KEY]) == report.rows[table]
        # Exactly the rows the four new interactions gave: nothing else was rewritten.
        new = [r for r in fw.rows(table) if _source(r) in NEW]
        assert 0 < len(new) == report.rows[table], table
    assert_equals_a_whole_build(fw.lake, tmp_path / "whole")


def test_nothing_new_commits_nothing(fw):
    versions = {t: fw.lake.open(t).version() for t in (*CURATED, "curation_state")}
    assert not curate(fw).committed
    assert {t: fw.lake.open(t).version() for t in versions} == versions


def test_a_better_answer_replaces_the_published_one(fw, tmp_path):
    # A second positive answer to r000's prompt, more confident (a thumbs up and a copy).
    question = prompt(0)
    fw.add(
        [interaction("r900", prompt=question, response="the best answer of all")],
        [feedback("f900", "r900", "thumbs_up"), feedback("f901", "r900", "copy")],
    ).run()
    assert fw.curation.rederived is not None
    golden = [r for r in fw.rows("eval_cases") if r["normalized_prompt"] == question]
    assert [r["source_request_id"] for r in golden] == ["r900"]
    assert_equals_a_whole_build(fw.lake, tmp_path / "whole")


def test_new_settings_mean_a_whole_build(fw, tmp_path):
    week(fw, 100, n=2)
    fw.policy = CurationPolicy(holdout_share=0.5)
    fw.run()
    assert fw.curation.committed and fw.curation.rederived is None
    assert_equals_a_whole_build(fw.lake, tmp_path / "whole", fw.policy)


def test_a_rollback_of_a_set_means_a_whole_build(fw, tmp_path):
    week(fw, 100, n=2).run()
    version = fw.lake.open("kto_set").version() - 1
    rollback_table(fw.lake, "kto_set", key=KEY, reason="a bad week", to_version=version)
    week(fw, 200, n=2).run()
    assert fw.curation.committed and fw.curation.rederived is None
    assert_equals_a_whole_build(fw.lake, tmp_path / "whole")


def test_an_erasure_means_a_whole_build(tmp_path):
    fw = week(Flywheel(tmp_path / "w", POLICY), 0)
    fw.add([interaction("r500", user_id="u1")], [feedback("f500", "r500", "thumbs_up")]).run()
    assert any(r["source_request_id"] == "r500" for r in fw.rows("eval_cases"))
    erase_user(fw.lake, "u1", KEY, [t.name for t in catalog.TABLES])
    week(fw, 100, n=2).run()
    assert fw.curation.committed and fw.curation.rederived is None
    assert not any(r["source_request_id"] == "r500" for r in fw.rows("eval_cases"))
    assert_equals_a_whole_build(fw.lake, tmp_path / "whole")


def test_a_build_that_stopped_half_way_is_followed_by_a_whole_one(fw, tmp_path, monkeypatch):
    week(fw, 100, n=2)
    real = incremental.merge
    calls = []

    def stops_after_two_sets(lake, spec, *args, **kwargs):
        calls.append(spec.name)
        if len(calls) > 2:
            raise OSError("the process was killed")
        return real(lake, spec, *args, **kwargs)

    monkeypatch.setattr(incremental, "merge", stops_after_two_sets)
    with pytest.raises(OSError):
        fw.run()
    monkeypatch.setattr(incremental, "merge", real)
    assert curate(fw).rederived is None  # two sets were ahead of the state: rebuild whole
    assert_equals_a_whole_build(fw.lake, tmp_path / "whole")
    week(fw, 200, n=2).run()
    assert fw.curation.rederived == 2  # and by key again after that
    assert_equals_a_whole_build(fw.lake, tmp_path / "whole-again")


def test_a_vacuumed_tagging_version_only_means_more_work(fw, tmp_path):
    # A drift window over every earlier row re-tags them all, with a tag only.
    week(fw, 100, n=4).add(drift=[drift_event("d1", "2026-11-20T12:00:00Z", window_hours=6)])
    ingest_landing(LandingZone(str(fw.landing)), fw.lake)
    build(fw.lake, SamplingPolicy(healthy_share=1.0))
    tagging = build_tagged_rows(fw.lake, DETECTOR, SignalWeights(), FeedbackCap(), POLICY)
    # The version the state was built from is gone: its files were vacuumed.
    tagged = Path(fw.lake.root) / "tagged_rows"
    current = {Path(uri).name for uri in fw.lake.open("tagged_rows").file_uris()}
    for old in tagged.glob("*.parquet"):
        if old.name not in current:
            old.unlink()
    report = curate(fw)
    # Every re-tagged row counts as changed (nothing to compare with), and the result is exact.
    assert report.committed and report.rederived == tagging.retagged > 4
    assert_equals_a_whole_build(fw.lake, tmp_path / "whole")
