"""Options every `flywheel` command shares, declared once, and the lake they name."""

from __future__ import annotations

import argparse

from ..lake.tables import Lake
from ..settings import landing_root, open_lake
from .output import CliError


def add_lake(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lake", metavar="URI", help="lake root (default: $FLYWHEEL_LAKE or data/lake)"
    )


def add_landing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--landing", metavar="DIR", help="landing root (default: $FLYWHEEL_LANDING or data/landing)"
    )


def add_locations(parser: argparse.ArgumentParser) -> None:
    add_landing(parser)
    add_lake(parser)


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")


def lake_of(args: argparse.Namespace) -> Lake:
    """The lake `--lake` names, opened from settings like the lake resource opens it."""
    try:
        return open_lake(getattr(args, "lake", None))
    except ValueError as exc:
        raise CliError(str(exc)) from None


def landing_of(args: argparse.Namespace) -> str:
    return landing_root(getattr(args, "landing", None))
