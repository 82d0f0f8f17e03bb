"""`flywheel history`, `rollback`, `readmit` and `maintain` as a user runs them."""

from __future__ import annotations

import json

import pytest

from flywheel_assets.training.registry import CANDIDATE, Registry
from flywheel_tests.support.cli import flywheel
from flywheel_tests.support.records import TEST_HASH_KEY
from flywheel_tests.support.rollback import poison, sft_requests
from flywheel_tests.support.runs import run_job
from flywheel_tests.support.training import record

KEY = TEST_HASH_KEY
pytestmark = pytest.mark.usefixtures("hash_key")
ENV = {"FLYWHEEL_HASH_KEY": KEY}


@pytest.fixture
def poisoned(landing_dir, lake):
    bad = poison(landing_dir, lake)
    Registry(lake).register(
        record("ft-poisoned", dataset_versions={"sft_set": 2}),
        status=CANDIDATE,
        reason="test",
        actor="test",
    )
    return bad


def _rows(stdout: str) -> list[list[str]]:
    """Data rows of a printed table (after the header and its rule)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    rule = next(i for i, line in enumerate(lines) if set(line.replace(" ", "")) <= {"-", "+"})
    return [line.split() for line in lines[rule + 1 :]]


def test_history_lists_versions_newest_first_with_their_runs(poisoned, lake):
    out = flywheel("history", "sft_set", "--lake", lake.root, env=ENV)
    assert out.returncode == 0, out.stderr
    rows = _rows(out.stdout)
    assert [r[0] for r in rows] == ["2", "1", "0"]
    # The first build writes the set whole, the next one adds the poisoned rows by key.
    assert [r[3] for r in rows] == ["WRITE", "WRITE", "CREATE"]
    # Each data version names the Dagster run that wrote it.
    data = json.loads(flywheel("history", "sft_set", "--json", "--lake", lake.root).stdout)
    assert [v["version"] for v in data] == [2, 1, 0]
    assert data[0]["rows"] == lake.stats("sft_set").rows
    assert data[0]["run_id"] and data[0]["run_id"] != data[1]["run_id"]
    assert data[0]["run_id"] in out.stdout


def test_rollback_then_readmit_from_the_cli(poisoned, landing_dir, lake):
    trained_on = sft_requests(lake) & poisoned
    out = flywheel(
        "rollback",
        "sft_set",
        "--to-version",
        "1",
        "--reason",
        "prompt-injection campaign",
        "--lake",
        lake.root,
        "--landing",
        str(landing_dir),
        env=ENV,
    )
    assert out.returncode == 0, out.stderr
    assert "sft_set: rolled back from version 2 to 1 (now version 3" in out.stdout
    assert "models trained on the rolled-back versions: ft-poisoned" in out.stdout
    rollback_id = out.stdout.split("rollback id: ")[1].split()[0]
    assert not sft_requests(lake) & poisoned

    audit = flywheel("history", "--rollbacks", "--json", "--lake", lake.root, env=ENV)
    [entry] = json.loads(audit.stdout)
    assert entry["rollback_id"] == rollback_id and entry["action"] == "rollback"
    assert entry["reason"] == "prompt-injection campaign"
    assert entry["affected_models"] == ["ft-poisoned"]
    latest = json.loads(flywheel("history", "sft_set", "--json", "--lake", lake.root).stdout)[0]
    assert latest["operation"] == "RESTORE"

    back = flywheel("readmit", rollback_id, "--reason", "false alarm", "--lake", lake.root, env=ENV)
    assert back.returncode == 0, back.stderr
    assert f"{rollback_id}: " in back.stdout and "re-admitted to sft_set" in back.stdout
    assert run_job("refresh_job", landing_dir, lake).success
    assert sft_requests(lake) & poisoned == trained_on

    again = flywheel("readmit", rollback_id, "--reason", "twice", "--lake", lake.root, env=ENV)
    assert again.returncode != 0 and "already re-admitted" in again.stderr
    listed = flywheel("history", "--rollbacks", "--lake", lake.root, env=ENV).stdout
    assert "readmit" in listed and "false alarm" in listed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "no_such_table"], "no_such_table"),
        (["history"], "name a TABLE, or pass --rollbacks"),
        (["history", "sft_set", "--limit", "0"], "--limit must be at least 1"),
        (["rollback", "sft_set", "--to-version", "9", "--reason", "x"], "there is no version 9"),
        (["rollback", "ingest_ledger", "--to-version", "0", "--reason", "x"], "cannot be rolled"),
        (["rollback", "sft_set", "--to-timestamp", "soon", "--reason", "x"], "not an ISO-8601"),
        (
            ["rollback", "sft_set", "--to-timestamp", "2020-01-01", "--reason", "x"],
            "oldest reachable version",
        ),
        (["readmit", "rb-unknown", "--reason", "x"], "no rollback 'rb-unknown'"),
    ],
)
def test_mistakes_exit_non_zero_with_the_reason(poisoned, landing_dir, lake, args, message):
    before = lake.stats("sft_set").version
    out = flywheel(*args, "--lake", lake.root, env=ENV)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and "dagster._core" not in out.stderr
    assert lake.stats("sft_set").version == before


def test_a_rollback_needs_a_target_and_a_reason(lake):
    out = flywheel("rollback", "sft_set", "--reason", "x", "--lake", lake.root)
    assert out.returncode == 2 and "--to-version" in out.stderr
    out = flywheel("rollback", "sft_set", "--to-version", "1", "--lake", lake.root)
    assert out.returncode == 2 and "--reason" in out.stderr


def test_maintain_compacts_and_keeps_every_row(poisoned, lake):
    rows = {t: lake.stats(t).rows for t in ("raw_logs", "redacted_logs", "sft_set")}
    out = flywheel("maintain", "--min-files", "2", "--lake", lake.root, env=ENV)
    assert out.returncode == 0, out.stderr
    assert "rollback window: 30 days" in out.stdout
    table = {r[0]: r[1:] for r in _rows(out.stdout)}
    assert table["raw_logs"][:2] == ["2", "1"]  # files before, after
    assert {t: lake.stats(t).rows for t in rows} == rows
    assert lake.stats("raw_logs").files == 1
