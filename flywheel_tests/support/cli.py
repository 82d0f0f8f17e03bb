"""The `flywheel` command run as a user runs it, in a subprocess from the repository root, and a
reader for the tables it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The repository root: flywheel_tests/support/cli.py is two folders below it.
ROOT = Path(__file__).resolve().parents[2]


# Settings the suite chooses for every process (the tiny base model); the others are the test's.
SUITE_SETTINGS = ("FLYWHEEL_BASE_MODEL",)


def flywheel(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k in SUITE_SETTINGS or not k.startswith(("FLYWHEEL_", "DAGSTER_HOME"))
    }
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "flywheel_assets.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=full_env,
        cwd=ROOT,
    )


def parse_table(text: str, first_header: str) -> dict[str, list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first_header))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        cells = line.split()
        rows[cells[0]] = cells[1:]
    return rows
