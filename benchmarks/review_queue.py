"""The review page's queue at scale: one page of a large queue, filtered, sorted and paged.

    python -m benchmarks.review_queue --rows 100000

Writes a synthetic review_queue and tagged_rows of N rows to a temporary lake, then times the first
read of the queue (one Delta version) and a page for each kind of listing the page offers.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from flywheel_assets.catalog.curated import REVIEW_QUEUE, TAGGED_ROWS
from flywheel_assets.review.queue import ReviewQueue
from flywheel_assets.settings import open_lake

REASONS = (
    "negative_without_correction",
    "conflict",
    "over_cap",
    "safety:pii",
    "negative_without_correction,over_cap",
)
LISTINGS = (
    {},
    {"reason": "conflict", "page": 40},
    {"sort": "cluster", "page": 100},
    {"reason": "drift_window", "sort": "newest"},
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="queued rows (100,000)")
    parser.add_argument("--repeat", type=int, default=10, help="pages timed per listing (10)")
    args = parser.parse_args()
    lake = open_lake(tempfile.mkdtemp(prefix="flywheel-review-bench-"))
    rng = random.Random(1)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    queued = [
        {
            "request_id": f"r{i}",
            "reason": rng.choice(REASONS),
            "ts": start + timedelta(seconds=i),
            "prompt": f"prompt {i % 5000}",
            "response": "answer",
            "tags": rng.choice([["drift_window"], [], ["low_confidence"]]),
        }
        for i in range(args.rows)
    ]
    lake.overwrite(REVIEW_QUEUE, pa.Table.from_pylist(queued, schema=REVIEW_QUEUE.schema))
    tagged = [{"request_id": r["request_id"], "normalized_prompt": r["prompt"]} for r in queued]
    lake.overwrite(TAGGED_ROWS, pa.Table.from_pylist(tagged, schema=TAGGED_ROWS.schema))

    queue = ReviewQueue(lake)
    began = time.perf_counter()
    queue.page()
    print(
        f"{args.rows:,} queued rows; first read of the version: {time.perf_counter() - began:.2f} s"
    )
    hidden = {f"r{i}" for i in range(50)}  # reviewed on the page, not yet drained
    for listing in LISTINGS:
        began = time.perf_counter()
        for _ in range(args.repeat):
            page = queue.page(hidden=hidden, **listing)
        per_page = (time.perf_counter() - began) / args.repeat * 1000
        print(f"  page {listing or 'default'}: {per_page:.1f} ms ({page.total:,} rows match)")
    began = time.perf_counter()
    queue.item("r500")
    print(f"  one item with its feedback and twins: {(time.perf_counter() - began) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
