"""The ids of every ingested record outlive the record: a record sent again after retention
removed its raw copy is a duplicate, never a second row downstream; retention ages rows by when
they were received as well as by their own `ts`."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from flywheel_assets.catalog.raw import INGEST_IDS
from flywheel_assets.ingest.checks import DOWNSTREAM_IDS, unique_ids
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.lake.verifications import verify
from flywheel_assets.privacy.retention import LandingAction, expire_raw
from flywheel_tests.support.privacy import build
from flywheel_tests.support.records import feedback, interaction, write_lines
from flywheel_tests.support.runs import refresh


def _ids(lake, table, column):
    rows = lake.read(table, columns=[column])
    return [] if rows is None else sorted(rows[column].to_pylist())


def _expire_everything(lake, zone):
    return expire_raw(
        lake, zone, cutoff=datetime.now(UTC) + timedelta(days=2), landing_action=LandingAction.KEEP
    )


def test_a_record_sent_again_after_its_raw_copy_expired_is_a_duplicate(zone, lake, landing_dir):
    records = [interaction("r1"), feedback("f1", "r1", kind="thumbs_down")]
    write_lines(landing_dir, "interactions/a.jsonl", records[:1])
    write_lines(landing_dir, "feedback/a.jsonl", records[1:])
    ingest_landing(zone, lake)
    build(lake)
    assert _ids(lake, "redacted_logs", "request_id") == ["r1"]

    _expire_everything(lake, zone)
    assert _ids(lake, "raw_logs", "request_id") == []
    write_lines(landing_dir, "interactions/b.jsonl", records[:1])
    write_lines(landing_dir, "feedback/b.jsonl", records[1:])
    report = ingest_landing(zone, lake)
    build(lake)

    assert report.totals()["duplicates"] == 2 and report.totals()["valid"] == 0
    assert _ids(lake, "raw_logs", "request_id") == []
    assert _ids(lake, "redacted_logs", "request_id") == ["r1"]
    assert _ids(lake, "redacted_feedback", "feedback_id") == ["f1"]
    ids = lake.read(INGEST_IDS.name).to_pylist()
    assert sorted((r["stream"], r["id"]) for r in ids) == [
        ("feedback", "f1"),
        ("interactions", "r1"),
    ]


def test_a_lake_from_before_the_id_table_is_seeded_from_its_raw_tables(zone, lake, landing_dir):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1"), interaction("r2")])
    ingest_landing(zone, lake)
    shutil.rmtree(lake.uri(INGEST_IDS.name))  # as a lake written before the table existed

    write_lines(landing_dir, "interactions/b.jsonl", [interaction("r2"), interaction("r3")])
    report = ingest_landing(zone, lake)

    assert (report.totals()["valid"], report.totals()["duplicates"]) == (1, 1)
    assert _ids(lake, INGEST_IDS.name, "id") == ["r1", "r2", "r3"]


def test_a_replayed_batch_adds_its_ids_once(zone, lake, landing_dir):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    ingest_landing(zone, lake)
    ingest_landing(zone, lake)  # nothing new
    assert _ids(lake, INGEST_IDS.name, "id") == ["r1"]


def test_retention_expires_a_row_by_when_it_was_received(zone, lake, landing_dir):
    soon = (datetime.now(UTC) + timedelta(hours=12)).isoformat()
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("ahead", ts=soon)])
    write_lines(landing_dir, "feedback/a.jsonl", [feedback("f-ahead", "ahead", ts=soon)])
    ingest_landing(zone, lake)

    report = expire_raw(
        lake,
        zone,
        cutoff=datetime.now(UTC) + timedelta(hours=1),
        landing_action=LandingAction.KEEP,
    )

    assert report.rows_deleted["raw_logs"] == 1 and report.rows_deleted["raw_feedback"] == 1
    assert _ids(lake, "raw_logs", "request_id") == []


def test_retention_keeps_rows_received_and_stamped_after_the_cutoff(zone, lake, landing_dir):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("new", ts=_now())])
    ingest_landing(zone, lake)
    expire_raw(lake, zone, cutoff=datetime.now(UTC) - timedelta(days=1))
    assert _ids(lake, "raw_logs", "request_id") == ["new"]


def _now() -> str:
    return datetime.now(UTC).isoformat()


@pytest.mark.parametrize(("table", "column"), sorted(DOWNSTREAM_IDS.items()))
def test_the_downstream_check_fails_on_a_repeated_id(table, column, tmp_path):
    from flywheel_assets.lake.tables import Lake

    lake = Lake(str(tmp_path / "lake"))
    write_deltalake(lake.uri(table), pa.table({column: ["a", "b"]}))
    (ok,) = verify(lake, table, [unique_ids(column)])
    assert ok.passed
    write_deltalake(lake.uri(table), pa.table({column: ["a"]}), mode="append")
    (bad,) = verify(lake, table, [unique_ids(column)])
    assert not bad.passed and bad.metadata["sample"] == ["a"]


def test_a_refresh_after_expiry_and_a_resend_passes_every_downstream_check(
    landing_dir, lake, hash_key
):
    records = [interaction("r1"), feedback("f1", "r1", kind="thumbs_down", correction="better")]
    write_lines(landing_dir, "interactions/a.jsonl", records[:1])
    write_lines(landing_dir, "feedback/a.jsonl", records[1:])
    assert refresh(landing_dir, lake).success
    from flywheel_assets.contract.landing import LandingZone

    _expire_everything(lake, LandingZone(str(landing_dir)))
    write_lines(landing_dir, "interactions/b.jsonl", [json.dumps(records[0])])
    write_lines(landing_dir, "feedback/b.jsonl", [json.dumps(records[1])])
    result = refresh(landing_dir, lake)

    checks = {
        (c.asset_key.to_user_string(), c.check_name): c.passed
        for c in result.get_asset_check_evaluations()
    }
    for table in DOWNSTREAM_IDS:
        assert checks[(table, "ids_are_unique")] is True, table
    for table, column in DOWNSTREAM_IDS.items():
        ids = _ids(lake, table, column)
        assert len(ids) == len(set(ids)), table
    assert _ids(lake, "redacted_logs", "request_id") == ["r1"]
