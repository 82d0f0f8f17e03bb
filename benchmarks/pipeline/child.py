"""One measured task in its own process, so each has its own peak RSS.

Prints one JSON object: seconds of work (after imports), peak RSS in MB, and what the task
produced. The parent takes start-up as its wall time minus the work.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("task", choices=["flywheel", "textbook", "floor"])
    parser.add_argument("--landing", required=True)
    parser.add_argument("--lake", help="flywheel: the lake root")
    parser.add_argument("--select", help="flywheel: a Dagster asset selection")
    parser.add_argument("--out", help="textbook and floor: the output folder")
    args = parser.parse_args(argv)

    if args.task == "flywheel":
        from flywheel_assets.cli.runner import run_assets

        work = time.perf_counter()
        outcome = run_assets(landing=args.landing, lake=args.lake, select=args.select)
        result = {
            "tables": {
                name: {"version": after.version, "rows": after.rows}
                for name, _, after in outcome.tables
                if after is not None
            },
            "committed": sorted(
                name
                for name, before, after in outcome.tables
                if after is not None and (before is None or after.version != before.version)
            ),
        }
    elif args.task == "textbook":
        from .textbook import run_textbook

        work = time.perf_counter()
        # The key the parent gives every task, so both implementations hash alike.
        key = os.environ["FLYWHEEL_HASH_KEY"].encode()
        report = run_textbook(Path(args.landing), Path(args.out), key)
        result = {"valid": report.valid, "kept": report.kept, "rows": report.rows}
    else:
        from .floor import io_floor

        work = time.perf_counter()
        result = {"rows": io_floor(Path(args.landing), Path(args.out))}
    done = time.perf_counter()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    json.dump(
        {"seconds": done - work, "peak_rss_mb": peak_kb / 1024, **result},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
