"""Failure clustering on a synthetic tagged_rows table: seconds and peak RSS.

``python -m benchmarks.failure_clusters --rows 1000000``. The prompts are the sample's templates
with slot values (products, order numbers, dates) and the sample's greetings and sign-offs, plus a
share of one-off prompts of random words (the long tail); labels and corrections are drawn at the
sample's rates. Only ``failure_clusters`` is timed: making and normalizing the rows is setup.
"""

from __future__ import annotations

import argparse
import random
import resource
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from flywheel_assets.curation.dedup import planted_prompts
from flywheel_assets.curation.failures import ClusterPolicy, failure_clusters
from flywheel_assets.curation.normalize import normalize_text
from flywheel_assets.sample.vocabulary import CITIES, PLANS, PRODUCTS, TOPICS

PREFIXES = ("", "", "", "hi, ", "urgent: ", "quick question, ", "hello, ", "good morning, ")
SUFFIXES = ("", "", "", " thanks!", " thx", " please help", " this is really frustrating")


def synthetic_tagged(rows: int, *, tail_share: float = 0.1, seed: int = 0) -> pa.Table:
    rng = random.Random(seed)
    templates = [t for prompts, _ in TOPICS.values() for t in prompts]
    tail = int(rows * tail_share)
    one_offs, _ = planted_prompts(tail, dup_share=0.0, seed=seed)
    prompts = []
    for _ in range(rows - tail):
        text = rng.choice(templates).format_map(
            _Blank(
                {
                    "product": rng.choice(PRODUCTS),
                    "order": rng.randrange(10**7, 10**8),
                    "date": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                    "days": rng.randint(2, 20),
                    "tracking": f"1Z{rng.randrange(10**9)}",
                    "city": rng.choice(CITIES),
                    "plan": rng.choice(PLANS),
                    "price": f"${rng.randint(5, 900)}.99",
                }
            )
        )
        prompts.append(rng.choice(PREFIXES) + text + rng.choice(SUFFIXES))
    prompts += one_offs
    draw = np.random.default_rng(seed)
    label = draw.choice(["positive", "negative", "unknown"], size=rows, p=[0.45, 0.3, 0.25])
    corrected = draw.random(rows) < 0.08
    start = datetime(2026, 1, 1, tzinfo=UTC)
    values = pa.array(prompts, pa.string())
    return pa.table(
        {
            "request_id": pa.array([f"req-{i}" for i in range(rows)], pa.string()),
            "ts": pa.array(
                [start + timedelta(seconds=int(s)) for s in draw.integers(0, 3e7, rows)],
                pa.timestamp("us", tz="UTC"),
            ),
            "prompt": values,
            "normalized_prompt": normalize_text(values),
            "label": pa.array(label),
            "correction": pa.array(np.where(corrected, "a better answer", None), pa.string()),
            "edited_response": pa.nulls(rows, pa.string()),
        }
    )


class _Blank(dict):
    """Slot values for the templates' other placeholders."""

    def __missing__(self, key):
        return key


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark failure clustering.")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--min-size", type=int, default=5)
    parser.add_argument("--similarity", type=float, default=0.85)
    args = parser.parse_args(argv)
    tagged = synthetic_tagged(args.rows)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    clusters = failure_clusters(
        tagged, policy=ClusterPolicy(min_size=args.min_size, similarity=args.similarity)
    )
    seconds = time.perf_counter() - began
    largest = clusters["size"][0].as_py() if clusters.num_rows else 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        f"rows={args.rows} clusters={clusters.num_rows} seconds={seconds:.1f} "
        f"rows_per_s={args.rows / seconds:,.0f} peak_rss_mib={peak / 1024:.0f} "
        f"(after setup {rss_before / 1024:.0f}) largest={largest}"
    )


if __name__ == "__main__":
    main()
