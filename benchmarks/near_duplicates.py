"""Near-duplicate grouping, before and after MinHash LSH candidates, side by side.

Run from the repository root as ``python -m benchmarks.near_duplicates --n 1000000``. Both
implementations group the same prompts, each in its own process (so each has its own peak RSS):
``old`` is the sorted-neighbourhood-only grouping kept in
``flywheel_tests/support/reference/dedup.py``, ``new`` is ``near_duplicate_groups``.

``--corpus planted`` (default) is ``dedup.planted_prompts``: prompts of 6-16 random words, a
fifth of them 1-3 character edits of an earlier one, so the planted (edit, source) pairs that
are near-duplicates give a pair recall. ``--corpus short`` is the same with 1-3 words (few
shingles per string). ``--corpus sample`` is the sample generator's user prompts, normalized as
curation does: templated, with many near-duplicate families and no ground truth.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

IMPLEMENTATIONS = ("old", "new")


def sample_prompts(n: int, seed: int = 0) -> pa.Array:
    """``n`` normalized user prompts from the sample generator."""
    from flywheel_assets.curation.normalize import normalize_text
    from flywheel_assets.sample.records import RecordGenerator
    from flywheel_assets.sample.vocabulary import TOPICS

    rng = random.Random(seed)
    generator = RecordGenerator(rng, n, datetime(2026, 1, 1, tzinfo=UTC), 30)
    topics = sorted(TOPICS)
    texts = [generator.user_text(rng.choice(topics), generator.slots())[0] for _ in range(n)]
    return normalize_text(pa.array(texts, pa.string()))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(impl: str, source: Path, out: Path, threshold: float, workers: int) -> None:
    """Group the prompts in ``source`` with one implementation; print seconds and peak RSS."""
    if impl == "old":
        from flywheel_tests.support.reference.dedup import near_duplicate_groups
    else:
        from flywheel_assets.curation.dedup import near_duplicate_groups

    with pa.memory_map(str(source)) as f:
        values = pa.ipc.open_file(f).read_all()["prompt"].combine_chunks()
    before = _rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    groups = near_duplicate_groups(values, threshold, workers=workers)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = _rss_mb()
    with pa.OSFile(str(out), "wb") as f, pa.ipc.new_file(f, pa.schema([("g", pa.int64())])) as w:
        w.write_table(pa.table({"g": groups}))
    print(
        json.dumps(
            {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": peak, "rss_before_mb": before}
        )
    )


def _run(impl: str, source: Path, out: Path, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        "-m",
        "benchmarks.near_duplicates",
        "--child",
        impl,
        "--input",
        str(source),
        "--output",
        str(out),
        "--threshold",
        str(args.threshold),
        "--workers",
        str(args.workers),
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _split_groups(fine: np.ndarray, coarse: np.ndarray) -> int:
    """How many groups of ``fine`` are not inside one group of ``coarse``."""
    pairs = np.unique(np.stack([fine, coarse], axis=1), axis=0)
    _, per_fine = np.unique(pairs[:, 0], return_counts=True)
    return int((per_fine > 1).sum())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="number of prompts")
    parser.add_argument("--corpus", choices=["planted", "short", "sample"], default="planted")
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--workers", type=int, default=-1, help="rapidfuzz workers (-1: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--child", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, Path(args.input), Path(args.output), args.threshold, args.workers)
        return

    from flywheel_assets.curation.dedup import planted_pair_recall, planted_prompts

    sources = None
    if args.corpus in ("planted", "short"):
        words = (6, 16) if args.corpus == "planted" else (1, 3)
        prompts, sources = planted_prompts(args.n, seed=args.seed, words=words)
        values = pa.array(prompts, pa.string())
    else:
        values = sample_prompts(args.n, seed=args.seed)
        prompts = values.to_pylist()
    distinct = len(pc.unique(values))
    report: dict = {"rows": args.n, "corpus": args.corpus, "distinct": distinct}
    if sources is not None:
        report["groups_if_every_edit_found"] = int((sources < 0).sum())
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "prompts.arrow"
        schema = pa.schema([("prompt", pa.string())])
        with pa.OSFile(str(source), "wb") as f, pa.ipc.new_file(f, schema) as w:
            w.write_table(pa.table({"prompt": values}))
        groups = {}
        for impl in IMPLEMENTATIONS:
            out = Path(tmp) / f"{impl}.arrow"
            report[impl] = _run(impl, source, out, args)
            with pa.memory_map(str(out)) as f:
                groups[impl] = pa.ipc.open_file(f).read_all()["g"].to_numpy().copy()
            report[impl]["groups"] = len(np.unique(groups[impl]))
            if sources is not None:
                found, planted = planted_pair_recall(prompts, sources, groups[impl])
                report[impl]["planted_pairs_found"] = found
                report[impl]["planted_pairs"] = planted
                report[impl]["pair_recall"] = found / max(planted, 1)
    # Every pair the old grouping verified is a candidate of the new one too, so each old group
    # should lie inside one new group.
    report["old_groups_split_by_new"] = _split_groups(groups["old"], groups["new"])

    print(f"rows={args.n} corpus={args.corpus} distinct={distinct}", end="")
    if sources is not None:
        print(f" groups_if_every_edit_found={report['groups_if_every_edit_found']}", end="")
    print()
    header = f"{'':6}{'seconds':>10}{'cpu s':>8}{'peak RSS MB':>14}{'input RSS MB':>14}"
    header += f"{'groups':>10}"
    if sources is not None:
        header += f"{'pairs found':>18}{'pair recall':>13}"
    print(header)
    for impl in IMPLEMENTATIONS:
        r = report[impl]
        line = (
            f"{impl:6}{r['seconds']:>10.2f}{r['cpu_seconds']:>8.1f}{r['peak_rss_mb']:>14.0f}"
            f"{r['rss_before_mb']:>14.0f}"
            f"{r['groups']:>10}"
        )
        if sources is not None:
            found = f"{r['planted_pairs_found']}/{r['planted_pairs']}"
            line += f"{found:>18}{r['pair_recall']:>13.5f}"
        print(line)
    print(f"old groups split by new: {report['old_groups_split_by_new']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
