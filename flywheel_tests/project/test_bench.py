"""The benchmark as CI runs it: a small N end to end, checking what it reports, not how fast."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flywheel_tests.support.cli import ROOT


@pytest.mark.slow
def test_the_benchmark_runs_end_to_end_and_reports_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.pipeline",
            "--n",
            "3000",
            "--detector-mb",
            "0.5",
            "--workdir",
            str(tmp_path / "work"),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for line in (
        "end to end, against the I/O floor",
        "textbook / flywheel",
        "a run after +1% landing, share of a full run",
        "no-op run, wall time with start-up, s",
        "peak RSS, GB",
        "steady sensor tick, ms",
        "no-op run:",
        "sensor ticks:",
        "PII detector alone:",
    ):
        assert line in proc.stdout, line
    r = json.loads(out.read_text())
    stages = {s["name"]: s for s in r["stages"]}
    assert list(stages) == ["ingest", "privacy", "curation", "drift monitor"]
    # Every stage committed what it owns on the first run, and the no-op run committed nothing.
    assert {"raw_logs", "raw_feedback", "quarantine"} <= set(
        stages["ingest"]["detail"]["committed"]
    )
    assert "redacted_logs" in stages["privacy"]["detail"]["committed"]
    assert {"tagged_rows", "sft_set", "dpo_set"} <= set(stages["curation"]["detail"]["committed"])
    assert r["noop"]["detail"]["committed"] == []
    # The incremental run read only the new files: raw_logs grew by the new interactions alone.
    raw_before = stages["ingest"]["detail"]["tables"]["raw_logs"]["rows"]
    raw_after = r["incremental"]["detail"]["tables"]["raw_logs"]["rows"]
    assert raw_after - raw_before == 30
    # The floor and the textbook saw the same input.
    assert r["floor"]["rows"] >= r["landing_records"]
    assert r["textbook"]["detail"]["valid"] >= r["landing_records"]
    assert all(s["peak_rss_mb"] > 0 and s["seconds"] > 0 for s in r["stages"])
    assert set(r["sensor_ticks"]) == {
        "landing_sensor",
        "curated_pairs_sensor",
        "drift_sensor",
        "failure_cluster_sensor",
    }
    assert all(t["first_ms"] > 0 and t["steady_ms"] > 0 for t in r["sensor_ticks"].values())
    assert r["detector"]["detector_mb_s"] > 0 and r["detector"]["textbook_mb_s"] > 0
