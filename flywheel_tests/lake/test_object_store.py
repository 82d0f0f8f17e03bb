"""The lake on an S3-compatible object store (SeaweedFS on loopback): the pipeline, rollback,
erasure and maintenance unchanged, and two concurrent writers on one table."""

from __future__ import annotations

import multiprocessing
import os
import uuid

import pyarrow as pa
import pytest

from flywheel_assets.collector.server import start_collector
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.governance.hashing import keyed_hash
from flywheel_assets.lake.maintenance import maintain
from flywheel_assets.lake.tables import Lake, TableSpec
from flywheel_assets.lake.versions import history
from flywheel_assets.versioning.rollback import rollback_table
from flywheel_tests.support.cli import flywheel
from flywheel_tests.support.object_store import BUCKET, start_object_store
from flywheel_tests.support.records import TEST_HASH_KEY, interaction
from flywheel_tests.support.rollback import POISON, QUESTIONS, sft_requests, write_week
from flywheel_tests.support.runs import run_job

KEY = TEST_HASH_KEY
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("hash_key")]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("seaweedfs")
    running = start_object_store(root / "data", root / "weed.log")
    yield running
    running.stop()


@pytest.fixture
def s3_lake(store):
    return Lake(f"s3://{BUCKET}/{uuid.uuid4().hex}", store.options)


def _job(name, landing_dir, lake: Lake, **config):
    resources = {"lake": {"config": {"root": lake.root, "storage_options": lake.options()}}}
    return run_job(name, landing_dir, lake, {"resources": resources, **config})


def test_the_pipeline_rollback_erasure_and_maintenance_run_on_an_object_store(landing_dir, s3_lake):
    write_week(landing_dir, "good", QUESTIONS, 10)
    assert _job("refresh_job", landing_dir, s3_lake).success
    bad = set(write_week(landing_dir, "bad", POISON, 17))
    assert _job("refresh_job", landing_dir, s3_lake).success
    assert s3_lake.stats("raw_logs").rows == len(QUESTIONS) + len(POISON)
    assert sft_requests(s3_lake) & bad

    result = rollback_table(
        s3_lake, "sft_set", key=KEY.encode(), reason="poisoned week", to_version=1
    )
    assert result.restored_version == 3
    assert history(s3_lake, "sft_set", limit=1)[0].operation == "RESTORE"
    assert _job("refresh_job", landing_dir, s3_lake).success
    assert not sft_requests(s3_lake) & bad

    user_hash = keyed_hash("user-good-0", KEY.encode(), "user")  # run config never holds the id
    erase = {"ops": {"erase_user_rows": {"config": {"user_hash": user_hash}}}}
    assert _job("erase_user_job", landing_dir, s3_lake, **erase).success
    assert "good-0" not in s3_lake.read("raw_logs")["request_id"].to_pylist()
    assert "good-0" not in s3_lake.read("redacted_logs")["request_id"].to_pylist()

    rows = s3_lake.stats("raw_logs").rows
    report = maintain(s3_lake, "raw_logs", window_days=30, min_files=2, vacuum=True)
    assert report.files_after == 1 and report.rows == rows == s3_lake.read("raw_logs").num_rows


def test_the_cli_runs_against_an_object_store_from_environment_variables(landing_dir, store):
    write_week(landing_dir, "good", QUESTIONS, 10)
    root = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    env = {k: v for k, v in store.options.items() if k.startswith("AWS_")}
    env.update(AWS_CONDITIONAL_PUT="etag", FLYWHEEL_HASH_KEY=KEY)
    out = flywheel("run", "--landing", str(landing_dir), "--lake", root, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    tables = flywheel("tables", "--lake", root, env=env)
    assert tables.returncode == 0, tables.stderr[-2000:]
    assert "raw_logs" in tables.stdout and "sft_set" in tables.stdout


SPEC = TableSpec("events", pa.schema([("writer", pa.string()), ("id", pa.string())]))


def _write_many(root: str, options: dict, writer: str, batches: int, rows: int) -> None:
    lake = Lake(root, options)
    for b in range(batches):
        ids = [f"{writer}-{b}-{i}" for i in range(rows)]
        lake.append(SPEC, pa.table({"writer": [writer] * rows, "id": ids}, schema=SPEC.schema))


def test_two_concurrent_writers_lose_and_duplicate_nothing(store):
    root = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    lake = Lake(root, store.options)
    lake.ensure(SPEC)
    ctx = multiprocessing.get_context("spawn")
    writers = [
        ctx.Process(target=_write_many, args=(root, store.options, name, 15, 100))
        for name in ("a", "b")
    ]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=300)
    assert [w.exitcode for w in writers] == [0, 0]
    ids = lake.read("events")["id"].to_pylist()
    assert len(ids) == 2 * 15 * 100 and len(set(ids)) == len(ids)
    assert lake.stats("events").version == 30  # every append its own commit, none lost


@pytest.mark.parametrize(
    "options", [{"AWS_S3_ALLOW_UNSAFE_RENAME": "true"}, {"aws_s3_allow_unsafe_rename": "TRUE"}]
)
def test_unsafe_rename_is_refused(options):
    with pytest.raises(ValueError, match="unsafe renames let concurrent writers"):
        Lake("s3://bucket/lake", options)


def test_unsafe_rename_from_the_environment_is_refused(monkeypatch):
    monkeypatch.setenv("AWS_S3_ALLOW_UNSAFE_RENAME", "true")
    with pytest.raises(ValueError, match="AWS_S3_ALLOW_UNSAFE_RENAME=true is refused"):
        Lake("s3://bucket/lake")
    assert os.environ["AWS_S3_ALLOW_UNSAFE_RENAME"] == "true"


def test_the_collector_lands_on_the_object_store_and_ingestion_reads_it(
    store, s3_lake, tmp_path, monkeypatch
):
    for name, value in store.options.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)  # the collector process and pyarrow read these
    landing = f"s3://{BUCKET}/landing-{uuid.uuid4().hex}"
    token = "object-store-token-0123456789"
    running = start_collector(landing, token, "--spool-dir", str(tmp_path / "spool"))
    try:
        batch = [interaction(f"r{i}") for i in range(5)]
        assert running.post("/v1/interactions", batch) == (
            202,
            {"accepted": 5, "ids": [f"r{i}" for i in range(5)]},
        )
    finally:
        running.stop()
    [landed] = LandingZone(landing).list_files("interactions")
    assert landed.path.startswith("interactions/collector-")
    assert _job("ingest_job", landing, s3_lake).success
    assert sorted(s3_lake.read("raw_logs")["request_id"].to_pylist()) == [f"r{i}" for i in range(5)]
