"""Re-redaction when the detector improves: rows an older detector redacted are redacted again
with the current one, the curated sets rebuilt, and no loadable version keeps the old text.

The older deployment is reproduced with `Detector(kinds=...)`, the built-in rules limited to the
kinds detectors had before names and addresses; `redact_again_job` then runs with the full one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.curation.assets import CurationConfig
from flywheel_assets.curation.pipeline import CURATED, build_curated_sets, build_tagged_rows
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.lake.tables import Lake, VersionUnreadable
from flywheel_assets.privacy.pii import Detector
from flywheel_assets.privacy.pipeline import (
    DETECTOR_VERSION_KEY,
    redact_annotations,
    redact_feedback,
    redact_logs,
)
from flywheel_assets.privacy.reredaction import (
    RedactionCommit,
    ReredactionError,
    ranges,
    redact_again,
    stale_batches,
)
from flywheel_assets.privacy.retention import LandingAction, expire_raw
from flywheel_assets.privacy.sampling import SamplingPolicy
from flywheel_tests.support.cli import flywheel, parse_table
from flywheel_tests.support.records import TEST_HASH_KEY, feedback, interaction, write_lines
from flywheel_tests.support.runs import run_job

KEY = TEST_HASH_KEY.encode()  # what the jobs' privacy resource reads from the environment
OLD_KINDS = ["secret", "url_credentials", "email", "iban", "card", "ssn", "ip", "mac", "phone"]
OLD = Detector(kinds=OLD_KINDS)
NEW = Detector()
KEEP_ALL = SamplingPolicy(healthy_share=1.0)
# The holdout is keyed on the prompt's text, which re-redaction changes: none is held out here, so
# the sets can be compared row for row.
CURATION = {"holdout_share": 0.0}
REDACTED = ("redacted_logs", "redacted_feedback", "redacted_annotations")
CURATED_TABLES = ("tagged_rows", *(s.name for s in CURATED), "curation_state")
# The values only the new kinds find, lower case: normalized prompts are lower-cased.
VALUES = ("maria lopez", "baker street", "nw1 6xe")
NAME = "My name is Maria Lopez, can you book a table for two?"
ADDRESS = "Ship it to 221B Baker Street, London NW1 6XE please."


def _landing(root: Path, ts: str = "2026-11-20T10:00:00+00:00") -> None:
    write_lines(
        root,
        "interactions/a.jsonl",
        [
            interaction("i1", prompt=NAME, response="Booked for two, Mrs. Maria Lopez.", ts=ts),
            interaction("i2", prompt=ADDRESS, response="It ships to 221B Baker Street.", ts=ts),
            interaction("i3", prompt="What is the capital of France?", response="Paris.", ts=ts),
            interaction("i4", prompt="Mail bob@example.com the notes", response="Sent.", ts=ts),
        ],
    )
    write_lines(
        root,
        "feedback/a.jsonl",
        [
            feedback("f1", "i1", "thumbs_up", ts=ts),
            feedback(
                "f2",
                "i2",
                "edit",
                correction="It ships to 221B Baker Street, London NW1 6XE tomorrow.",
                ts=ts,
            ),
            feedback("f3", "i3", "thumbs_up", ts=ts),
            feedback("f4", "i4", "thumbs_down", comment="ask Maria Lopez", ts=ts),
        ],
    )
    write_lines(
        root,
        "annotations/a.jsonl",
        [
            {
                "annotation_id": "a1",
                "request_id": "i2",
                "ts": ts,
                "operator": "op",
                "correction": "Ship to Mrs. Maria Lopez at 221B Baker Street, London NW1 6XE.",
            }
        ],
    )


def _older_deployment(lake: Lake, detector: Detector = OLD) -> None:
    """Redaction and curation as a deployment whose detector lacked the new kinds ran them."""
    redact_logs(lake, detector, KEY, KEEP_ALL)
    redact_feedback(lake, detector, KEY)
    redact_annotations(lake, detector, KEY)
    config = CurationConfig(**CURATION)
    tagging = build_tagged_rows(lake, detector, config.weights(), config.cap(), config.policy())
    curated = build_curated_sets(lake, detector, KEY, config.policy())
    assert tagging.committed and curated.committed


@pytest.fixture
def lake(tmp_path, hash_key) -> Lake:
    _landing(tmp_path / "landing")
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(tmp_path / "landing")), lake)
    _older_deployment(lake)
    return lake


def _readable_versions(lake: Lake, table: str) -> dict[int, list[dict]]:
    """Every version the Delta log still lists that can be loaded, as rows."""
    dt = lake.open(table)
    out = {}
    for commit in dt.history():
        try:
            data = lake.read(table, version=commit["version"])
        except (VersionUnreadable, OSError):
            continue
        out[commit["version"]] = data.to_pylist()
    return out


def _holding(lake: Lake, tables) -> dict[str, list[int]]:
    """The loadable versions of each table whose rows hold any of VALUES, anywhere."""
    found = {}
    for table in tables:
        for version, rows in _readable_versions(lake, table).items():
            text = json.dumps(rows, default=str).lower()
            if any(v in text for v in VALUES):
                found.setdefault(table, []).append(version)
    return found


def _rows(lake: Lake, tables) -> dict[str, int]:
    return {t: lake.stats(t).rows for t in tables}


def _versions(lake: Lake, tables) -> dict[str, int]:
    return {t: lake.open(t).version() for t in tables}


def _run(tmp_path, lake, since_version: str = ""):
    config = {"since_version": since_version, "curation": CURATION}
    config = {"ops": {"redact_rows_again": {"config": config}}}
    return run_job("redact_again_job", tmp_path / "landing", lake, config)


# 1. The detector names itself, and every redaction commit records it.


def test_the_detector_version_is_stable_and_changes_with_the_kinds():
    assert Detector().version == NEW.version
    assert Detector(kinds=OLD_KINDS).version == OLD.version != NEW.version
    assert Detector([{"name": "employee_id", "regex": r"E\d{6}", "placeholder": "[EMP]"}]).version
    assert (
        Detector([{"name": "employee_id", "regex": r"E\d{6}", "placeholder": "[EMP]"}]).version
        != NEW.version
    )
    assert OLD.redact(NAME)[1] == {} and NEW.redact(NAME)[1] == {"person": 1}


def test_an_unknown_kind_is_refused_with_the_known_ones():
    with pytest.raises(
        ValueError, match=r"unknown PII kind\(s\) \['nmae'\]; built-in kinds: .*person"
    ):
        Detector(kinds=["nmae"])


def test_every_redaction_commit_records_the_detector_version(lake):
    for table in REDACTED:
        commits = [c for c in lake.open(table).history() if c.get("flywheel.operation") == "redact"]
        assert commits and all(c[DETECTOR_VERSION_KEY] == OLD.version for c in commits), table


# 2. Which batches are stale: pure logic over the commits.


def _commit(version, detector, batches, ts=0, again=False):
    return RedactionCommit(version, ts, detector, frozenset(batches), again)


def test_batches_another_detector_wrote_are_stale_until_the_current_one_checks_them():
    commits = [_commit(1, "old", [1, 2]), _commit(2, "new", [3]), _commit(3, "old", [1, 4])]
    assert stale_batches(commits, current="new", upto=4, complete=True) == {1, 2, 4}
    checked = [*commits, _commit(4, "new", [1, 2, 4], again=True)]
    assert stale_batches(checked, current="new", upto=4, complete=True) == set()
    # A late row of batch 3 written by the old detector after the new one checked it.
    late = [*checked, _commit(5, "old", [3, 5])]
    assert stale_batches(late, current="new", upto=5, complete=True) == {3, 5}


def test_an_incomplete_log_makes_every_batch_stale_and_since_limits_by_time():
    commits = [_commit(7, "new", [4])]
    assert stale_batches(commits, current="new", upto=4, complete=False) == {1, 2, 3}
    timed = [_commit(1, "a", [1], ts=10), _commit(2, "b", [2], ts=20), _commit(3, "c", [3], ts=30)]
    assert stale_batches(timed, current="c", upto=3, complete=True, since=20) == {2}
    assert ranges([1, 2, 3, 7, 9, 10]) == [[1, 3], [7, 7], [9, 10]]


# 3. redact_again_job: the new kinds are gone from every loadable version, the sets keep their
#    rows, a second run does nothing, and a rollback to an old version is refused.


def test_redact_again_job_leaves_no_loadable_version_with_the_old_text(tmp_path, lake):
    everything = (*REDACTED, *CURATED_TABLES)
    before = _holding(lake, everything)
    assert {"redacted_logs", "redacted_feedback", "redacted_annotations", "tagged_rows"} <= set(
        before
    ), before
    assert set(before) & {"sft_set", "dpo_set", "kto_set", "eval_cases", "review_queue"}, before
    rows_before = _rows(lake, CURATED_TABLES)
    old_version = lake.open("redacted_logs").version()

    result = _run(tmp_path, lake)

    assert result.success, result
    report = result.output_for_node("redact_rows_again")
    assert report.detector_version == NEW.version
    assert report.tables["redacted_logs"].rows_rewritten == 2  # i1 and i2; i3, i4 unchanged
    assert report.tables["redacted_feedback"].rows_rewritten == 2
    assert report.tables["redacted_annotations"].rows_rewritten == 1
    assert _holding(lake, everything) == {}
    assert _rows(lake, CURATED_TABLES) == rows_before
    logs = {r["request_id"]: r for r in lake.read("redacted_logs").to_pylist()}
    assert logs["i1"]["prompt"] == "My name is [PERSON], can you book a table for two?"
    assert logs["i4"]["prompt"] == "Mail [EMAIL] the notes"  # what the old detector did stays
    assert dict(logs["i2"]["pii_counts"]) == {"address": 2}
    assert old_version in report.tables["redacted_logs"].unrestorable_versions
    history = lake.last_commit_metadata("redacted_logs")  # the vacuum commits aside
    assert history["flywheel.operation"] == "redact_again"
    assert history[DETECTOR_VERSION_KEY] == NEW.version

    versions = _versions(lake, everything)
    again = _run(tmp_path, lake)
    assert again.success
    assert again.output_for_node("redact_rows_again").tables == {}
    assert _versions(lake, everything) == versions

    refused = run_job(
        "rollback_table_job",
        tmp_path / "landing",
        lake,
        {
            "ops": {
                "restore_table_version": {
                    "config": {"table": "redacted_logs", "to_version": old_version, "reason": "x"}
                }
            }
        },
    )
    assert not refused.success
    failure = refused.failure_data_for_node("restore_table_version").error.message
    assert f"version {old_version} of redacted_logs cannot be restored" in failure
    assert f"re-redaction with detector {NEW.version}" in failure
    assert _holding(lake, everything) == {}


def test_rows_whose_raw_rows_expired_are_redacted_again_from_the_stored_text(tmp_path, hash_key):
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    _landing(tmp_path / "landing", ts=old)
    lake = Lake(str(tmp_path / "lake"))
    zone = LandingZone(str(tmp_path / "landing"))
    ingest_landing(zone, lake)
    _older_deployment(lake)
    expire_raw(
        lake, zone, cutoff=datetime.now(UTC) - timedelta(days=30), landing_action=LandingAction.KEEP
    )
    assert lake.read("raw_logs").num_rows == 0

    report = redact_again(lake, NEW, KEY)

    logs = report.tables["redacted_logs"]
    assert (logs.rows_from_raw, logs.rows_from_stored, logs.rows_rewritten) == (0, 4, 2)
    assert _holding(lake, REDACTED) == {}
    rows = {r["request_id"]: r for r in lake.read("redacted_logs").to_pylist()}
    assert rows["i2"]["prompt"] == "Ship it to [ADDRESS] please."
    assert dict(rows["i4"]["pii_counts"]) == {"email": 1}  # the old finding is still counted
    assert dict(rows["i1"]["pii_counts"]) == {"person": 2}


def test_since_version_names_a_version_the_log_records(tmp_path, lake):
    with pytest.raises(
        ReredactionError, match=f"no redacted table records detector version 'nope'.*{OLD.version}"
    ):
        redact_again(lake, NEW, KEY, since_version="nope")
    report = redact_again(lake, NEW, KEY, since_version=OLD.version)
    assert report.rows_rewritten == 5
    assert _holding(lake, REDACTED) == {}


# 4. The command.


def test_flywheel_redact_prints_the_versions_that_became_unrestorable(tmp_path, lake):
    old_version = lake.open("redacted_logs").version()
    env = {"FLYWHEEL_HASH_KEY": TEST_HASH_KEY}
    where = ["--lake", lake.root, "--landing", str(tmp_path / "landing")]

    out = flywheel("redact", "--all", *where, env=env)

    assert out.returncode == 0, out.stderr
    assert f"redacted again with detector {NEW.version}" in out.stdout
    checked = parse_table(out.stdout, "table ")
    assert checked["redacted_logs"][:4] == ["4", "4", "0", "2"]  # checked, raw, stored, rewritten
    gone = parse_table(out.stdout.split("versions no longer restorable")[1], "table ")
    assert str(old_version) in gone["redacted_logs"]
    assert set(gone) >= {*REDACTED, "tagged_rows", "sft_set"}
    assert _holding(lake, (*REDACTED, *CURATED_TABLES)) == {}

    rollback = flywheel(
        "rollback", "redacted_logs", "--to-version", str(old_version), "--reason", "undo", *where,
        env=env,
    )  # fmt: skip
    assert rollback.returncode == 1
    assert "Traceback" not in rollback.stderr
    assert "re-redaction with detector" in rollback.stderr

    second = flywheel("redact", "--all", *where, env=env)
    assert second.returncode == 0, second.stderr
    assert "nothing to redact again" in second.stdout
