"""Training snapshots: pinned versions, new rows counted from the Delta log, early stops."""

from __future__ import annotations

import pytest

from flywheel_assets.training.snapshot import (
    TooLittleData,
    last_snapshot,
    new_rows_since,
    rows_at,
    snapshot_for_run,
    take_snapshot,
)
from flywheel_tests.support.training import write_curated

SETS = {"sft_set": 10, "dpo_set": 4, "kto_set": 6, "eval_cases": 5}


def test_rows_at_reads_counts_of_any_version_from_the_log(lake):
    write_curated(lake, {"sft_set": 10})
    write_curated(lake, {"sft_set": 25})
    assert rows_at(lake, "sft_set") == 25
    assert rows_at(lake, "sft_set", version=1) == 10
    assert rows_at(lake, "sft_set", version=-1) == 0
    assert rows_at(lake, "no_such_table") == 0


def test_a_snapshot_pins_the_current_versions(lake):
    versions = write_curated(lake, SETS)
    snap = take_snapshot(lake, run_id="run-a", trigger="manual")
    assert snap.versions == versions
    assert snap.rows == SETS
    assert snap.new_rows == {"sft_set": 10, "dpo_set": 4, "kto_set": 6}
    assert snapshot_for_run(lake, "run-a") == snap
    assert last_snapshot(lake)["snapshot_id"] == snap.snapshot_id


def test_new_rows_count_growth_since_the_last_snapshot(lake):
    write_curated(lake, SETS)
    take_snapshot(lake, run_id="run-a", trigger="manual")
    write_curated(lake, {"sft_set": 30, "dpo_set": 2})  # dpo shrank (say, an erasure)
    _, added = new_rows_since(lake, last_snapshot(lake)["versions"])
    assert added == {"sft_set": 20, "dpo_set": 0, "kto_set": 0}


def test_nothing_new_stops_with_the_counts(lake):
    write_curated(lake, SETS)
    first = take_snapshot(lake, run_id="run-a", trigger="manual")
    with pytest.raises(
        TooLittleData, match=f"0 new curated training rows since snapshot {first.snapshot_id}"
    ):
        take_snapshot(lake, run_id="run-b", trigger="manual")
    assert snapshot_for_run(lake, "run-b") is None
    again = take_snapshot(lake, run_id="run-c", trigger="manual", min_new_rows=0)
    assert again.versions == first.versions


def test_a_minimum_above_the_new_rows_stops(lake):
    write_curated(lake, SETS)
    with pytest.raises(TooLittleData, match=r"20 new .* at least 21 needed"):
        take_snapshot(lake, run_id="run-a", trigger="manual", min_new_rows=21)


def test_an_empty_lake_says_to_run_the_pipeline_first(lake):
    with pytest.raises(TooLittleData, match="run the pipeline"):
        take_snapshot(lake, run_id="run-a", trigger="manual", min_new_rows=0)
