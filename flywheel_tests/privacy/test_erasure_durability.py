"""Erasure that always works, leaves no residue and wins over a run that overlaps it.

"Erased" here means: no row of the user in any table of the lake, in any version of a table that
can still be loaded (vacuumed versions are expected to be gone), nor in the Delta logs; nothing of
the user in Dagster's run storage and event log but their keyed hash in the erase run itself; and
nothing of them in the base model's files. Models trained on the rows are named, not changed.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from flywheel_assets.catalog.governance import TOMBSTONES
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.governance.hashing import keyed_hash
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.lake.tables import Lake, VersionUnreadable
from flywheel_assets.privacy.erasure import erase_user
from flywheel_assets.privacy.pii import Detector
from flywheel_assets.privacy.pipeline import redact_logs
from flywheel_assets.privacy.retention import LandingAction, expire_raw
from flywheel_assets.privacy.sampling import SamplingPolicy
from flywheel_tests.support.cli import flywheel
from flywheel_tests.support.erasure import TABLES, USER, landing_with_user, user_rows
from flywheel_tests.support.privacy import DETECTOR, KEY, build
from flywheel_tests.support.records import feedback, interaction, write_lines

KEEP_ALL = SamplingPolicy(healthy_share=1.0)


def every_version(lake: Lake, table: str) -> list[pa.Table]:
    """Every version of `table` that can still be loaded."""
    out = []
    dt = lake.open(table)
    for version in range(dt.version() + 1 if dt else 0):
        try:
            out.append(lake.read(table, version=version))
        except (VersionUnreadable, OSError):
            continue
    return out


def assert_pandas_reads_every_file(lake: Lake, table: str) -> None:
    files = sorted((Path(lake.root) / table).glob("*.parquet"))
    assert files or lake.read(table).num_rows == 0, table
    for path in files:
        frame = pd.read_parquet(path)  # raised on string_view lists before
        assert all(not str(t).startswith("string_view") for t in frame.dtypes), path


@pytest.fixture
def lake_with_user(tmp_path) -> Lake:
    landing = tmp_path / "landing"
    landing_with_user(landing)
    annotation = {"annotation_id": "a2", "request_id": "o1", "ts": "2026-11-20T11:00:00Z"}
    write_lines(landing, "annotations/b.jsonl", [{**annotation, "operator": "op", "tags": ["x"]}])
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    build(lake, KEEP_ALL)
    return lake


# 1. Rewritten files keep plain strings: later erasures and every reader keep working.


def test_a_second_forget_works_after_the_first_rewrote_files(lake_with_user):
    lake = lake_with_user
    erase_user(lake, USER, KEY, TABLES)
    for table in ("raw_logs", "annotations", "redacted_annotations", "redacted_feedback"):
        assert_pandas_reads_every_file(lake, table)
    # New rows land in new files beside the rewritten ones; the next erasure filters them all.
    landing = Path(lake.root).parent / "landing"
    write_lines(landing, "interactions/c.jsonl", [interaction("o3", user_id="other")])
    ingest_landing(LandingZone(str(landing)), lake)
    build(lake, KEEP_ALL)

    report = erase_user(lake, "other", KEY, TABLES)

    assert report.request_ids == ["o1", "o2", "o3"]
    assert report.tables["raw_logs"]["rows_deleted"] == 3
    assert lake.read("raw_logs").num_rows == 0
    assert lake.read("annotations").num_rows == 0  # a2 was on the user's o1
    for table in ("raw_feedback", "quarantine", "redacted_feedback", "redacted_logs"):
        assert_pandas_reads_every_file(lake, table)


def test_forget_works_after_retention_and_every_file_stays_readable(tmp_path):
    landing = tmp_path / "landing"
    old = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    write_lines(
        landing,
        "interactions/a.jsonl",
        [interaction("old", ts=old), interaction("e1", user_id=USER), interaction("o1")],
    )
    write_lines(landing, "feedback/a.jsonl", [feedback("f1", "old", ts=old)])
    lake = Lake(str(tmp_path / "lake"))
    zone = LandingZone(str(landing))
    ingest_landing(zone, lake)
    build(lake, KEEP_ALL)

    expire_raw(
        lake, zone, cutoff=datetime.now(UTC) - timedelta(days=30), landing_action=LandingAction.KEEP
    )
    for table in ("raw_logs", "raw_feedback"):
        assert_pandas_reads_every_file(lake, table)
    report = erase_user(lake, USER, KEY, TABLES)

    assert report.tables["raw_logs"]["rows_deleted"] == 1
    assert sorted(lake.read("raw_logs")["request_id"].to_pylist()) == ["o1"]
    for table in ("raw_logs", "redacted_logs"):
        assert_pandas_reads_every_file(lake, table)


def test_a_lake_delete_records_no_predicate_and_keeps_the_table_types(lake_with_user):
    lake = lake_with_user
    erase_user(lake, USER, KEY, TABLES)
    log = b"".join(p.read_bytes() for p in (Path(lake.root) / "raw_logs").rglob("*.json"))
    assert b"predicate" not in log
    dt = lake.open("raw_logs")
    commits = [c for c in dt.history() if c.get("flywheel.operation") == "erase"]
    assert commits and all(c.get("flywheel.erasure_id") for c in commits)
    assert lake.read("raw_logs").schema == lake.read("raw_logs", version=0).schema


# 2. A version an erasure removed says so.


def test_export_of_a_version_an_erasure_removed_names_the_erasure(tmp_path):
    from flywheel_assets.curation.datasets import CurationPolicy
    from flywheel_assets.curation.pipeline import build_curated_sets, build_tagged_rows
    from flywheel_assets.curation.signals import SignalWeights

    landing = tmp_path / "landing"
    write_lines(
        landing,
        "interactions/a.jsonl",
        [
            interaction("mine", user_id=USER, prompt="Ship?", response="A month."),
            interaction("theirs", user_id="other", prompt="Ship?", response="Two days."),
        ],
    )
    write_lines(
        landing,
        "feedback/a.jsonl",
        [feedback("c1", "theirs", "comparison", other_request_id="mine", user_id="other")],
    )
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    build(lake, KEEP_ALL)
    policy = CurationPolicy(holdout_share=0.0)
    from flywheel_assets.curation.pipeline import FeedbackCap

    build_tagged_rows(lake, DETECTOR, SignalWeights(), FeedbackCap(), policy)
    build_curated_sets(lake, DETECTOR, KEY, policy)
    version = lake.open("dpo_set").version()
    assert lake.read("dpo_set").num_rows == 1

    report = erase_user(lake, USER, KEY, [*TABLES, "tagged_rows", "dpo_set"])

    out = flywheel(
        "export", "dpo_set", "--version", str(version), "--out", str(tmp_path / "x.jsonl"),
        "--lake", lake.root,
    )  # fmt: skip
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "FileNotFoundError" not in out.stderr
    assert f"version {version} of dpo_set is no longer readable" in out.stderr
    assert f"erasure {report.erasure_id}" in out.stderr
    assert not (tmp_path / "x.jsonl").exists()


def test_rollback_to_a_version_an_erasure_removed_names_the_erasure(lake_with_user):
    from flywheel_assets.lake.versions import VersionUnavailable, check_restorable

    lake = lake_with_user
    version = lake.open("redacted_logs").version()
    report = erase_user(lake, USER, KEY, TABLES)
    with pytest.raises(VersionUnavailable, match=f"erasure {report.erasure_id}"):
        check_restorable(lake, "redacted_logs", version)


# 3. An erasure that overlaps a run wins.


class PausingDetector(Detector):
    """Stops the redaction run after it has read its inputs, until the test lets it go on."""

    def __init__(self):
        self.read, self.go = threading.Event(), threading.Event()
        self.armed = False
        super().__init__()  # checks its own patterns through redact_array
        self.armed = True

    def redact_array(self, arr):
        if self.armed and not self.read.is_set():
            self.read.set()
            assert self.go.wait(60)
        return super().redact_array(arr)


def test_an_erasure_during_redaction_leaves_the_user_in_no_readable_version(tmp_path):
    landing = tmp_path / "landing"
    landing_with_user(landing)
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    detector = PausingDetector()
    outcome = {}
    run = threading.Thread(
        target=lambda: outcome.update(report=redact_logs(lake, detector, KEY, KEEP_ALL))
    )
    run.start()
    assert detector.read.wait(60)  # the run holds the user's rows, not yet committed
    erase_user(lake, USER, KEY, TABLES)
    detector.go.set()
    run.join(60)

    report = outcome["report"]
    assert report.committed and report.erased_skipped == 2
    assert sorted(lake.read("redacted_logs")["request_id"].to_pylist()) == ["o1", "o2"]
    for table in TABLES:
        for data in every_version(lake, table):
            assert user_rows(data) == 0, table


# 4. Residue.


def test_quarantine_matching_decodes_escapes_and_compares_ids_whole(tmp_path):
    landing = tmp_path / "landing"
    write_lines(
        landing,
        "interactions/a.jsonl",
        [
            '{"request_id": "q7", "user_id": "\\u0037", "prompt": 1}',  # parses; bad field type
            '{"request_id": "q7b", "user_id": "\\u0037", "broken',  # does not parse
            '{"request_id": "q17", "user_id": "17", "broken',
            '{"request_id": "q27", "user_id": "27", "prompt": 1}',
            '{"request_id": "q70", "user_id": "x", "note": "room 7b", "broken',
        ],
    )
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    assert lake.read("quarantine").num_rows == 5

    report = erase_user(lake, "7", KEY, ["quarantine"])

    assert report.tables["quarantine"]["rows_deleted"] == 2
    left = sorted(json_request(line) for line in lake.read("quarantine")["raw_line"].to_pylist())
    assert left == ["q17", "q27", "q70"]


def json_request(line: str) -> str:
    return line.split('"request_id": "')[1].split('"')[0]


def test_previews_of_personal_tables_show_no_free_text(lake_with_user):
    from flywheel_assets.metadata import table_metadata

    for table in ("redacted_logs", "redacted_feedback"):
        preview = table_metadata(lake_with_user, table, 0)["preview"].value
        assert "request_id" in preview
        for words in ("reach me", "fixed", "prompt", "correction"):
            assert words not in preview, (table, preview)


def test_the_tiny_base_model_holds_no_word_of_user_text(tmp_path):
    pytest.importorskip("transformers")
    from flywheel_assets.training.tiny_model import build_tiny_base

    path = build_tiny_base(tmp_path / "tiny")
    vocab = json.loads((path / "tokenizer.json").read_text())["model"]["vocab"]
    again = json.loads((build_tiny_base(tmp_path / "again") / "tokenizer.json").read_text())
    assert again["model"]["vocab"] == vocab  # the same for every store: no data went in
    assert not any("Quillfeather" in token or "aardvark" in token for token in vocab)


# 5. An unknown user is warned about; models trained on the rows are named.


def test_forget_of_an_unknown_user_warns_and_still_records_the_tombstone(tmp_path):
    landing = tmp_path / "landing"
    landing_with_user(landing)
    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    out = flywheel("forget", "nobody@example.com", "--landing", str(landing), "--lake", lake.root)
    assert out.returncode == 0, out.stderr
    assert "warning: no rows of nobody@example.com were found" in out.stderr
    hashes = lake.read(TOMBSTONES.name)["user_hash"].to_pylist()
    assert hashes == [keyed_hash("nobody@example.com", _cli_key(), "user")]


def _cli_key() -> bytes:
    from flywheel_assets.governance.hashing import DEVELOPMENT_KEY

    return DEVELOPMENT_KEY.encode()  # the CLI runs with no FLYWHEEL_HASH_KEY set


def test_erasure_names_the_registered_models_trained_on_the_rows(lake_with_user):
    from flywheel_assets.training.registry import CANDIDATE, ModelRecord, Registry

    lake = lake_with_user
    version = lake.open("redacted_logs").version()
    registry = Registry(lake)
    for model_id, versions in (("saw-it", {"redacted_logs": version}), ("before", {})):
        registry.register(
            ModelRecord(
                model_id, "tiny", f"/m/{model_id}", "sft", {}, "s", versions, {}, "manual", "", "r"
            ),
            status=CANDIDATE,
            reason="test",
            actor="test",
        )
    report = erase_user(lake, USER, KEY, TABLES)
    assert report.models == ["saw-it"]
    assert erase_user(lake, "other", KEY, TABLES).models == []  # version vacuumed since


# 6. Nothing of the user anywhere after `flywheel forget`, with a run overlapping it.

PHRASE = "my pet aardvark Quillfeather"
CAPSTONE_USER = "zed.quill@example.org"


def _bytes_under(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_forget_leaves_nothing_of_the_user_in_the_lake_or_the_dagster_instance(tmp_path):
    from flywheel_assets.sample import write_sample_landing

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {"DAGSTER_HOME": str(home)}
    landing, lake_dir = tmp_path / "landing", tmp_path / "lake"
    write_sample_landing(landing, n_interactions=120, seed=3)
    now = datetime.now(UTC).isoformat()
    mine = [
        interaction(f"zq{i}", user_id=CAPSTONE_USER, prompt=f"{PHRASE} likes ants {i}", ts=now)
        for i in range(3)
    ]
    write_lines(landing, "interactions/zq.jsonl", mine)
    write_lines(landing, "feedback/zq.jsonl", [feedback("zqf", "zq0", correction=PHRASE)])
    where = ["--landing", str(landing), "--lake", str(lake_dir)]
    assert flywheel("run", *where, env=env).returncode == 0

    # More of the user's traffic arrives and a run processes it while the erasure runs.
    write_lines(landing, "interactions/zq2.jsonl", [interaction("zq9", user_id=CAPSTONE_USER)])
    outcome = {}
    run = threading.Thread(target=lambda: outcome.update(run=flywheel("run", *where, env=env)))
    run.start()
    forget = flywheel("forget", CAPSTONE_USER, "--reason", "ticket 9", *where, env=env)
    run.join(300)
    assert forget.returncode == 0, forget.stderr
    assert outcome["run"].returncode == 0, outcome["run"].stderr
    assert flywheel("run", *where, env=env).returncode == 0  # later runs keep it out

    user_hash = keyed_hash(CAPSTONE_USER, _cli_key(), "user").encode()
    erase_runs = _erase_run_ids(home)
    for path, data in {**_bytes_under(lake_dir), **_bytes_under(home)}.items():
        assert CAPSTONE_USER.encode() not in data, path
        assert PHRASE.encode() not in data and b"Quillfeather" not in data, path
        hash_allowed = TOMBSTONES.name in path.parts or _belongs_to(path, home, erase_runs)
        assert hash_allowed or user_hash not in data, path


def _erase_run_ids(home: Path) -> set[str]:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="erase_user_job"))
        return {r.run_id for r in runs}


def _belongs_to(path: Path, home: Path, run_ids: set[str]) -> bool:
    """The erase run's own records (its run config and output hold the keyed hash by design):
    the run storage, and its per-run event log and outputs."""
    if path.parent == home / "history" and path.name.startswith("runs"):
        return True
    return any(run_id in path.parts or path.stem == run_id for run_id in run_ids)
