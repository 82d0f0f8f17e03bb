"""End-to-end benchmark: Flywheel against the I/O floor and the textbook implementation.

    python -m benchmarks.pipeline --n 1000000

Generates N synthetic interactions (feedback of every kind, PII, malformed lines, retries), then on
the same input, each in its own process: the I/O floor (Arrow JSON to Parquet), the textbook
pure-Python implementation, and Flywheel stage by stage (ingest, privacy, curation, drift monitor);
then an incremental run (1% new landing data, the day after), a no-op run, sensor ticks and the PII
detector alone.
Prints seconds, rows per second and peak RSS, and the ratios. Training is not included.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

STAGES = (
    ("ingest", "group:ingest"),
    ("privacy", "group:privacy"),
    ("curation", "group:curation"),
    ("drift monitor", "drift_monitor"),
)
KEY = "a-benchmark-key-of-enough-length"
# The repository root: `benchmarks` is a top-level folder there, not an installed package.
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Measure:
    name: str
    seconds: float  # the work, after start-up
    startup: float  # interpreter, imports
    peak_rss_mb: float
    rows: int = 0
    detail: dict = field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="interactions (1,000,000)")
    parser.add_argument("--workdir", help="keep landing, lake and outputs here (default: temp)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--no-textbook", action="store_true", help="skip the textbook run")
    parser.add_argument(
        "--spread-increment",
        action="store_true",
        help="land the +1%% over the sample's two weeks instead of the day after them",
    )
    parser.add_argument(
        "--baseline",
        metavar="FILE",
        help="the --json of a run at another N: compares the +1%% increments (cost follows the "
        "change, not the history)",
    )
    parser.add_argument(
        "--detector-mb", type=float, default=20.0, help="MB of text for the detector alone (20)"
    )
    args = parser.parse_args(argv)
    args.command = "python -m benchmarks.pipeline " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    if args.n < 100:
        parser.error("--n must be at least 100")

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="flywheel-bench-"))
    try:
        results = run(work, args)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


def run(work: Path, args) -> dict:
    from flywheel_assets.sample import write_sample_landing

    from .floor import clean_copy
    from .report import print_report

    landing, lake = work / "landing", work / "lake"
    for path in (landing, lake, work / "clean", work / "floor", work / "textbook"):
        shutil.rmtree(path, ignore_errors=True)
    files = max(3, args.n // 50_000)
    started = time.perf_counter()
    manifest = write_sample_landing(
        landing, n_interactions=args.n, seed=args.seed, files_per_stream=files
    )
    generated = time.perf_counter() - started
    landing_bytes = sum(p.stat().st_size for p in landing.rglob("*") if p.is_file())
    lines = sum(manifest.lines.values())
    records = sum(manifest.valid.values())
    print(
        f"generated {args.n:,} interactions in {generated:.1f} s: {landing_bytes / 1e6:.0f} MB "
        f"in {files} files per stream under {landing}",
        flush=True,
    )
    clean_copy(landing, work / "clean")

    floor = _child(
        "I/O floor", "floor", "--landing", str(work / "clean"), "--out", str(work / "floor")
    )
    floor.rows = floor.detail["rows"]
    textbook = None
    if not args.no_textbook:
        textbook = _child(
            "textbook", "textbook", "--landing", str(landing), "--out", str(work / "textbook")
        )
        textbook.rows = records
    stages = []
    for name, select in STAGES:
        m = _child(
            name, "flywheel", "--landing", str(landing), "--lake", str(lake), "--select", select
        )
        m.rows = records
        stages.append(m)

    # The drift monitor's events for the sample's windows are new data for the next run, which
    # keeps (and redacts, tags, curates) every interaction inside those windows: run it before the
    # increment, so that the increment measures the new traffic alone.
    before = _child("monitor's events", "flywheel", "--landing", str(landing), "--lake", str(lake))
    incremental_n = max(1, args.n // 100)
    _add_landing(landing, work / "increment", incremental_n, args.seed + 1, args.spread_increment)
    incremental = _child(
        "incremental (1%)", "flywheel", "--landing", str(landing), "--lake", str(lake)
    )
    incremental.rows = incremental_n
    # The increment is a new day: the drift monitor finds its window over the threshold and stores
    # an event, which the next run tags. That run is not measured; the one after has nothing new.
    settling = _child("settling", "flywheel", "--landing", str(landing), "--lake", str(lake))
    noop = _child("no-op", "flywheel", "--landing", str(landing), "--lake", str(lake))

    from .measure import detector_throughput, sensor_ticks

    ticks = sensor_ticks(landing, lake)
    detector = detector_throughput(args.detector_mb)
    results = {
        "command": args.command,
        "n": args.n,
        "landing_bytes": landing_bytes,
        "landing_lines": lines,
        "landing_records": records,
        "cpu_count": os.cpu_count(),
        "floor": floor.__dict__,
        "textbook": textbook.__dict__ if textbook else None,
        "stages": [m.__dict__ for m in stages],
        "incremental": incremental.__dict__,
        "monitor_events": before.__dict__,
        "settling": settling.__dict__,
        "noop": noop.__dict__,
        "sensor_ticks": ticks,
        "detector": detector,
    }
    if args.baseline:
        baseline = json.loads(Path(args.baseline).read_text())
        results["baseline"] = {"n": baseline["n"], "incremental": baseline["incremental"]}
    print_report(results)
    return results


def _child(name: str, *args: str) -> Measure:
    env = {**os.environ, "FLYWHEEL_HASH_KEY": os.environ.get("FLYWHEEL_HASH_KEY", KEY)}
    env.pop("DAGSTER_HOME", None)
    # The child is `-m benchmarks.pipeline.child`; it must import from the repo root wherever
    # the benchmark was started, and relative paths keep meaning the caller's directory.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.pipeline.child", *args],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"  {name}: {data['seconds']:.1f} s (+{wall - data['seconds']:.1f} s start-up)", flush=True
    )
    seconds = data.pop("seconds")
    return Measure(name, seconds, wall - seconds, data.pop("peak_rss_mb"), detail=data)


def _add_landing(landing: Path, scratch: Path, n: int, seed: int, spread: bool = False) -> None:
    """Land `n` new interactions (and their feedback) under new file names: the day after the
    sample's two weeks, as new traffic arrives; or, with `spread`, over the same two weeks (late
    data everywhere, every drift window reaching back into history)."""
    from datetime import timedelta

    from flywheel_assets.sample import DEFAULT_START, write_sample_landing

    when = {} if spread else {"start": DEFAULT_START + timedelta(days=14), "days": 1}
    write_sample_landing(scratch, n_interactions=n, seed=seed, files_per_stream=1, **when)
    # The sample writes the same five drift events whatever its size: in 1% of the traffic that
    # is a hundred times their rate, each reaching up to a week back. The increment carries the
    # traffic; the drift event the monitor stores for the new day is what the settling run tags.
    for path in (scratch / "drift_events").glob("*"):
        path.unlink()
    for path in scratch.rglob("*.jsonl*"):
        target = landing / path.parent.name / f"increment-{path.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)


if __name__ == "__main__":
    sys.exit(main())
