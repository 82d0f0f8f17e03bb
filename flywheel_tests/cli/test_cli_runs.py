"""Every `flywheel` command that changes data runs a Dagster job, so the change is a run in the
instance the UI reads; `flywheel tables` and maintenance cover every table of the catalog; and a
run needs no write access to the landing zone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import dagster as dg
import pytest

from flywheel_assets import catalog
from flywheel_assets.sample import write_sample_landing
from flywheel_assets.settings import open_lake
from flywheel_assets.training.registry import CANDIDATE, ModelRecord, Registry
from flywheel_tests.support.cli import ROOT, flywheel, parse_table


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """A sample lake after one `flywheel run`, with the runs recorded in its own instance."""
    root = tmp_path_factory.mktemp("cli_runs")
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    landing, lake = root / "landing", root / "lake"
    write_sample_landing(landing, n_interactions=300, seed=5)
    env = {"DAGSTER_HOME": str(home)}
    out = flywheel("run", "--landing", str(landing), "--lake", str(lake), env=env)
    assert out.returncode == 0, out.stderr
    return {"landing": landing, "lake": lake, "home": home, "env": env}


def _register(lake_root: Path, model_id: str) -> None:
    Registry(open_lake(str(lake_root))).register(
        ModelRecord(
            model_id=model_id,
            base_model="tiny",
            adapter_uri=f"/models/{model_id}",
            method="sft",
            hyperparameters={},
            snapshot_id="snap",
            dataset_versions={"sft_set": 1},
            metrics={},
            trigger="manual",
            run_key="",
            run_id="r",
        ),
        status=CANDIDATE,
        reason="for the test",
        actor="test",
    )


@pytest.mark.slow
def test_every_cli_change_is_a_run_in_the_instance(sample_run):
    where = ["--lake", str(sample_run["lake"])]
    env = sample_run["env"]
    _register(sample_run["lake"], "m-cli-runs")
    commands = {
        "promote_model_job": ["promote", "m-cli-runs", "--reason", "test"],
        "table_maintenance_job": ["maintain", "--min-files", "2"],
        "rollback_table_job": ["rollback", "review_queue", "--to-version", "0", "--reason", "t"],
        "erase_user_job": ["forget", "user-0001", "--reason", "ticket 1"],
        "retention_job": ["expire", "--days", "3650", "--landing-files", "keep"],
    }
    for args in commands.values():
        out = flywheel(*args, *where, env=env)
        assert out.returncode == 0, (args, out.stderr)
    audit = json.loads(flywheel("history", "--rollbacks", "--json", *where, env=env).stdout)
    (rollback_id,) = [r["rollback_id"] for r in audit if r["table"] == "review_queue"]
    readmit = flywheel("readmit", rollback_id, "--reason", "back", *where, env=env)
    assert readmit.returncode == 0, readmit.stderr
    assert readmit.stdout.startswith(f"{rollback_id}: ")

    os.environ["DAGSTER_HOME"] = str(sample_run["home"])
    try:
        with dg.DagsterInstance.get() as instance:
            runs = instance.get_runs()
            jobs = {r.job_name: r.status for r in runs}
            readmit_runs = instance.get_runs(dg.RunsFilter(job_name="readmit_rollback_job"))
            event = instance.get_latest_materialization_event(dg.AssetKey("model_registry_audit"))
    finally:
        del os.environ["DAGSTER_HOME"]
    for job in [*commands, "refresh_job", "readmit_rollback_job"]:
        assert jobs.get(job) == dg.DagsterRunStatus.SUCCESS, (job, jobs)
    assert len(readmit_runs) == 1
    # The promotion's audit row is a materialization of the audit table the UI shows.
    assert event is not None and event.run_id in {r.run_id for r in runs}


@pytest.mark.slow
def test_tables_and_maintenance_cover_every_catalog_table(sample_run):
    where = ["--lake", str(sample_run["lake"])]
    _register(sample_run["lake"], "m-tables")
    listed = parse_table(flywheel("tables", *where).stdout, "table")
    assert list(listed) == [t.name for t in catalog.TABLES]
    assert listed["model_registry_audit"][0] != "-"  # the audit table exists and is listed

    out = flywheel("maintain", "--min-files", "1", *where)
    assert out.returncode == 0, out.stderr
    maintained = parse_table(out.stdout, "table")
    assert "model_registry_audit" in maintained
    lake = open_lake(str(sample_run["lake"]))
    existing = {t.name for t in catalog.TABLES if lake.open(t.name) is not None}
    assert set(maintained) == existing


def _unprivileged() -> list[str]:
    """A prefix that runs a command without write access to files it does not own."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop write access")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.slow
def test_a_run_works_on_a_read_only_landing_zone():
    # Outside pytest's private tmp folder, so an unprivileged process can reach it.
    root = Path(tempfile.mkdtemp(prefix="flywheel-ro-"))
    try:
        landing, lake = root / "landing", root / "lake"
        write_sample_landing(landing, n_interactions=300, seed=3)
        root.chmod(0o755)
        for writable in (lake, root / "home"):
            writable.mkdir()
            writable.chmod(0o777)
        for path in [landing, *landing.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        before = sorted((p.relative_to(landing), p.stat().st_size) for p in landing.rglob("*"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "DAGSTER"))}
        env.update(HOME=str(root / "home"), PYTHONDONTWRITEBYTECODE="1")
        cmd = [sys.executable, "-m", "flywheel_assets.cli", "run"]
        args = ["--landing", str(landing), "--lake", str(lake)]
        out = subprocess.run(
            [*_unprivileged(), *cmd, *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=ROOT,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        # The sample trips the drift monitor: its events went to the lake, not the landing zone.
        assert "drift_monitor stored" in out.stdout
        after = sorted((p.relative_to(landing), p.stat().st_size) for p in landing.rglob("*"))
        assert after == before
        events = open_lake(str(lake)).read("drift_events", columns=["event_id", "_source_file"])
        from_monitor = [
            i for i, f in zip(*events.to_pydict().values(), strict=True) if "_drift_monitor" in f
        ]
        assert from_monitor and all(i.startswith("drift-monitor-") for i in from_monitor)
    finally:
        for path in [root, *root.rglob("*")]:
            path.chmod(0o777) if path.is_dir() else None
        shutil.rmtree(root)
