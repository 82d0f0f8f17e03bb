"""A process killed with SIGKILL in the middle of ingestion loses nothing and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from flywheel_assets.catalog.raw import LEDGER
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.lake.tables import Lake
from flywheel_tests.support.records import feedback, interaction, write_lines

TABLES = ["raw_logs", "raw_feedback", "quarantine", LEDGER.name]
INGEST = """
import sys
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.ingest.pipeline import IngestSettings, ingest_landing
from flywheel_assets.lake.tables import Lake
ingest_landing(LandingZone(sys.argv[1]), Lake(sys.argv[2]),
               settings=IngestSettings(chunk_lines=2000, max_batch_bytes=600_000))
"""


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("landing")
    for n in range(8):
        lines = [interaction(f"r{n}-{i}", response="y" * 300) for i in range(1500)]
        lines += [interaction(f"r{n}-7"), b"{broken", interaction(f"r{max(n - 1, 0)}-3")]
        write_lines(root, f"interactions/{n:02d}.jsonl", lines)
        write_lines(
            root,
            f"feedback/{n:02d}.jsonl",
            [feedback(f"f{n}-{i}", f"r{n}-{i}") for i in range(500)],
        )
    return root


@pytest.fixture(scope="module")
def reference(landing, tmp_path_factory) -> dict:
    lake = Lake(str(tmp_path_factory.mktemp("reference")))
    ingest_landing(LandingZone(str(landing)), lake)
    return content(lake)


def content(lake: Lake) -> dict:
    ledger = lake.read(LEDGER.name)
    done = ledger.filter(pc.equal(ledger["status"], "done"))
    ledger_cols = ["path", "lines_read", "valid", "quarantined", "duplicates"]
    return {
        "raw_logs": sorted(lake.read("raw_logs")["request_id"].to_pylist()),
        "raw_feedback": sorted(lake.read("raw_feedback")["feedback_id"].to_pylist()),
        "quarantine": rows(lake.read("quarantine"), ["source_file", "line_number", "reason_code"]),
        "ledger": rows(done, ledger_cols),
    }


def rows(table, columns: list[str]) -> list[tuple]:
    return sorted(tuple(r[c] for c in columns) for r in table.select(columns).to_pylist())


def commits(lake_dir: Path) -> int:
    return sum(
        len(list((lake_dir / t / "_delta_log").glob("*.json")))
        for t in TABLES
        if (lake_dir / t / "_delta_log").exists()
    )


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_commits", [1, 2, 4, 7, 11])
def test_sigkill_during_ingestion_then_rerun_gives_exactly_the_expected_rows(
    landing, reference, tmp_path, kill_after_commits
):
    lake_dir = tmp_path / "lake"
    proc = subprocess.Popen([sys.executable, "-c", INGEST, str(landing), str(lake_dir)])
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if commits(lake_dir) >= kill_after_commits:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=60)
    killed = proc.returncode == -signal.SIGKILL

    lake = Lake(str(lake_dir))
    for table in TABLES:  # every table is readable at whatever version the kill left
        dt = lake.open(table)
        if dt is not None:
            dt.to_pyarrow_dataset().count_rows()

    ingest_landing(LandingZone(str(landing)), lake)

    assert content(lake) == reference
    assert killed, "the ingestion finished before the kill point; the test proved nothing"
