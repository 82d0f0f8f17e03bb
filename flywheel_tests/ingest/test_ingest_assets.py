"""The ingest stage materialized through Dagster, in-process, on real Delta tables."""

from __future__ import annotations

import pytest
from deltalake import write_deltalake

from flywheel_assets.ingest.assets import BRONZE_TABLES
from flywheel_tests.support.records import feedback, interaction, write_lines
from flywheel_tests.support.runs import materializations, run_ingest


def test_materialization_metadata_carries_version_rows_and_uri(landing_dir, lake):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1"), interaction("r2"), b"?"])
    write_lines(landing_dir, "feedback/a.jsonl", [feedback("f1", "r1")])

    result = run_ingest(landing_dir, lake)

    assert result.success
    meta = materializations(result)
    assert set(meta) == set(BRONZE_TABLES)
    raw = meta["raw_logs"]
    assert raw["delta_version"] == lake.stats("raw_logs").version
    assert (raw["dagster/row_count"], raw["rows_added"]) == (2, 2)
    assert raw["table_uri"] == lake.uri("raw_logs")
    assert (raw["lines_read"], raw["valid"], raw["quarantined"], raw["duplicates"]) == (3, 2, 1, 0)
    assert meta["quarantine"]["reasons"] == {"not_json": 1}
    checks = {
        (c.asset_key.to_user_string(), c.check_name): c.passed
        for c in result.get_asset_check_evaluations()
    }
    assert checks[("raw_logs", "ids_are_unique")] is True
    assert checks[("ingest_ledger", "every_line_accounted_for")] is True
    assert all(checks.values())


def test_second_materialization_reports_nothing_added(landing_dir, lake):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    run_ingest(landing_dir, lake)
    meta = materializations(run_ingest(landing_dir, lake))
    assert meta["raw_logs"]["rows_added"] == 0
    assert meta["ingest_ledger"]["batches"] == []


def test_a_duplicate_written_behind_the_pipeline_fails_the_blocking_check(landing_dir, lake):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1"), interaction("r2")])
    run_ingest(landing_dir, lake)
    write_deltalake(lake.uri("raw_logs"), lake.read("raw_logs").slice(0, 1), mode="append")

    result = run_ingest(landing_dir, lake)

    assert not result.success
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert [(c.asset_key.to_user_string(), c.check_name) for c in failed] == [
        ("raw_logs", "ids_are_unique")
    ]
    assert failed[0].metadata["sample"].value == ["r1"]


def test_a_blank_required_field_fails_the_required_fields_check(landing_dir, lake):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    run_ingest(landing_dir, lake)
    bad = lake.read("raw_logs").to_pylist()[0] | {"request_id": "r9", "model_version": None}
    import pyarrow as pa

    write_deltalake(
        lake.uri("raw_logs"),
        pa.Table.from_pylist([bad], schema=lake.read("raw_logs").schema),
        mode="append",
    )
    result = run_ingest(landing_dir, lake)
    failed = {c.check_name: c for c in result.get_asset_check_evaluations() if not c.passed}
    assert set(failed) == {"required_fields_present"}
    assert failed["required_fields_present"].metadata["missing"].value == {"model_version": 1}


@pytest.mark.parametrize("table", BRONZE_TABLES)
def test_every_bronze_table_exists_after_the_first_run(landing_dir, lake, table):
    run_ingest(landing_dir, lake)
    assert lake.stats(table) is not None
