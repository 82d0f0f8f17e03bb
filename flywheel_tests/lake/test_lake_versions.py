"""Versions of one table: history, restore, restorability, compaction and vacuum within the window.

Modelled on delta-rs's own restore, history and vacuum tests: write versions, act, read back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from flywheel_assets.lake.maintenance import maintain
from flywheel_assets.lake.tables import Lake, TableSpec
from flywheel_assets.lake.versions import (
    VersionUnavailable,
    check_restorable,
    history,
    is_restorable,
    oldest_restorable,
    restore,
    version_at,
)

SPEC = TableSpec("events", pa.schema([pa.field("id", pa.string()), pa.field("n", pa.int64())]))


def _rows(*ids: str) -> pa.Table:
    return pa.table({"id": list(ids), "n": list(range(len(ids)))}, schema=SPEC.schema)


def _content(lake: Lake, version: int | None = None) -> list[dict]:
    return sorted(lake.read(SPEC.name, version=version).to_pylist(), key=lambda r: r["id"])


@pytest.fixture
def versions(lake: Lake) -> Lake:
    """v0 create, v1 append a b, v2 append c, v3 overwrite x, v4 append y z."""
    lake = Lake(lake.root, commit_info={"dagster.run_id": "run-42"})
    lake.append(SPEC, _rows("a", "b"), metadata={"flywheel.operation": "ingest"})
    lake.append(SPEC, _rows("c"))
    lake.overwrite(SPEC, _rows("x"))
    lake.append(SPEC, _rows("y", "z"))
    return lake


def test_history_lists_every_version_with_rows_added_removed_and_the_run(versions):
    rows = history(versions, SPEC.name)
    assert [v.version for v in rows] == [4, 3, 2, 1, 0]
    by_version = {v.version: v for v in rows}
    assert (by_version[1].rows, by_version[1].rows_added, by_version[1].rows_removed) == (2, 2, 0)
    assert by_version[1].detail == "ingest"
    # An overwrite removes every row and adds the new ones.
    assert (by_version[3].rows, by_version[3].rows_added, by_version[3].rows_removed) == (1, 1, 3)
    assert by_version[4].rows == 3 and by_version[4].operation == "WRITE"
    assert {v.run_id for v in rows} == {"run-42"}
    assert history(versions, SPEC.name, limit=2)[-1].version == 3


def test_restore_commits_a_new_version_equal_to_the_old_one_and_history_says_restore(versions):
    expected = _content(versions, version=2)
    new_version = restore(versions, SPEC.name, 2, metadata={"flywheel.reason": "bad week"})
    assert new_version == 5
    assert _content(versions) == expected
    dt = DeltaTable(versions.uri(SPEC.name))
    dt.load_as_version(2)
    assert sorted(dt.to_pyarrow_table().to_pylist(), key=lambda r: r["id"]) == expected
    latest = history(versions, SPEC.name, limit=1)[0]
    assert latest.operation == "RESTORE" and latest.detail == "to version 2"
    assert (latest.rows, latest.rows_added, latest.rows_removed) == (3, 0, 0)
    assert DeltaTable(versions.uri(SPEC.name)).history(1)[0]["flywheel.reason"] == "bad week"


def test_version_at_a_time_is_the_last_version_committed_by_then(versions):
    commits = {c["version"]: c["timestamp"] for c in DeltaTable(versions.uri(SPEC.name)).history()}
    at_two = datetime.fromtimestamp(commits[2] / 1000, UTC)
    assert version_at(versions, SPEC.name, at_two) == 2
    assert version_at(versions, SPEC.name, at_two + timedelta(microseconds=500)) == 2
    assert version_at(versions, SPEC.name, datetime.now(UTC) + timedelta(days=1)) == 4
    with pytest.raises(VersionUnavailable, match="no version at or before"):
        version_at(versions, SPEC.name, at_two - timedelta(days=365))
    with pytest.raises(ValueError, match="no time zone"):
        version_at(versions, SPEC.name, datetime(2026, 11, 1))


def test_a_version_whose_files_were_vacuumed_is_refused_naming_the_oldest_restorable(versions):
    dt = DeltaTable(versions.uri(SPEC.name))
    dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    assert not is_restorable(versions, SPEC.name, 1)
    # v3 overwrote everything, so v3 is the oldest version whose files all still exist.
    assert oldest_restorable(versions, SPEC.name) == 3
    with pytest.raises(VersionUnavailable, match="the oldest restorable version is 3"):
        restore(versions, SPEC.name, 1)
    assert _content(versions) == _content(versions, version=4)  # nothing was committed


def test_versions_that_never_existed_are_refused(versions):
    with pytest.raises(VersionUnavailable, match="versions 0 to 4; there is no version 9"):
        check_restorable(versions, SPEC.name, 9)
    with pytest.raises(VersionUnavailable, match="no table 'missing'"):
        history(versions, "missing")


def test_compaction_keeps_every_row_and_leaves_fewer_files(versions):
    before = _content(versions)
    report = maintain(versions, SPEC.name, window_days=30, min_files=2)
    assert report.compacted and report.files_before == 2 and report.files_after == 1
    assert _content(versions) == before and report.rows == 3
    assert history(versions, SPEC.name, limit=1)[0].operation == "OPTIMIZE"


def test_vacuum_inside_the_window_keeps_every_version_restorable(versions):
    contents = {v: _content(versions, version=v) for v in range(5)}
    maintain(versions, SPEC.name, window_days=30, min_files=1)
    for version, expected in contents.items():
        assert is_restorable(versions, SPEC.name, version), version
        restore(versions, SPEC.name, version)
        assert _content(versions) == expected, version


def test_maintenance_sets_retention_properties_to_the_window(versions):
    report = maintain(versions, SPEC.name, window_days=7, min_files=99)
    config = DeltaTable(versions.uri(SPEC.name)).metadata().configuration
    assert config["delta.logRetentionDuration"] == "interval 7 days"
    assert config["delta.deletedFileRetentionDuration"] == "interval 7 days"
    assert not report.compacted and report.properties_set
    # Already aligned: the second pass changes nothing.
    assert maintain(versions, SPEC.name, window_days=7, min_files=99).properties_set == {}
    with pytest.raises(ValueError, match="at least 1 day"):
        maintain(versions, SPEC.name, window_days=0)
    assert maintain(versions, "missing", window_days=7) is None


def test_new_tables_take_the_lakes_window(tmp_path):
    lake = Lake(str(tmp_path / "lake"), retention_days=9)
    lake.ensure(SPEC)
    config = DeltaTable(lake.uri(SPEC.name)).metadata().configuration
    assert config["delta.deletedFileRetentionDuration"] == "interval 9 days"


def test_maintenance_commits_do_not_hide_the_last_builds_metadata(versions):
    versions.overwrite(SPEC, _rows("q"), metadata={"flywheel.fingerprint": "abc"})
    data_version = versions.data_version(SPEC.name)
    maintain(versions, SPEC.name, window_days=3, min_files=1)
    assert DeltaTable(versions.uri(SPEC.name)).version() > data_version
    assert versions.last_commit_metadata(SPEC.name)["flywheel.fingerprint"] == "abc"
    assert versions.data_version(SPEC.name) == data_version


def test_a_filtered_read_works_after_a_delete_rewrote_the_files(tmp_path):
    # A Delta delete rewrites files with strings stored as string_view, into which Arrow cannot
    # push a filter on a string column; the read must still return exactly the matching rows.
    import pyarrow.compute as pc

    lake = Lake(str(tmp_path))
    spec = TableSpec("t", pa.schema([("id", pa.string()), ("n", pa.int64())]))
    lake.append(spec, pa.table({"id": [f"r{i}" for i in range(50)], "n": list(range(50))}))
    lake.open("t").delete("id = 'r5'")
    wanted = pc.field("id").isin(pa.array(["r1", "r5", "r7"]))
    assert lake.read("t", filter=wanted, columns=["n"])["n"].to_pylist() == [1, 7]
    assert lake.read("t", filter=wanted).column_names == ["id", "n"]


def test_upsert_replaces_rows_by_key_and_adds_new_ones_in_one_commit(tmp_path):
    lake = Lake(str(tmp_path))
    spec = TableSpec("t", pa.schema([("id", pa.string()), ("n", pa.int64())]))
    lake.overwrite(spec, pa.table({"id": ["a", "b", "c"], "n": [1, 2, 3]}, schema=spec.schema))
    version = lake.open("t").version()
    lake.upsert(spec, pa.table({"id": ["b", "d"], "n": [20, 40]}, schema=spec.schema), key="id")
    assert lake.open("t").version() == version + 1
    rows = lake.read("t").sort_by("id").to_pylist()
    assert rows == [
        {"id": "a", "n": 1},
        {"id": "b", "n": 20},
        {"id": "c", "n": 3},
        {"id": "d", "n": 40},
    ]


def test_writers_creating_the_same_table_at_once_all_get_it(tmp_path):
    """Concurrent first runs race to create a table: each gets the one that was created."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from flywheel_assets.catalog.raw import INGEST_IDS
    from flywheel_assets.lake.tables import Lake

    for attempt in range(5):
        lake = Lake(str(tmp_path / f"lake{attempt}"))
        start = Barrier(6)

        def create(_: int, lake=lake, start=start) -> list[str]:
            start.wait()
            return lake.ensure(INGEST_IDS).schema().to_arrow().names

        with ThreadPoolExecutor(6) as pool:
            names = list(pool.map(create, range(6)))  # none raised
        assert names == [INGEST_IDS.schema.names] * 6
        assert lake.read(INGEST_IDS.name).num_rows == 0
