"""A small flywheel on a test folder: landing files written, then ingest, privacy, tagging and
curation run directly on the lake."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.curation.datasets import CurationPolicy
from flywheel_assets.curation.pipeline import FeedbackCap, build_curated_sets, build_tagged_rows
from flywheel_assets.curation.signals import SignalWeights
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.lake.tables import Lake
from flywheel_assets.privacy.sampling import SamplingPolicy
from flywheel_tests.support.privacy import DETECTOR, KEY, build
from flywheel_tests.support.records import write_lines


class Flywheel:
    """A landing zone and a lake on tmp_path, run through ingest, privacy and curation."""

    def __init__(self, root: Path, policy: CurationPolicy | None = None):
        self.landing = root / "landing"
        self.lake = Lake(str(root / "lake"))
        self.policy = policy or CurationPolicy(holdout_share=0.0)
        self.files = 0

    def add(self, interactions=(), feedbacks=(), annotations=(), drift=()):
        self.files += 1
        for stream, rows in [
            ("interactions", interactions),
            ("feedback", feedbacks),
            ("annotations", annotations),
            ("drift_events", drift),
        ]:
            if rows:
                write_lines(self.landing, f"{stream}/{self.files:03d}.jsonl", list(rows))
        return self

    def run(self, cap: FeedbackCap | None = None):
        ingest_landing(LandingZone(str(self.landing)), self.lake)
        build(self.lake, SamplingPolicy(healthy_share=1.0))
        self.tagging = build_tagged_rows(
            self.lake, DETECTOR, SignalWeights(), cap or FeedbackCap(), self.policy
        )
        self.curation = build_curated_sets(self.lake, DETECTOR, KEY, self.policy)
        return self

    def rows(self, table: str) -> list[dict]:
        return self.lake.read(table).to_pylist()

    def tagged(self, rid: str) -> dict:
        return next(r for r in self.rows("tagged_rows") if r["request_id"] == rid)

    def ids(self, table: str, column: str = "source_request_ids") -> list:
        return sorted(
            r[column][0] if isinstance(r[column], list) else r[column] for r in self.rows(table)
        )


# Stamped per build: the versions read and the time, never the content.
STAMPS = ["_curated_at", "source_versions"]


def _comparable(rows: pa.Table) -> pa.Table:
    key = next(
        c for c in ("request_id", "case_id", "example_id", "pair_id") if c in rows.schema.names
    )
    return rows.drop_columns(STAMPS).sort_by(key)


def assert_same_rows(lake: Lake, other: Lake, table: str) -> None:
    """The table holds the same rows in both lakes, compared sorted by key, stamps aside."""
    mine, theirs = _comparable(lake.read(table)), _comparable(other.read(table))
    assert mine.num_rows == theirs.num_rows, table
    for name in theirs.column_names:
        assert mine[name].to_pylist() == theirs[name].to_pylist(), (table, name)
