"""The `flywheel` command: one parser, one module per group of commands."""

from .main import build_parser, console, main

__all__ = ["build_parser", "console", "main"]
