"""Rollback against writers, and the rest of what follows a rollback: a commit that lands between
a rollback's read and its restore, a refresh after rolling back a raw table, a rollback followed
by an erasure, and versions that cannot or may not be restored.

The promise checked throughout: no row is ingested twice, and every row the ingest ledger counts
as landed is either in its table or named by an active exclusion (so `readmit` can bring it
back)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from flywheel_assets.catalog.curated import EVAL_CASES, SFT_SET
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.governance.exclusions import Exclusions
from flywheel_assets.governance.hashing import keyed_hash
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.privacy.erasure import erase_user
from flywheel_assets.privacy.pii import Detector
from flywheel_assets.privacy.pipeline import redact_logs
from flywheel_assets.privacy.sampling import SamplingPolicy
from flywheel_assets.versioning.rollback import RollbackError, readmit, rollback_table
from flywheel_tests.support.records import TEST_HASH_KEY, feedback, interaction, write_lines
from flywheel_tests.support.rollback import poison, sft_requests
from flywheel_tests.support.runs import run_job

KEY = TEST_HASH_KEY.encode()
pytestmark = pytest.mark.usefixtures("hash_key")
LATE = [f"late-{i}" for i in range(3)]
TS = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def poisoned(landing_dir, lake):
    return poison(landing_dir, lake)


def land_late(landing_dir) -> None:
    write_lines(
        landing_dir,
        "interactions/late.jsonl",
        [interaction(rid, user_id=f"user-{rid}") for rid in LATE],
    )
    write_lines(landing_dir, "feedback/late.jsonl", [feedback(f"fb-{rid}", rid) for rid in LATE])


def in_another_thread(work):
    """A before_restore hook that runs `work` once, in its own thread, to its commit."""
    calls = []

    def hook(version_read: int) -> None:
        calls.append(version_read)
        if len(calls) == 1:
            thread = threading.Thread(target=work)
            thread.start()
            thread.join()

    return hook, calls


def ids(lake, table: str, column: str = "request_id") -> list[str]:
    return lake.read(table, columns=[column])[column].to_pylist()


def test_an_ingest_committing_during_a_rollback_is_excluded_never_lost(poisoned, landing_dir, lake):
    land_late(landing_dir)
    hook, calls = in_another_thread(lambda: ingest_landing(LandingZone(str(landing_dir)), lake))
    first = min(c["version"] for c in lake.open("raw_logs").history() if c["operation"] == "WRITE")

    result = rollback_table(
        lake, "raw_logs", key=KEY, reason="bad week", to_version=first, before_restore=hook
    )
    # The ledger counts the late file as landed; its rows are not in raw_logs, so an exclusion
    # must name them, and the audit counts them.
    assert not set(LATE) & set(ids(lake, "raw_logs"))
    excluded = set(Exclusions.load(lake).values("request_id").to_pylist())
    assert set(LATE) | poisoned <= excluded
    # The restore was refused on top of the version it had read, and made again on the new one.
    assert len(calls) == 2 and calls[1] > calls[0]
    assert result.from_version == calls[1]
    audit = lake.read("rollback_audit").to_pylist()
    assert [a["ids_count"] for a in audit] == [result.ids_count] == [len(excluded)]
    # ...and they come back exactly once when re-admitted.
    readmit(lake, result.rollback_id, key=KEY, reason="reviewed")
    raw = ids(lake, "raw_logs")
    assert set(LATE) <= set(raw) and len(raw) == len(set(raw))


def test_a_redaction_committing_during_a_rollback_is_excluded_never_lost(
    poisoned, landing_dir, lake
):
    land_late(landing_dir)
    ingest_landing(LandingZone(str(landing_dir)), lake)
    before = lake.open("redacted_logs").version()

    def redact():  # moves the redaction watermark past the late batch in the same commit
        redact_logs(lake, Detector(), KEY, SamplingPolicy(healthy_share=1.0))

    hook, calls = in_another_thread(redact)
    result = rollback_table(
        lake,
        "redacted_logs",
        key=KEY,
        reason="bad week",
        to_version=before - 1,
        before_restore=hook,
    )
    assert not set(LATE) & set(ids(lake, "redacted_logs"))
    assert set(LATE) <= set(Exclusions.load(lake).values("request_id").to_pylist())
    assert len(calls) == 2
    # The next refresh neither redacts them again nor loses track of them.
    assert run_job("refresh_job", landing_dir, lake).success
    assert not set(LATE) & set(ids(lake, "redacted_logs"))
    readmit(lake, result.rollback_id, key=KEY, reason="reviewed")
    redacted = ids(lake, "redacted_logs")
    assert set(LATE) <= set(redacted) and len(redacted) == len(set(redacted))


def test_a_refresh_after_rolling_back_a_raw_table_ingests_nothing_twice(
    poisoned, landing_dir, lake
):
    first = min(c["version"] for c in lake.open("raw_logs").history() if c["operation"] == "WRITE")
    result = rollback_table(lake, "raw_logs", key=KEY, reason="bad week", to_version=first)
    ledger = lake.read("ingest_ledger").num_rows
    raw = sorted(ids(lake, "raw_logs"))
    assert run_job("refresh_job", landing_dir, lake).success
    # The landing files stay ingested: nothing is read again, nothing comes back.
    assert lake.read("ingest_ledger").num_rows == ledger
    assert sorted(ids(lake, "raw_logs")) == raw
    readmit(lake, result.rollback_id, key=KEY, reason="reviewed")
    assert run_job("refresh_job", landing_dir, lake).success
    again = ids(lake, "raw_logs")
    assert poisoned <= set(again) and len(again) == len(set(again))


def test_an_erasure_after_a_rollback_removes_the_user_and_keeps_the_rest_out(
    poisoned, landing_dir, lake
):
    rollback_table(lake, "sft_set", key=KEY, reason="bad week", to_version=1)
    assert run_job("refresh_job", landing_dir, lake).success
    user = "user-good-0"
    assert "good-0" in sft_requests(lake)
    erase_user(lake, user, KEY, ["raw_logs", "redacted_logs", "tagged_rows", "sft_set"])
    assert run_job("refresh_job", landing_dir, lake).success
    assert "good-0" not in sft_requests(lake)
    assert keyed_hash(user, KEY, "user") not in ids(lake, "sft_set", "user_hash")
    assert not sft_requests(lake) & poisoned  # the rollback still holds


def test_undoing_a_rollback_by_restoring_the_version_before_it_says_to_readmit(poisoned, lake):
    before = lake.open("sft_set").version()
    first = rollback_table(lake, "sft_set", key=KEY, reason="bad week", to_version=1)
    with pytest.raises(RollbackError, match=f"flywheel readmit {first.rollback_id}"):
        rollback_table(lake, "sft_set", key=KEY, reason="undo", to_version=before)
    assert lake.open("sft_set").version() == first.restored_version  # nothing restored
    assert len(lake.read("rollback_audit").to_pylist()) == 1


def test_curation_state_cannot_be_rolled_back(poisoned, lake):
    with pytest.raises(RollbackError, match="roll back tagged_rows or a curated set instead"):
        rollback_table(lake, "curation_state", key=KEY, reason="x", to_version=1)


def test_a_restored_training_set_loses_the_rows_a_held_out_prompt_now_claims(lake):
    def sft(n):
        return pa.Table.from_pylist(
            [
                {"example_id": f"ex-{i}", "normalized_prompt": f"question {i}", "ts": TS}
                for i in range(n)
            ],
            schema=SFT_SET.schema,
        )

    lake.overwrite(SFT_SET, sft(4))
    old = lake.open("sft_set").version()
    lake.overwrite(SFT_SET, sft(3))
    # Since then, "question 3" became a held-out eval prompt.
    case = {"case_id": "c-3", "normalized_prompt": "question 3", "holdout": True, "ts": TS}
    lake.overwrite(EVAL_CASES, pa.Table.from_pylist([case], schema=EVAL_CASES.schema))

    result = rollback_table(lake, "sft_set", key=KEY, reason="x", to_version=old)
    assert result.held_out_rows_removed == 1
    assert sorted(ids(lake, "sft_set", "normalized_prompt")) == [f"question {i}" for i in range(3)]
