"""Build the redacted (silver) tables from the bronze tables, incrementally, exactly once.

Each redacted table records, as a Delta app transaction, the last ingest batch it has consumed; a
run reads only bronze rows of later batches and commits them with the new watermark in one commit,
so a re-run after a crash neither skips nor repeats rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain

import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.raw import LEDGER
from ..catalog.redacted import REDACTED_ANNOTATIONS, REDACTED_FEEDBACK, REDACTED_LOGS
from ..contract.records import ANNOTATIONS, DRIFT_EVENTS, FEEDBACK, INTERACTIONS, TIMESTAMP
from ..gcpause import paused_gc
from ..governance.exclusions import Exclusions
from ..governance.hashing import hash_column
from ..governance.tombstones import Tombstones
from ..lake.spill import Spill, spill_directory
from ..lake.tables import Lake, TableSpec
from .erasure import commit_without_erased
from .pii import Detector
from .redact import pseudonymize, redact_table
from .sampling import (
    DROPPED,
    KEEP_REASONS,
    DriftWindow,
    SamplingPolicy,
    drift_windows,
    keep_reasons,
    reason_counts,
)

APP_ID = "flywheel.privacy"
# Commit metadata of every redaction: the detector's version, and the earlier ingest batches whose
# late-kept rows the commit added (its own batches are `ingest_batches`).
DETECTOR_VERSION_KEY = "flywheel.detector_version"
LATE_BATCHES_KEY = "flywheel.late_batches"
# New rows are redacted this many at a time.
PIECE_ROWS = 100_000


@dataclass
class RedactionReport:
    table: str
    watermark_before: int
    watermark: int
    rows_written: int = 0
    committed: bool = False
    pii_found: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)  # redacted_logs only: rows per keep reason
    late_kept: int = 0  # interactions of earlier batches kept because a signal arrived later
    late_batches: set[int] = field(default_factory=set)  # the ingest batches those came from
    erased_skipped: int = 0
    rolled_back_skipped: int = 0  # rows a rollback excluded, left out until re-admitted


def ingested_watermark(lake: Lake) -> int:
    """The last ingest batch that is completely in the bronze tables."""
    ledger = lake.read(LEDGER.name, columns=["batch", "status"])
    if ledger is None:
        return 0
    done = ledger.filter(pc.not_equal(ledger["status"], "planned"))["batch"]
    planned = ledger.filter(pc.equal(ledger["status"], "planned"))["batch"]
    open_batches = set(planned.to_pylist()) - set(done.to_pylist())
    last = pc.max(done).as_py() or 0
    # A batch still open (a crashed run) holds back the watermark until it is finished.
    return min([last, *(b - 1 for b in open_batches)])


def redact_feedback(lake: Lake, detector: Detector, key: bytes) -> RedactionReport:
    return _redact_simple(
        lake,
        REDACTED_FEEDBACK,
        FEEDBACK.table,
        detector,
        key,
        hash_user=True,
        id_column="feedback_id",
    )


def redact_annotations(lake: Lake, detector: Detector, key: bytes) -> RedactionReport:
    return _redact_simple(
        lake,
        REDACTED_ANNOTATIONS,
        ANNOTATIONS.table,
        detector,
        key,
        hash_user=False,
        id_column="annotation_id",
    )


@paused_gc()
def redact_logs(
    lake: Lake, detector: Detector, key: bytes, policy: SamplingPolicy
) -> RedactionReport:
    """Keep the interactions worth keeping (the sampling budget), redacted and user-hashed."""
    spec = REDACTED_LOGS
    before, target = _watermark(lake, spec.name), ingested_watermark(lake)
    report = RedactionReport(spec.name, before, target)
    if target <= before:
        return report
    new = _batch_filter(before, target)
    upto = pc.field("_ingest_batch") <= target
    # The answer a comparison was won against is feedback on that answer too.
    feedback_ids = pa.concat_arrays(
        [
            _column(lake, FEEDBACK.table, "request_id", upto),
            _column(lake, FEEDBACK.table, "other_request_id", upto).drop_null(),
        ]
    )
    annotated = _column(lake, ANNOTATIONS.table, "request_id", upto)
    windows = _drift_windows(lake, target)

    # Signals that arrived in this run for interactions of earlier batches, which a past run may
    # have dropped: re-evaluate those interactions too.
    late_ids = pa.concat_arrays(
        [
            _column(lake, FEEDBACK.table, "request_id", new),
            _column(lake, FEEDBACK.table, "other_request_id", new).drop_null(),
            _column(lake, ANNOTATIONS.table, "request_id", new),
        ]
    )
    earlier = pc.field("_ingest_batch") <= before
    late_filter = earlier & pc.field("request_id").isin(pc.unique(late_ids))
    new_windows = _drift_windows(lake, target, since=before)
    for w in new_windows:
        late_filter = late_filter | (
            earlier
            & (pc.field("ts") >= pa.scalar(w.start, TIMESTAMP))
            & (pc.field("ts") <= pa.scalar(w.end, TIMESTAMP))
        )
    late = lake.read(INTERACTIONS.table, filter=late_filter) if before else None
    pieces = ((rows, False) for rows in lake.scan(INTERACTIONS.table, filter=new, rows=PIECE_ROWS))
    if late is not None and late.num_rows:
        kept_already = _column(lake, spec.name, "request_id")
        stored_ids, _ = pseudonymize(late["request_id"], detector, key)  # as redacted_logs has them
        late = late.filter(pc.invert(pc.is_in(stored_ids, value_set=kept_already)))
        pieces = chain(pieces, [(late, True)])

    # New interactions are kept, hashed and redacted a piece at a time, so memory follows the
    # piece, not the batch.
    kept_for: Counter[str] = Counter()
    exclusions, tombstones = Exclusions.load(lake), Tombstones.load(lake)
    with_feedback, with_annotation = pc.unique(feedback_ids), pc.unique(annotated)

    def kept_pieces() -> Iterator[pa.Table]:
        for raw, is_late in pieces:
            reasons = keep_reasons(
                raw,
                with_feedback=with_feedback,
                with_annotation=with_annotation,
                drift_windows=windows,
                policy=policy,
                key=key,
            )
            kept_for.update(reason_counts(reasons))
            kept = raw.append_column("keep_reason", reasons)
            kept = kept.filter(pc.not_equal(reasons, "unsampled"))
            if is_late:
                report.late_kept += kept.num_rows
                report.late_batches.update(pc.unique(kept["_ingest_batch"]).to_pylist())
            kept = kept.append_column("user_hash", hash_column(kept["user_id"], key, "user"))
            kept = kept.append_column(
                "session_hash", hash_column(kept["session_id"], key, "session")
            )
            kept, erased = _drop_erased(tombstones, kept)
            kept, excluded = drop_excluded(exclusions, kept, "request_id", detector, key)
            report.erased_skipped += erased
            report.rolled_back_skipped += excluded
            yield kept

    _write(lake, spec, kept_pieces(), detector, key, report)
    report.kept = {reason: kept_for[reason] for reason in (*KEEP_REASONS, DROPPED)}
    return report


@paused_gc()
def _redact_simple(
    lake: Lake,
    spec: TableSpec,
    source: str,
    detector: Detector,
    key: bytes,
    *,
    hash_user: bool,
    id_column: str,
) -> RedactionReport:
    before, target = _watermark(lake, spec.name), ingested_watermark(lake)
    report = RedactionReport(spec.name, before, target)
    if target <= before:
        return report
    if lake.open(source) is None:
        return report
    exclusions, tombstones = Exclusions.load(lake), Tombstones.load(lake)

    def pieces() -> Iterator[pa.Table]:
        for rows in lake.scan(source, filter=_batch_filter(before, target), rows=PIECE_ROWS):
            if hash_user:
                rows = rows.append_column("user_hash", hash_column(rows["user_id"], key, "user"))
            rows, erased = _drop_erased(tombstones, rows)
            rows, excluded = drop_excluded(exclusions, rows, id_column, detector, key)
            report.erased_skipped += erased
            report.rolled_back_skipped += excluded
            yield rows

    _write(lake, spec, pieces(), detector, key, report)
    return report


def _write(
    lake: Lake,
    spec: TableSpec,
    pieces: Iterable[pa.Table],
    detector: Detector,
    key: bytes,
    report: RedactionReport,
) -> None:
    """Redact every piece into a local spill, then append them all in one commit."""
    redacted_at = datetime.now(UTC)
    found: Counter[str] = Counter()
    # Redacted rows about people: a private folder of the lake, never the shared temp folder.
    with spill_directory(lake.root, "redact") as tmp:
        spill = Spill(tmp / "redacted.arrow", spec.schema)
        for rows in pieces:
            # Every string column of the target schema: redacted, or pseudonymized if an id.
            redacted = redact_table(rows, detector, key, spec.schema.names)
            redacted = redacted.append_column(
                "_redacted_at", pa.array([redacted_at] * redacted.num_rows, TIMESTAMP)
            )
            found.update(_sum_counts(redacted["pii_counts"]))
            # The spill keeps exactly the target schema: raw-only columns (user_id, session_id,
            # provenance) are left behind.
            spill.write(redacted)
        report.pii_found = {k: v for k, v in found.items() if v}
        report.committed, erased = commit_without_erased(
            lake,
            spec.name,
            spill.reader(),
            key,
            lambda rows: lake.append(
                spec,
                rows,
                transaction=(f"{APP_ID}.{spec.name}", report.watermark),
                metadata={
                    "flywheel.operation": "redact",
                    "ingest_batches": [report.watermark_before + 1, report.watermark],
                    # Which detector redacted which batches: what `redact_again` reads.
                    DETECTOR_VERSION_KEY: detector.version,
                    LATE_BATCHES_KEY: sorted(report.late_batches),
                },
            ),
        )
        report.erased_skipped += erased  # erased while this run read its inputs
        report.rows_written = spill.rows - erased


def _drop_erased(tombstones: Tombstones, rows: pa.Table) -> tuple[pa.Table, int]:
    if tombstones.empty or rows.num_rows == 0:
        return rows, 0
    erased = pc.is_in(rows["request_id"], value_set=tombstones.request_ids)
    if "user_hash" in rows.column_names:
        erased = pc.or_kleene(erased, pc.is_in(rows["user_hash"], value_set=tombstones.user_hashes))
    erased = pc.fill_null(erased, False)
    return rows.filter(pc.invert(erased)), int(pc.sum(erased).as_py() or 0)


def drop_excluded(
    exclusions: Exclusions, rows: pa.Table, column: str, detector: Detector, key: bytes
) -> tuple[pa.Table, int]:
    """`rows` without those a rollback excluded. A rollback names ids as they are stored, so an
    id that held PII is excluded by its pseudonym: both forms are matched."""
    rows, dropped = exclusions.drop(rows, column)
    excluded = exclusions.values(column)
    if rows.num_rows == 0 or len(excluded) == 0:
        return rows, dropped
    stored, _ = pseudonymize(rows[column], detector, key)
    hit = pc.fill_null(pc.is_in(stored, value_set=excluded), False)
    return rows.filter(pc.invert(hit)), dropped + int(pc.sum(hit).as_py() or 0)


def _watermark(lake: Lake, table: str) -> int:
    dt = lake.open(table)
    if dt is None:
        return 0
    return dt.transaction_version(f"{APP_ID}.{table}") or 0


def _batch_filter(after: int, upto: int) -> pc.Expression:
    return (pc.field("_ingest_batch") > after) & (pc.field("_ingest_batch") <= upto)


def _column(lake: Lake, table: str, name: str, filter: pc.Expression | None = None) -> pa.Array:
    data = lake.read(table, columns=[name], filter=filter)
    if data is None:
        return pa.array([], pa.string())
    return data[name].combine_chunks()


def _drift_windows(lake: Lake, upto: int, since: int = 0) -> list[DriftWindow]:
    events = lake.read(
        DRIFT_EVENTS.table,
        columns=["ts", "window_hours"],
        filter=_batch_filter(since, upto),
    )
    return drift_windows(events)


def _sum_counts(counts: pa.ChunkedArray) -> dict[str, int]:
    maps = counts.combine_chunks()
    if len(maps.keys) == 0:
        return {}
    table = pa.table({"kind": maps.keys, "n": maps.items})
    summed = table.group_by("kind").aggregate([("n", "sum")])
    return dict(zip(summed["kind"].to_pylist(), summed["n_sum"].to_pylist(), strict=True))
