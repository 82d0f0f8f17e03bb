"""Files about people stay private on disk: the lake and the landing zone are 0700 folders, and
spill files live in the lake's own private folder, never outliving their run."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flywheel_assets.catalog.redacted import REDACTED_FEEDBACK
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.lake.permissions import PrivateFolderWarning, exposed_paths, make_private
from flywheel_assets.lake.spill import SPILL_FOLDER, remove_stale_spills, spill_directory
from flywheel_assets.lake.tables import Lake
from flywheel_assets.privacy.pipeline import redact_feedback
from flywheel_assets.sample import write_sample_landing
from flywheel_tests.support.cli import ROOT
from flywheel_tests.support.privacy import DETECTOR, KEY
from flywheel_tests.support.records import TEST_HASH_KEY, feedback, write_lines
from flywheel_tests.support.runs import refresh


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_after_a_run_nothing_in_the_lake_is_reachable_by_another_user(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HASH_KEY", TEST_HASH_KEY)
    os.umask(0o022)  # the usual umask: every file Delta writes is 0644
    landing = tmp_path / "landing"
    write_sample_landing(landing, n_interactions=300, seed=5)
    lake = Lake(str(tmp_path / "lake"))
    assert refresh(landing, lake).success

    root = Path(lake.root)
    assert _mode(root) == 0o700
    assert exposed_paths(root) == []
    # Every kind of path the run wrote lies below the private root.
    names = {p.name for p in root.iterdir()}
    assert {"raw_logs", "redacted_logs", "quarantine", "_checks", SPILL_FOLDER} <= names
    assert any(root.glob("raw_logs/_delta_log/*.json"))
    assert list((root / SPILL_FOLDER).iterdir()) == []  # no spill outlived the run
    assert _mode(root / SPILL_FOLDER) == 0o700


def test_the_landing_zone_and_an_existing_lake_are_made_private(tmp_path):
    os.umask(0o022)
    landing = tmp_path / "landing"
    write_lines(landing, "feedback/a.jsonl", [feedback("f1", "r1")])
    landing.chmod(0o755)
    old = tmp_path / "old-lake"
    old.mkdir(mode=0o755)
    lake = Lake(str(old))
    ingest_landing(LandingZone(str(landing)), lake)
    assert _mode(old) == 0o700
    assert _mode(landing) == 0o700


def test_a_folder_of_another_user_is_left_alone_with_a_warning_that_says_why(tmp_path):
    if os.getuid() == 0:  # root can hand a folder to another user
        other = tmp_path / "theirs"
        other.mkdir(mode=0o755)
        os.chown(other, 65534, 65534)
    else:
        other = Path("/tmp")  # root-owned and world-writable on every Linux machine
    with pytest.warns(
        PrivateFolderWarning, match="stays readable by other local users.*owned by uid"
    ):
        make_private(other)
    assert _mode(other) & 0o077  # left as it was


def test_spills_go_to_a_private_folder_of_the_lake_and_are_removed_after(tmp_path):
    lake_root = str(tmp_path / "lake")
    with spill_directory(lake_root, "test") as folder:
        (folder / "rows.arrow").write_bytes(b"x")
        assert folder.parent == tmp_path / "lake" / SPILL_FOLDER
        assert _mode(folder) == 0o700 and _mode(folder.parent) == 0o700
        # A folder in use is never taken for a stale one.
        assert remove_stale_spills(lake_root) == []
        assert folder.exists()
    assert not folder.exists()


_CHILD = textwrap.dedent(
    """
    import sys, time
    from flywheel_assets.lake import spill
    from flywheel_assets.lake.tables import Lake
    from flywheel_assets.privacy.pipeline import redact_feedback
    from flywheel_tests.support.privacy import DETECTOR, KEY

    write = spill.Spill.write

    def write_then_hang(self, data):
        write(self, data)
        self._writer.close()  # the rows are on disk
        print(self.path, flush=True)
        time.sleep(600)

    spill.Spill.write = write_then_hang
    redact_feedback(Lake(sys.argv[1]), DETECTOR, KEY)
    """
)


def test_a_spill_left_by_a_killed_run_is_removed_by_the_next_run(tmp_path):
    landing = tmp_path / "landing"
    write_lines(landing, "feedback/a.jsonl", [feedback(f"f{i}", f"r{i}") for i in range(20)])
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, lake.root],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        spilled = Path(child.stdout.readline().strip())
        assert spilled.is_file() and spilled.stat().st_size > 0
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    # The killed run's spill is still there, in the lake's private folder, not in TMPDIR.
    assert spilled.is_file() and spilled.parent.parent == Path(lake.root) / SPILL_FOLDER
    assert list(tmpdir.iterdir()) == []
    assert lake.open(REDACTED_FEEDBACK.name) is None or not lake.read(REDACTED_FEEDBACK.name)

    report = redact_feedback(lake, DETECTOR, KEY)

    assert report.committed and report.rows_written == 20
    assert list((Path(lake.root) / SPILL_FOLDER).iterdir()) == []
    assert not spilled.exists()
