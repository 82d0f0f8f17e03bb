"""A check whose table did not change since it passed is not run again; every other one runs.

Real Delta tables on tmp_path and plain rules: the proof that a check did not read its table is
that its data files are unreadable and it still answers from the pass it recorded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flywheel_assets.lake.tables import Lake, TableSpec
from flywheel_assets.lake.verifications import Check, fingerprint, last_evaluations, verify

SPEC = TableSpec("events", pa.schema([pa.field("id", pa.string()), pa.field("n", pa.int64())]))


class Counting:
    """A rule (ids are unique) that counts the rows it was given, call by call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, rows: pa.Table) -> tuple[bool, dict]:
        self.calls.append(rows.num_rows)
        repeated = rows.num_rows - len(pc.unique(rows["id"]))
        return repeated == 0, {"duplicated_ids": repeated}


def _append(lake: Lake, *ids: str) -> None:
    lake.append(SPEC, pa.table({"id": list(ids), "n": [1] * len(ids)}, schema=SPEC.schema))


def _check(rule: Counting, rules: str = "v1") -> Check:
    return Check("ids_are_unique", ["id"], rule, rules)


def _corrupt_data_files(lake: Lake) -> None:
    """Make every data file of the table unreadable, leaving its log (and version) as it is."""
    files = list(Path(lake.uri(SPEC.name)).glob("*.parquet"))
    assert files
    for path in files:
        path.write_bytes(b"not parquet")


@pytest.fixture
def events(lake: Lake) -> Lake:
    _append(lake, "a", "b")
    return lake


def test_an_unchanged_table_is_not_read_again_and_its_pass_names_the_version(events):
    rule = Counting()
    (first,) = verify(events, SPEC.name, [_check(rule)], run_id="run-1")
    assert first.passed and first.re_run and rule.calls == [2]
    version = events.stats(SPEC.name).version
    assert first.verified.version == version

    _corrupt_data_files(events)  # a read now fails: only a check that reads nothing can answer
    (again,) = verify(events, SPEC.name, [_check(rule)], run_id="run-2")

    assert again.passed and not again.re_run
    assert rule.calls == [2]  # the rule was not called again
    assert again.verified.version == version
    assert again.verified_in_run == "run-1"
    assert again.metadata == {"duplicated_ids": 0}


def test_a_changed_table_is_checked_again_at_its_new_version(events):
    rule = Counting()
    verify(events, SPEC.name, [_check(rule)], run_id="run-1")
    _append(events, "c")

    (outcome,) = verify(events, SPEC.name, [_check(rule)], run_id="run-2")

    assert outcome.re_run and outcome.passed and rule.calls == [2, 3]
    assert outcome.verified.version == events.stats(SPEC.name).version


def test_a_corrupt_table_after_a_change_fails_the_check(events):
    rule = Counting()
    assert verify(events, SPEC.name, [_check(rule)])[0].passed
    _append(events, "a")  # a duplicate

    (outcome,) = verify(events, SPEC.name, [_check(rule)])

    assert outcome.re_run and not outcome.passed
    assert outcome.metadata == {"duplicated_ids": 1}


def test_a_check_that_failed_last_time_runs_again_on_the_same_version(events):
    _append(events, "a")
    rule = Counting()
    assert not verify(events, SPEC.name, [_check(rule)])[0].passed

    (again,) = verify(events, SPEC.name, [_check(rule)])

    assert again.re_run and not again.passed and rule.calls == [3, 3]
    # The failure is recorded without its metadata, so it never answers for a later run.
    recorded = last_evaluations(events, SPEC.name)["ids_are_unique"]
    assert not recorded.passed and recorded.metadata == {}


def test_other_rules_on_the_same_version_run_again(events):
    rule = Counting()
    verify(events, SPEC.name, [_check(rule, fingerprint("code", "v1"))])

    (outcome,) = verify(events, SPEC.name, [_check(rule, fingerprint("code", "v2"))])

    assert outcome.re_run and rule.calls == [2, 2]


def test_a_table_created_again_at_the_same_version_is_checked_again(events):
    rule = Counting()
    verify(events, SPEC.name, [_check(rule)])
    version = events.stats(SPEC.name).version
    shutil.rmtree(events.uri(SPEC.name))
    _append(events, "a", "a")  # the same version number, other rows
    assert events.stats(SPEC.name).version == version

    (outcome,) = verify(events, SPEC.name, [_check(rule)])

    assert outcome.re_run and not outcome.passed


def test_each_check_on_a_table_keeps_its_own_record(events):
    unique, counted = Counting(), Counting()
    checks = [_check(unique), Check("counted", ["id", "n"], counted, "v1")]
    verify(events, SPEC.name, checks)
    assert unique.calls == [2] and counted.calls == [2]

    # Running one of them alone keeps the other's record.
    verify(events, SPEC.name, [Check("counted", ["id", "n"], counted, "v2")])
    assert set(last_evaluations(events, SPEC.name)) == {"ids_are_unique", "counted"}
    (outcome,) = verify(events, SPEC.name, [_check(unique)])
    assert not outcome.re_run


def test_a_missing_table_fails_without_a_record(lake):
    (outcome,) = verify(lake, SPEC.name, [_check(Counting())])
    assert not outcome.passed and outcome.verified is None
    assert last_evaluations(lake, SPEC.name) == {}
