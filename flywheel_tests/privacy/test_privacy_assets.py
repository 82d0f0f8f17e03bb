"""The privacy stage through Dagster and the CLI: checks, the erasure job and the retention job."""

from __future__ import annotations

import json

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from flywheel_assets.definitions import defs
from flywheel_assets.sample import write_sample_landing
from flywheel_tests.support.cli import flywheel, parse_table
from flywheel_tests.support.records import feedback, interaction, write_lines
from flywheel_tests.support.runs import materializations, refresh


@pytest.fixture(autouse=True)
def hash_key(monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HASH_KEY", "a-test-secret-of-enough-length")


def test_refresh_builds_redacted_tables_and_every_check_passes(tmp_path, lake):
    write_sample_landing(tmp_path / "landing", n_interactions=400, seed=2)
    result = refresh(tmp_path / "landing", lake)
    assert result.success
    checks = {
        (c.asset_key.to_user_string(), c.check_name): c.passed
        for c in result.get_asset_check_evaluations()
    }
    for table in ["redacted_logs", "redacted_feedback", "redacted_annotations"]:
        assert checks[(table, "no_residual_pii")] is True
    meta = materializations(result)["redacted_logs"]
    kept = meta["kept_by_reason"]
    assert sum(kept.values()) == 400 and kept["feedback"] > 0
    assert meta["dagster/row_count"] == 400 - kept["unsampled"]
    assert meta["pii_redacted"]


def test_pii_written_behind_the_pipeline_fails_the_blocking_check(landing_dir, lake):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    write_lines(landing_dir, "feedback/a.jsonl", [feedback("f1", "r1")])
    assert refresh(landing_dir, lake).success
    leaked = lake.read("redacted_logs").to_pylist()[0] | {
        "request_id": "r2",
        "response": "call me on +44 20 7946 0958",
    }
    write_deltalake(
        lake.uri("redacted_logs"),
        pa.Table.from_pylist([leaked], schema=lake.read("redacted_logs").schema),
        mode="append",
    )
    result = refresh(landing_dir, lake)
    assert not result.success
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert [(c.asset_key.to_user_string(), c.check_name) for c in failed] == [
        ("redacted_logs", "no_residual_pii")
    ]
    assert failed[0].metadata["rows_with_pii"].value == {"response": 1}


@pytest.mark.slow
def test_forget_from_the_cli_then_a_rerun_keeps_the_user_gone(tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    user = "gone@example.com"
    write_lines(
        landing,
        "interactions/a.jsonl",
        [interaction("g1", user_id=user), interaction("k1", user_id="kept")],
    )
    write_lines(landing, "feedback/a.jsonl", [feedback("f1", "g1"), feedback("f2", "k1")])
    env = {"FLYWHEEL_HASH_KEY": "a-test-secret-of-enough-length"}
    assert flywheel("run", "--landing", str(landing), "--lake", str(lake), env=env).returncode == 0

    out = flywheel("forget", user, "--reason", "GDPR-1", "--lake", str(lake), env=env)

    assert out.returncode == 0, out.stderr
    touched = parse_table(out.stdout, "table")
    assert touched["raw_logs"][0] == "1" and touched["redacted_logs"][0] == "1"
    assert touched["raw_feedback"][0] == "1"
    # The same landing files again, under a new name: the user stays erased.
    write_lines(landing, "interactions/b.jsonl", [interaction("g1", user_id=user)])
    rerun = flywheel("run", "--landing", str(landing), "--lake", str(lake), env=env)
    assert rerun.returncode == 0, rerun.stderr
    streams = parse_table(rerun.stdout, "stream")
    assert streams["interactions"][-1] == "1"  # counted as erased, not stored
    from flywheel_assets.lake.tables import Lake

    assert Lake(str(lake)).read("raw_logs")["request_id"].to_pylist() == ["k1"]


@pytest.mark.slow
def test_forget_refuses_a_blank_user_with_one_line(tmp_path):
    out = flywheel("forget", " ", "--lake", str(tmp_path / "lake"))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == ["flywheel forget: error: USER_ID must not be blank"]


@pytest.mark.slow
def test_expire_from_the_cli_removes_old_raw_rows(tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    write_lines(
        landing,
        "interactions/a.jsonl",
        [
            interaction("old", ts="2020-01-01T00:00:00Z"),
            interaction("new", ts="2999-01-01T00:00:00Z"),
        ],
    )
    assert flywheel("run", "--landing", str(landing), "--lake", str(lake)).returncode == 0

    out = flywheel(
        "expire",
        "--days",
        "30",
        "--landing-files",
        "keep",
        "--landing",
        str(landing),
        "--lake",
        str(lake),
    )

    assert out.returncode == 0, out.stderr
    assert parse_table(out.stdout, "table")["raw_logs"] == ["1"]
    assert (landing / "interactions" / "a.jsonl").exists()


def test_privacy_jobs_and_schedule_are_defined():
    assert {"retention_job", "erase_user_job"} <= {j.name for j in defs.resolve_all_job_defs()}
    assert "retention_schedule" in {s.name for s in defs.schedules}


def test_a_pattern_added_in_a_file_is_redacted_without_code_changes(
    tmp_path, landing_dir, lake, monkeypatch
):
    patterns = tmp_path / "patterns.json"
    pattern = {"name": "employee_id", "regex": r"\bEMP-\d{6}\b", "placeholder": "[EMPLOYEE_ID]"}
    patterns.write_text(json.dumps([pattern]))
    monkeypatch.setenv("FLYWHEEL_PII_PATTERNS", str(patterns))
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1", prompt="I am EMP-123456")])
    write_lines(landing_dir, "feedback/a.jsonl", [feedback("f1", "r1")])

    result = refresh(landing_dir, lake)

    assert result.success
    row = lake.read("redacted_logs").to_pylist()[0]
    assert row["prompt"] == "I am [EMPLOYEE_ID]"
    assert dict(row["pii_counts"]) == {"employee_id": 1}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"name": "x"}', "JSON list of pattern objects"),
        ('[{"name": "x", "regex": "a", "placeholder": "[X]", "validator": "nope"}]', "nope"),
    ],
)
def test_a_bad_patterns_file_fails_the_run_with_a_clear_reason(
    tmp_path, landing_dir, lake, monkeypatch, content, message
):
    patterns = tmp_path / "patterns.json"
    patterns.write_text(content)
    monkeypatch.setenv("FLYWHEEL_PII_PATTERNS", str(patterns))
    write_lines(landing_dir, "feedback/a.jsonl", [feedback("f1", "r1")])
    from flywheel_assets.cli.runner import RunFailed, run_assets

    with pytest.raises(RunFailed, match=message):
        run_assets(
            landing=str(landing_dir), lake=lake.root, instance=dg.DagsterInstance.ephemeral()
        )
