"""The `flywheel` parser and entry point; each command group registers itself from its module."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import collector, data, privacy, review, training, versions
from .output import CliError


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"flywheel {args.command}: error: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flywheel",
        description="Turn an LLM app's production interactions and feedback into versioned, "
        "curated Delta tables. Every command works on a landing zone (JSON Lines from the app) "
        "and a lake (Delta tables).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for commands in (data, privacy, training, versions, collector, review):
        commands.add_commands(sub)
    return parser


def console() -> None:
    """The `flywheel` executable: run, flush, and leave without interpreter teardown.

    deltalake's reader threads can outlive Python's finalization and abort the process at exit
    (delta-rs issue 2184), turning a finished command into exit code 134; everything is written
    and flushed by then, so the process ends with the command's own code instead.
    """
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
