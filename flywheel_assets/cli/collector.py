"""`flywheel collect`: the HTTP collector apps send interactions and feedback to."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .options import add_landing, landing_of
from .output import CliError

TOKENS_ENV = "FLYWHEEL_COLLECTOR_TOKENS"


def add_commands(sub) -> None:
    collect = sub.add_parser(
        "collect",
        help="serve the HTTP collector: POST /v1/interactions, /v1/feedback, /v1/annotations",
        description="Accept records in the landing contract over HTTP and append them to the "
        f"landing zone in rotated files. Bearer tokens come from ${TOKENS_ENV} "
        "(comma-separated, 16+ characters each). Needs the [collector] extra.",
    )
    collect.add_argument("--host", default="127.0.0.1", help="interface (127.0.0.1)")
    collect.add_argument("--port", type=int, default=8800, help="port (8800)")
    add_landing(collect)
    collect.add_argument(
        "--spool-dir",
        metavar="DIR",
        help="where files are written before they are published (default: LANDING/_collector "
        "for a local landing zone)",
    )
    collect.add_argument(
        "--max-file-seconds", type=float, default=60.0, help="publish a file after N seconds (60)"
    )
    collect.add_argument(
        "--max-file-mb", type=float, default=16.0, help="publish a file at N MB (16)"
    )
    collect.add_argument(
        "--max-body-mb", type=float, default=1.0, help="largest request body (1 MB)"
    )
    collect.add_argument("--max-records", type=int, default=1000, help="records per request (1000)")
    collect.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        help="answer 408 to a client that has not sent its whole body N seconds after its "
        "headers (30)",
    )
    collect.set_defaults(handler=_collect)


def producer_tokens() -> tuple[str, ...]:
    """The collector's bearer tokens from the environment."""
    return tuple(t.strip() for t in os.environ.get(TOKENS_ENV, "").split(",") if t.strip())


def spool_dir(args: argparse.Namespace, landing: str, name: str) -> Path:
    """`--spool-dir`, else the folder `name` in a local landing zone."""
    if args.spool_dir:
        return Path(args.spool_dir)
    if "://" in landing:
        raise CliError("a landing zone on an object store needs --spool-dir (a local folder)")
    return Path(landing) / name


def _collect(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..collector.app import CollectorSettings, create_app
        from ..collector.writer import WriterSettings
    except ImportError as exc:
        raise CliError(
            f"the collector needs the [collector] extra (pip install 'flywheel[collector]'): {exc}"
        ) from None
    landing = landing_of(args)
    spool = spool_dir(args, landing, "_collector")
    tokens = list(producer_tokens())
    try:
        settings = CollectorSettings(
            landing=landing,
            tokens=tokens,
            spool_dir=spool,
            max_body_bytes=int(args.max_body_mb * (1 << 20)),
            max_records=args.max_records,
            body_timeout_seconds=args.body_timeout,
            writer=WriterSettings(
                max_file_bytes=int(args.max_file_mb * (1 << 20)),
                max_file_seconds=args.max_file_seconds,
            ),
        )
    except ValueError as exc:
        raise CliError(f"{exc}; set ${TOKENS_ENV}") from None
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    return 0
