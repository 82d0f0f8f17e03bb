"""A curated set rolled back on the sample stays as restored: a refresh with nothing new keeps
the same rows with the same content ids, for every curated set, through real Dagster runs.

Rows a rollback took away leave the set before its global steps (best per prompt, near-duplicate
collapse, caps), so they cannot knock a restored row out of its group."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from flywheel_assets.curation.datasets import CurationPolicy
from flywheel_assets.curation.local import STATE
from flywheel_assets.curation.selection import select
from flywheel_assets.lake.tables import Lake
from flywheel_assets.sample import write_sample_landing
from flywheel_assets.versioning.rollback import rollback_table
from flywheel_tests.support.records import TEST_HASH_KEY
from flywheel_tests.support.runs import run_job

KEY = TEST_HASH_KEY.encode()
CURATED = ("sft_set", "dpo_set", "kto_set", "eval_cases", "review_queue")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """The sample refreshed twice (its last part files land second), then once more with nothing
    new; returns the folder holding `landing` and `lake`."""
    root = tmp_path_factory.mktemp("sample")
    landing, aside = root / "landing", root / "aside"
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    write_sample_landing(landing, n_interactions=2000, start=today - timedelta(days=14))
    for stream in landing.iterdir():
        last = sorted(stream.iterdir())[-1]
        (aside / stream.name).mkdir(parents=True)
        shutil.move(last, aside / stream.name / last.name)
    lake = Lake(str(root / "lake"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FLYWHEEL_HASH_KEY", TEST_HASH_KEY)
        assert run_job("refresh_job", landing, lake).success
        for stream in aside.iterdir():
            for path in stream.iterdir():
                shutil.move(path, landing / stream.name / path.name)
        assert run_job("refresh_job", landing, lake).success
        assert run_job("refresh_job", landing, lake).success
    return root


@pytest.fixture
def copy(sample, tmp_path, hash_key) -> tuple[Path, Lake]:
    shutil.copytree(sample, tmp_path / "s")
    return tmp_path / "s" / "landing", Lake(str(tmp_path / "s" / "lake"))


def content(lake: Lake, table: str) -> dict[str, str]:
    """Each row's id (a content id) and a digest of the rest of the row but its build stamps."""
    rows = lake.read(table).drop_columns(["_curated_at", "source_versions"])
    key = rows.schema.names[0]
    return {r[key]: repr(sorted(r.items())) for r in rows.to_pylist()}


def first_build_version(lake: Lake, table: str) -> int:
    return min(
        c["version"] for c in lake.open(table).history() if c.get("flywheel.operation") == "curate"
    )


@pytest.mark.parametrize("table", CURATED)
def test_a_restored_set_is_kept_by_a_refresh_with_nothing_new(copy, table):
    landing, lake = copy
    version = first_build_version(lake, table)
    assert lake.read(table, version=version).num_rows < lake.read(table).num_rows
    others = {t: content(lake, t) for t in CURATED if t != table}

    result = rollback_table(lake, table, key=KEY, reason="a bad refresh", to_version=version)
    assert result.ids_count > 0
    restored = content(lake, table)
    assert run_job("refresh_job", landing, lake).success
    assert content(lake, table) == restored
    # The other sets are built again from the same inputs: unchanged too.
    assert {t: content(lake, t) for t in others} == others
    # ...and the next refresh has nothing to do.
    versions = {t: lake.open(t).version() for t in CURATED}
    assert run_job("refresh_job", landing, lake).success
    assert {t: lake.open(t).version() for t in CURATED} == versions
    assert content(lake, table) == restored


def test_two_rollbacks_of_a_set_in_a_row_keep_the_last_restore(copy):
    landing, lake = copy
    rollback_table(
        lake, "sft_set", key=KEY, reason="first", to_version=lake.open("sft_set").version() - 1
    )
    first = first_build_version(lake, "sft_set")
    rollback_table(lake, "sft_set", key=KEY, reason="further back", to_version=first)
    restored = content(lake, "sft_set")
    assert run_job("refresh_job", landing, lake).success
    assert content(lake, "sft_set") == restored


def state_row(request_id: str, prompt: str, rank: int, ts: int) -> dict:
    return {
        "set": "sft",
        "row_id": f"ex-{request_id}",
        "request_id": request_id,
        "sub": 0,
        "normalized_prompt": prompt,
        "rank": rank,
        "confidence": 1.0,
        "ts": datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=ts),
        "user_hash": f"user-{request_id}",
        "holdout": False,
        "source_request_ids": [request_id],
    }


def test_an_excluded_row_takes_no_part_in_its_near_duplicate_group():
    prompt = "how do i reset the router to factory settings"
    state = pl.DataFrame(
        [state_row("old", prompt, 1, 0), state_row("new", prompt + "?", 2, 5)], schema=STATE
    )
    policy = CurationPolicy(holdout_share=0.0, min_rows_per_user=5)
    assert select(state, policy).ids["sft_set"]["request_id"].to_list() == ["new"]
    chosen = select(state, policy, {"sft_set": ["new"]})
    # Without "new", "old" is the best of the group, as it was before "new" arrived.
    assert chosen.ids["sft_set"]["request_id"].to_list() == ["old"]
    assert chosen.left_out == {"sft_set": 1}
