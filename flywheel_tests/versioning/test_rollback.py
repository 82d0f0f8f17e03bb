"""Rolling tables back through Dagster: restore, audit, affected models, and the runs after it.

A good week and a poisoned week of thumbs-up land; each test rolls a table back and checks that the
next scheduled refresh does not put the poisoned rows back until they are re-admitted.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from flywheel_assets.catalog.curated import SFT_SET
from flywheel_assets.governance.exclusions import Exclusions
from flywheel_assets.governance.hashing import keyed_hash
from flywheel_assets.lake.versions import history, oldest_restorable
from flywheel_assets.privacy.erasure import erase_user
from flywheel_assets.training.registry import CANDIDATE, Registry
from flywheel_assets.versioning.rollback import RollbackError, readmit, rollback_table
from flywheel_tests.support.records import TEST_HASH_KEY, feedback, write_lines
from flywheel_tests.support.rollback import POISON, QUESTIONS, poison, sft_requests, write_week
from flywheel_tests.support.runs import materializations, run_job
from flywheel_tests.support.training import record, write_curated

KEY = TEST_HASH_KEY.encode()
pytestmark = pytest.mark.usefixtures("hash_key")
LATER = [
    ("Where is the serial number on the kettle?", "Under the base, next to the plug."),
    ("Does the scanner work with recycled paper?", "Yes, up to 80 gsm."),
]


@pytest.fixture
def poisoned(landing_dir, lake):
    bad = poison(landing_dir, lake)
    assert sft_requests(lake) & bad, "the poisoned week reached the SFT set"
    return bad


def _rollback(landing_dir, lake, **config):
    return run_job(
        "rollback_table_job",
        landing_dir,
        lake,
        {"ops": {"restore_table_version": {"config": {"reason": "poisoned week", **config}}}},
    )


def _register(lake, model_id: str, sft_version: int) -> None:
    Registry(lake).register(
        record(model_id, dataset_versions={"sft_set": sft_version}),
        status=CANDIDATE,
        reason="test",
        actor="test",
    )


def test_rollback_job_restores_audits_and_names_the_models_trained_on_bad_versions(
    poisoned, landing_dir, lake
):
    _register(lake, "ft-before", 1)
    _register(lake, "ft-poisoned", 2)
    expected = lake.read("sft_set", version=1).to_pylist()

    result = _rollback(landing_dir, lake, table="sft_set", to_version=1)
    assert result.success
    assert lake.read("sft_set").to_pylist() == expected
    latest = history(lake, "sft_set", limit=1)[0]
    assert latest.operation == "RESTORE" and latest.detail == "to version 1"
    assert latest.run_id == result.run_id  # the run that rolled it back is in the history

    meta = materializations(result)["sft_set"]
    assert (meta["rolled_back_from"], meta["rolled_back_to"]) == (2, 1)
    assert meta["affected_model_ids"] == ["ft-poisoned"]
    assert "ft-poisoned" in meta["affected_models"]
    audit = lake.read("rollback_audit").to_pylist()
    assert len(audit) == 1
    row = audit[0]
    assert (row["action"], row["table"], row["from_version"], row["to_version"]) == (
        "rollback",
        "sft_set",
        2,
        1,
    )
    assert row["reason"] == "poisoned week" and row["affected_models"] == ["ft-poisoned"]
    assert row["run_id"] == result.run_id and row["ids_count"] == len(
        poisoned
        & set(
            r
            for ids in lake.read("sft_set", version=2)["source_request_ids"].to_pylist()
            for r in ids
        )
    )


def test_the_next_refresh_does_not_put_rolled_back_rows_back_until_readmitted(
    poisoned, landing_dir, lake
):
    assert _rollback(landing_dir, lake, table="sft_set", to_version=1).success
    later = write_week(landing_dir, "later", LATER, 20)
    assert run_job("refresh_job", landing_dir, lake).success
    requests = sft_requests(lake)
    assert not requests & poisoned
    assert set(later) <= requests  # new data still flows
    meta_rows = lake.read("sft_set")
    assert meta_rows.num_rows == len(requests)

    rollback_id = lake.read("rollback_audit")["rollback_id"][0].as_py()
    result = readmit(lake, rollback_id, key=KEY, reason="false alarm")
    assert "next run" in result.note
    assert run_job("refresh_job", landing_dir, lake).success
    assert poisoned & sft_requests(lake)
    with pytest.raises(RollbackError, match="already re-admitted"):
        readmit(lake, rollback_id, key=KEY, reason="again")


def test_rolling_back_redacted_logs_by_time_keeps_late_feedback_from_re_adding_rows(
    landing_dir, lake
):
    write_week(landing_dir, "good", QUESTIONS, 10)
    assert run_job("refresh_job", landing_dir, lake).success
    time.sleep(0.05)
    between = datetime.now(UTC)
    time.sleep(0.05)
    bad = set(write_week(landing_dir, "bad", POISON, 17))
    assert run_job("refresh_job", landing_dir, lake).success
    _register(lake, "ft-poisoned", lake.stats("sft_set").version)

    result = _rollback(landing_dir, lake, table="redacted_logs", to_timestamp=between.isoformat())
    assert result.success
    meta = materializations(result)["redacted_logs"]
    assert meta["affected_model_ids"] == ["ft-poisoned"]
    assert not set(lake.read("redacted_logs")["request_id"].to_pylist()) & bad

    # A late thumbs-up on a poisoned answer would make redaction keep that interaction again.
    write_lines(landing_dir, "feedback/late.jsonl", [feedback("fb-late", "bad-1")])
    assert run_job("refresh_job", landing_dir, lake).success
    assert not set(lake.read("redacted_logs")["request_id"].to_pylist()) & bad
    assert not set(lake.read("tagged_rows")["request_id"].to_pylist()) & bad
    assert not sft_requests(lake) & bad

    rollback_id = lake.read("rollback_audit")["rollback_id"][0].as_py()
    result = readmit(lake, rollback_id, key=KEY, reason="reviewed, fine")
    assert result.rows_restored == len(bad)
    assert bad <= set(lake.read("redacted_logs")["request_id"].to_pylist())
    assert run_job("refresh_job", landing_dir, lake).success
    assert bad <= set(lake.read("tagged_rows")["request_id"].to_pylist())


def test_rolling_back_a_raw_table_keeps_its_rows_out_of_everything_downstream(
    poisoned, landing_dir, lake
):
    raw_versions = [v.version for v in history(lake, "raw_logs") if v.operation == "WRITE"]
    assert _rollback(landing_dir, lake, table="raw_logs", to_version=min(raw_versions)).success
    assert not set(lake.read("raw_logs")["request_id"].to_pylist()) & poisoned
    exclusions = Exclusions.load(lake)
    assert set(exclusions.values("request_id").to_pylist()) == poisoned
    assert run_job("refresh_job", landing_dir, lake).success
    # redacted_logs still holds its copy (roll it back too to drop it); nothing built later does.
    assert not set(lake.read("tagged_rows")["request_id"].to_pylist()) & poisoned
    assert not sft_requests(lake) & poisoned


def test_a_version_removed_by_an_erasure_is_refused_with_the_oldest_restorable(
    poisoned, landing_dir, lake
):
    erase_user(lake, "user-good-0", KEY, ["redacted_logs"], reason="request 9")
    result = _rollback(landing_dir, lake, table="redacted_logs", to_version=1)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    oldest = oldest_restorable(lake, "redacted_logs")
    assert oldest > 1
    assert f"the oldest restorable version is {oldest}" in failure
    assert lake.read("rollback_audit") is None  # nothing recorded, nothing restored


def test_erased_rows_never_come_back_through_a_rollback(lake):
    write_curated(lake, {"sft_set": 3})
    user_hash = keyed_hash("user-x", KEY, "user")
    table = lake.read("sft_set")
    hashes = pa.array([user_hash, "other", "other"])
    marked = table.set_column(table.schema.get_field_index("user_hash"), "user_hash", hashes)
    lake.overwrite(SFT_SET, marked)
    with_user = lake.stats("sft_set").version
    lake.overwrite(SFT_SET, table.slice(1))  # a rebuild without them, before the erasure
    # The current version holds none of the user's rows, so the erasure does not touch sft_set.
    report = erase_user(lake, "user-x", KEY, ["sft_set"], reason="request 10")
    assert "sft_set" not in report.tables

    result = rollback_table(lake, "sft_set", key=KEY, reason="undo", to_version=with_user)
    assert result.erased_rows_removed == 1
    assert user_hash not in lake.read("sft_set")["user_hash"].to_pylist()


@pytest.mark.parametrize(
    ("table", "kwargs", "message"),
    [
        ("ingest_ledger", {"to_version": 0}, "would re-ingest landing files"),
        ("erasure_tombstones", {"to_version": 0}, "erasures cannot be undone"),
        ("model_registry", {"to_version": 0}, "flywheel rollback-model"),
        ("nope", {"to_version": 0}, "unknown table 'nope'"),
        ("sft_set", {}, "exactly one of a version or a timestamp"),
        ("sft_set", {"to_version": 1, "to_timestamp": datetime.now(UTC)}, "exactly one"),
        ("sft_set", {"to_version": 2}, "already at version 2"),
        ("sft_set", {"to_version": 7}, "there is no version 7"),
    ],
)
def test_impossible_rollbacks_are_refused_and_change_nothing(
    poisoned, lake, table, kwargs, message
):
    before = lake.stats("sft_set").version
    with pytest.raises(ValueError, match=message):
        rollback_table(lake, table, key=KEY, reason="x", **kwargs)
    assert lake.stats("sft_set").version == before
    assert lake.read("rollback_audit") is None


def test_a_rollback_needs_a_reason(poisoned, lake):
    with pytest.raises(RollbackError, match="needs a reason"):
        rollback_table(lake, "sft_set", key=KEY, reason="  ", to_version=1)


def test_bad_job_config_fails_the_run_with_the_reason(poisoned, landing_dir, lake):
    result = _rollback(landing_dir, lake, table="sft_set", to_timestamp="last tuesday")
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "not an ISO-8601 time" in message


def test_table_maintenance_job_keeps_content_and_the_next_refresh_commits_nothing(
    poisoned, landing_dir, lake
):
    tables = ["raw_logs", "redacted_logs", "tagged_rows", "sft_set", "dpo_set"]
    before = {t: lake.read(t).num_rows for t in tables}
    result = run_job(
        "table_maintenance_job",
        landing_dir,
        lake,
        {"ops": {"compact_and_vacuum": {"config": {"min_files": 2}}}},
    )
    assert result.success
    assert {t: lake.read(t).num_rows for t in tables} == before
    assert lake.stats("raw_logs").files == 1  # two ingest batches compacted into one file
    versions = {t: lake.stats(t).version for t in ("tagged_rows", "sft_set")}
    assert run_job("refresh_job", landing_dir, lake).success
    # Compaction is not new data: the curated tables are not rebuilt for it.
    assert {t: lake.stats(t).version for t in versions} == versions
