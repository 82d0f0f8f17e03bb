"""Fixtures of the collector tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel_tests.support.collector import InProcessCollector, serve_collector


@pytest.fixture
def serve(landing_dir: Path, tmp_path: Path) -> Iterator:
    """Start an in-process collector over `landing_dir` (settings as keyword arguments); the same
    spool folder each time, so a second start is a restart. All are stopped at the end."""
    started: list[InProcessCollector] = []

    def start(**overrides) -> InProcessCollector:
        started.append(serve_collector(landing_dir, tmp_path / "spool", **overrides))
        return started[-1]

    yield start
    for collector in started:
        collector.stop()
