"""Load test: sustained requests per second into a collector on loopback, and zero lost records.

    python -m benchmarks.collector_load --seconds 20 --threads 8 --batch 50

Starts `flywheel collect` over a fresh landing zone, posts batches of interactions from several
threads for the given time, stops the collector gracefully, and counts: every record answered with
202 must be in a landing file exactly once (count in = count landed).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from flywheel_assets.collector.server import landed_records, start_collector

TOKEN = "load-test-token-0123456789abcdef"


@dataclass
class LoadResult:
    seconds: float
    requests: int
    acknowledged: int
    landed: int
    duplicates: int  # records landed more than once
    lost: int  # acknowledged with 202 but in no landing file
    errors: int


def run_load(landing: Path, seconds: float, threads: int, batch: int) -> LoadResult:
    collector = start_collector(landing, TOKEN, "--max-file-seconds", "2")
    acked: list[str] = []
    counts = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < stop_at:
            records = [_interaction() for _ in range(batch)]
            try:
                status, _ = collector.post("/v1/interactions", records)
            except OSError:
                status = 0
            with lock:
                counts["requests"] += 1
                if status == 202:
                    acked.extend(r["request_id"] for r in records)
                else:
                    counts["errors"] += 1

    started = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    collector.stop()
    landed = Counter(r["request_id"] for r in landed_records(landing, "interactions"))
    return LoadResult(
        seconds=elapsed,
        requests=counts["requests"],
        acknowledged=len(acked),
        landed=sum(landed.values()),
        duplicates=sum(n - 1 for n in landed.values() if n > 1),
        lost=len(set(acked) - set(landed)),
        errors=counts["errors"],
    )


def _interaction() -> dict:
    rid = str(uuid.uuid4())
    return {
        "request_id": rid,
        "ts": "2026-11-23T10:00:00+00:00",
        "prompt": f"How do I reset the router {rid[:8]}?",
        "response": "Hold the reset button for ten seconds, then wait for the light.",
        "model_version": "load-test",
        "user_id": f"u-{rid[:4]}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=50, help="records per request")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="flywheel-load-") as tmp:
        r = run_load(Path(tmp) / "landing", args.seconds, args.threads, args.batch)
    if args.json:
        print(json.dumps(r.__dict__))
    else:
        print(
            f"{r.requests} requests in {r.seconds:.1f} s: {r.requests / r.seconds:.0f} req/s, "
            f"{r.acknowledged / r.seconds:.0f} records/s acknowledged; errors {r.errors}"
        )
        print(f"acknowledged {r.acknowledged}, landed {r.landed}, lost {r.lost}")
    return 0 if r.lost == 0 and r.duplicates == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
