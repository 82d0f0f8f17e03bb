"""`flywheel review`: the review page operators correct the queue on, and the dashboard."""

from __future__ import annotations

import argparse
import os

from .collector import producer_tokens, spool_dir
from .options import add_locations, lake_of, landing_of
from .output import CliError

OPERATOR_TOKENS_ENV = "FLYWHEEL_OPERATOR_TOKENS"


def add_commands(sub) -> None:
    review = sub.add_parser(
        "review",
        help="serve the review page (queue, item, dashboard) for operators on 127.0.0.1",
        description="Serve the review page over the lake's redacted tables: operators sign in with "
        f"their own tokens (${OPERATOR_TOKENS_ENV}: name=token pairs, comma-separated, 16+ "
        "characters each), work through review_queue, and submit verdicts and corrections, which "
        "land as annotations through the collector's spool. Needs the [collector] extra.",
    )
    review.add_argument("--host", default="127.0.0.1", help="interface (127.0.0.1)")
    review.add_argument("--port", type=int, default=8801, help="port (8801)")
    add_locations(review)
    review.add_argument(
        "--spool-dir",
        metavar="DIR",
        help="where annotations are written before they are published (default: LANDING/_review "
        "for a local landing zone)",
    )
    review.add_argument(
        "--dagster-url",
        default="http://127.0.0.1:3000",
        help="the Dagster UI the dashboard links each table to (http://127.0.0.1:3000)",
    )
    review.add_argument(
        "--max-file-seconds",
        type=float,
        default=5.0,
        help="publish reviewed annotations to the landing zone after N seconds (5)",
    )
    review.set_defaults(handler=_review)


def _review(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..collector.writer import WriterSettings
        from ..review.app import ReviewSettings, create_app
        from ..review.auth import TokenError, parse_operator_tokens
    except ImportError as exc:
        raise CliError(
            "the review page needs the [collector] extra "
            f"(pip install 'flywheel[collector]'): {exc}"
        ) from None
    landing = landing_of(args)
    spool = spool_dir(args, landing, "_review")
    producers = producer_tokens()
    try:
        operators = parse_operator_tokens(os.environ.get(OPERATOR_TOKENS_ENV, ""), producers)
    except TokenError as exc:
        raise CliError(f"{exc}; set ${OPERATOR_TOKENS_ENV} to name=token pairs") from None
    settings = ReviewSettings(
        lake=lake_of(args).root,
        landing=landing,
        operators=operators,
        spool_dir=spool,
        producer_tokens=producers,
        dagster_url=args.dagster_url.rstrip("/"),
        writer=WriterSettings(max_file_seconds=args.max_file_seconds),
    )
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0
