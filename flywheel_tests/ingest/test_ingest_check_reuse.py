"""The bronze checks through Dagster: a run that changed no table reports each pass it earned on
that version without reading the table, and a table that changed is checked again."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from flywheel_tests.support.records import feedback, interaction, write_lines
from flywheel_tests.support.runs import run_ingest


def _evaluations(result) -> dict[tuple[str, str], object]:
    return {
        (c.asset_key.to_user_string(), c.check_name): c
        for c in result.get_asset_check_evaluations()
    }


def _meta(evaluation) -> dict:
    return {k: v.value for k, v in evaluation.metadata.items()}


def _landed(landing_dir: Path) -> None:
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1"), interaction("r2")])
    write_lines(landing_dir, "feedback/a.jsonl", [feedback("f1", "r1")])


def test_a_run_that_changed_nothing_reports_the_earlier_passes(landing_dir, lake):
    _landed(landing_dir)
    first = run_ingest(landing_dir, lake)
    assert first.success
    assert all(_meta(c)["re_run"] for c in _evaluations(first).values())

    # The raw tables' data files become unreadable; their logs and versions stay as they were.
    for path in Path(lake.uri("raw_logs")).glob("*.parquet"):
        path.write_bytes(b"not parquet")
    second = run_ingest(landing_dir, lake)

    assert second.success
    evaluations = _evaluations(second)
    assert len(evaluations) == 9 and all(c.passed for c in evaluations.values())
    unique = _meta(evaluations[("raw_logs", "ids_are_unique")])
    assert unique["re_run"] is False
    assert unique["verified_version"] == lake.stats("raw_logs").version
    assert unique["verified_in_run"] == first.run_id
    assert unique["duplicated_ids"] == 0  # the metadata of the pass it reports
    assert not any(_meta(c)["re_run"] for c in evaluations.values())


def test_a_table_written_behind_the_pipeline_is_checked_again_and_fails(landing_dir, lake):
    _landed(landing_dir)
    assert run_ingest(landing_dir, lake).success
    write_deltalake(lake.uri("raw_logs"), lake.read("raw_logs").slice(0, 1), mode="append")

    result = run_ingest(landing_dir, lake)

    assert not result.success
    evaluations = _evaluations(result)
    unique = evaluations[("raw_logs", "ids_are_unique")]
    assert not unique.passed
    assert _meta(unique)["re_run"] is True
    assert _meta(unique)["verified_version"] == lake.stats("raw_logs").version
    # The other tables did not change: their checks report the earlier passes.
    assert _meta(evaluations[("raw_feedback", "ids_are_unique")])["re_run"] is False


def test_a_check_that_failed_last_time_runs_again(landing_dir, lake):
    _landed(landing_dir)
    assert run_ingest(landing_dir, lake).success
    bad = lake.read("raw_logs").to_pylist()[0] | {"request_id": "r9", "model_version": None}
    write_deltalake(
        lake.uri("raw_logs"),
        pa.Table.from_pylist([bad], schema=lake.read("raw_logs").schema),
        mode="append",
    )
    assert not run_ingest(landing_dir, lake).success

    again = run_ingest(landing_dir, lake)  # nothing changed since it failed

    assert not again.success
    required = _evaluations(again)[("raw_logs", "required_fields_present")]
    assert not required.passed and _meta(required)["re_run"] is True
    assert _meta(required)["missing"] == {"model_version": 1}
    # Its neighbour on the same table passed on this version and is not run again.
    assert _meta(_evaluations(again)[("raw_logs", "ids_are_unique")])["re_run"] is False
