"""Typed run reports: what an asset records in its materialization metadata and the CLI summary
reads back, each key named once, so renaming a field changes both sides or fails the type check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Self


class _Report:
    def metadata(self) -> dict:
        """The report as materialization metadata (dicts and lists become JSON entries)."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, object]) -> Self | None:
        """The report an asset recorded, or None when this materialization holds none."""
        names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        if not any(n in metadata for n in names):
            return None
        return cls(**{n: metadata[n] for n in names if n in metadata})


@dataclass(frozen=True)
class LandingTotals(_Report):
    """What ingestion did with one stream's landing lines in a run."""

    files_ingested: int = 0
    lines_read: int = 0
    valid: int = 0
    quarantined: int = 0
    duplicates: int = 0
    erased: int = 0


@dataclass(frozen=True)
class LedgerReport(_Report):
    """The ingest batches a run committed, replayed, and the landing files that changed after
    they were ingested (never read again)."""

    batches: list[int] = field(default_factory=list)
    resumed_batches: list[int] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SamplingReport(_Report):
    """How many new interactions redaction kept, by keep reason ('unsampled': dropped)."""

    kept_by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DriftReport(_Report):
    """The model versions whose negative-feedback rate breached, and the drift events stored."""

    breaches: dict[str, float] = field(default_factory=dict)
    events_stored: int = 0


@dataclass(frozen=True)
class SnapshotReport(_Report):
    """What a retrain pinned: the snapshot, each table's version, rows and rows new since the
    previous snapshot."""

    snapshot_id: str = ""
    dataset_versions: dict[str, int] = field(default_factory=dict)
    rows_at_versions: dict[str, int] = field(default_factory=dict)
    new_rows: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AdapterReport(_Report):
    """The adapter a retrain trained: where it is, on what, and each stage's first and last loss."""

    model_id: str = ""
    base_model: str = ""
    method: str = ""
    device: str = ""
    snapshot_id: str = ""
    losses: dict[str, dict[str, float]] = field(default_factory=dict)
