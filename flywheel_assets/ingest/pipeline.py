"""Exactly-once ingestion of landing files into the bronze Delta tables.

Each run groups new files into numbered batches. A batch is first written to `ingest_ledger` as a
plan, then every table receives its rows in one commit tagged with the batch number as a Delta app
transaction, then the plan is marked done. A crash at any point leaves a plan without its done rows;
the next run replays exactly that plan, and tables that already hold the batch skip it, so each line
lands once. Files listed in the ledger as done are never read again.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import CommitFailedError

from ..catalog.raw import LEDGER, LEDGER_SCHEMA, QUARANTINE, QUARANTINE_SCHEMA, STREAM_TABLES
from ..contract.landing import FileReadError, LandingFile, LandingZone, LineChunk
from ..contract.records import (
    STREAMS,
    Reason,
    Rejection,
    Stream,
    parse_line,
    salvage_ids,
)
from ..gcpause import paused_gc
from ..lake.spill import Spill
from ..lake.tables import Lake
from . import columnar

# Tries at committing a batch of records made inside the pipeline while another writer commits.
COMMIT_ATTEMPTS = 5
# Delta app-transaction ids: one per kind of commit, versioned by batch number.
APP_ROWS = "flywheel.ingest.rows"
APP_PLAN = "flywheel.ingest.plan"
APP_DONE = "flywheel.ingest.done"


@dataclass(frozen=True)
class IngestSettings:
    chunk_lines: int = 50_000  # lines parsed and held in memory at once
    max_batch_bytes: int = 1 << 30  # landing bytes per batch (one commit per table per batch)


@dataclass
class FileResult:
    stream: str
    path: str
    size_bytes: int
    mtime: datetime | None
    sha256: str = ""
    lines_read: int = 0
    valid: int = 0
    quarantined: int = 0
    duplicates: int = 0
    erased: int = 0  # records of users erased before this file was read
    status: str = "done"
    reasons: Counter = field(default_factory=Counter)

    @property
    def balanced(self) -> bool:
        accounted = self.valid + self.quarantined + self.duplicates + self.erased
        return accounted == self.lines_read


@dataclass(frozen=True)
class ChangedFile:
    stream: str
    path: str
    ingested_sha256: str
    current_sha256: str


@dataclass
class IngestReport:
    batches: list[int] = field(default_factory=list)
    files: list[FileResult] = field(default_factory=list)
    changed: list[ChangedFile] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)

    @property
    def committed(self) -> bool:
        return bool(self.batches)

    def totals(self, stream: str | None = None) -> dict[str, int]:
        files = [f for f in self.files if stream is None or f.stream == stream]
        return {
            "files": len(files),
            "lines_read": sum(f.lines_read for f in files),
            "valid": sum(f.valid for f in files),
            "quarantined": sum(f.quarantined for f in files),
            "duplicates": sum(f.duplicates for f in files),
            "erased": sum(f.erased for f in files),
        }

    def reasons(self, stream: str | None = None) -> dict[str, int]:
        total: Counter = Counter()
        for f in self.files:
            if stream is None or f.stream == stream:
                total.update(f.reasons)
        return dict(sorted(total.items()))


class ConcurrentIngestError(RuntimeError):
    """Another ingestion planned the same batch first."""


class IngestInProgress(ConcurrentIngestError):
    """Records made inside the pipeline wait: another ingestion's batch is open."""


def ingest_landing(
    landing: LandingZone,
    lake: Lake,
    *,
    streams: Sequence[Stream] = STREAMS,
    settings: IngestSettings = IngestSettings(),
    run_id: str | None = None,
    erased: Callable[[dict], bool] | None = None,
) -> IngestReport:
    """Ingest every landing file not yet in the ledger; finish any batch a crash left open first.

    `erased` tells records of erased users, which are counted and never stored.
    """
    report = IngestReport()
    ledger = _Ledger.load(lake)
    wanted = {s.name for s in streams}
    by_name = {s.name: s for s in streams}

    for batch, planned in ledger.open_plans():
        planned = [f for f in planned if f.stream in wanted]
        if planned:
            report.resumed.append(batch)
            _run_batch(landing, lake, batch, planned, by_name, settings, run_id, erased, report)

    new_files, touched = _classify(landing, ledger, streams)
    for f in touched:
        done = ledger.done[f.path]
        current = landing.fingerprint(f.path)
        if current != done["sha256"]:
            report.changed.append(ChangedFile(f.stream, f.path, done["sha256"], current))

    batch = ledger.next_batch()
    for files in _plan(new_files, settings.max_batch_bytes):
        _commit_plan(lake, batch, files, run_id)
        if _planned_paths(lake, batch) != {f.path for f in files}:
            # Another writer planned other files in this batch at the same moment: its rows
            # would make ours look applied. These files stay new for the next run.
            raise ConcurrentIngestError(f"ingest batch {batch} was planned by another writer too")
        _run_batch(landing, lake, batch, files, by_name, settings, run_id, erased, report)
        batch += 1
    return report


def ingest_records(
    lake: Lake,
    stream: Stream,
    records: Sequence[dict],
    *,
    source: str,
    run_id: str | None = None,
    erased: Callable[[dict], bool] | None = None,
) -> IngestReport:
    """Ingest records made inside the pipeline (the drift monitor's events) as one batch of
    `stream`, through the same validation, de-duplication, quarantine and ledger as a landing file.

    Batches must commit in order, so this takes the next batch only while no other batch is open,
    and raises `IngestInProgress` otherwise: the caller makes the records again on its next run.
    `source` names them in the ledger and in each row's `_source_file`; it is not a landing file,
    so a batch a crash left open is closed by the next ingestion as missing.
    """
    data = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)
    lines = _RecordLines(source, data)
    files = [LandingFile(stream.name, source, len(data), None)]
    ledger = _Ledger.load(lake)
    if ledger.open_plans():
        raise IngestInProgress("another ingestion has a batch open")
    batch = ledger.next_batch()
    try:
        _commit_plan(lake, batch, files, run_id)
    except (ConcurrentIngestError, CommitFailedError):
        raise IngestInProgress(f"another ingestion took batch {batch}") from None
    # Two writers can both pass the plan's check before either commits: the batch is ours only
    # if the ledger plans nothing else in it.
    if _planned_paths(lake, batch) != {source}:
        raise IngestInProgress(f"another ingestion planned batch {batch} too")
    streams = {stream.name: stream}
    for attempt in range(COMMIT_ATTEMPTS):
        report = IngestReport()
        try:
            _run_batch(lines, lake, batch, files, streams, IngestSettings(), run_id, erased, report)
            break
        except CommitFailedError:
            # Another writer committed to one of the tables at the same moment. Replaying the
            # batch is safe: a table that already holds it skips it, by its app transaction.
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
    rows = lake.read(
        stream.table, columns=["_source_file"], filter=pc.field("_ingest_batch") == batch
    )
    held = 0 if rows is None else rows["_source_file"].to_pylist().count(source)
    if held != report.totals()["valid"]:
        raise IngestInProgress(f"batch {batch} of {stream.table} holds another ingestion's rows")
    return report


def _planned_paths(lake: Lake, batch: int) -> set[str]:
    plans = lake.read(
        LEDGER.name,
        columns=["path"],
        filter=(pc.field("batch") == batch) & (pc.field("status") == "planned"),
    )
    return set() if plans is None else set(plans["path"].to_pylist())


class _RecordLines:
    """Records held in memory, read the way `_run_batch` reads a landing file."""

    def __init__(self, path: str, data: bytes):
        self.path, self.data = path, data

    def exists(self, path: str) -> bool:
        return path == self.path

    def read_lines(self, path: str, chunk_lines: int, digest) -> Iterator[LineChunk]:
        digest.update(self.data)
        lines = self.data.split(b"\n")[:-1]
        for start in range(0, len(lines), chunk_lines):
            yield LineChunk(start + 1, lines[start : start + chunk_lines])


def new_landing_files(
    landing: LandingZone, lake: Lake, streams: Sequence[Stream] = STREAMS
) -> list[LandingFile]:
    """Landing files the ledger has never seen (what the next ingestion would read)."""
    return _classify(landing, _Ledger.load(lake), streams)[0]


def _classify(
    landing: LandingZone, ledger: _Ledger, streams: Sequence[Stream]
) -> tuple[list[LandingFile], list[LandingFile]]:
    """Split listed files into never-seen ones and ingested ones whose size or mtime moved."""
    new, touched = [], []
    for stream in streams:
        for f in landing.list_files(stream.name):
            done = ledger.done.get(f.path)
            if done is None:
                if f.path not in ledger.planned_paths:
                    new.append(f)
            elif (f.size, _us(f.mtime)) != (done["size_bytes"], _us(done["mtime"])):
                touched.append(f)
    return new, touched


def _plan(files: list[LandingFile], max_bytes: int) -> Iterator[list[LandingFile]]:
    current: list[LandingFile] = []
    size = 0
    for f in files:
        if current and size + f.size > max_bytes:
            yield current
            current, size = [], 0
        current.append(f)
        size += f.size
    if current:
        yield current


def _commit_plan(lake: Lake, batch: int, files: list[LandingFile], run_id: str | None) -> None:
    now = datetime.now(UTC)
    rows = [
        _ledger_row(batch, "planned", f.stream, f.path, f.size, f.mtime, now, run_id) for f in files
    ]
    applied = lake.append(
        LEDGER,
        pa.Table.from_pylist(rows, schema=LEDGER_SCHEMA),
        transaction=(APP_PLAN, batch),
        metadata={"flywheel.operation": "ingest-plan", "batch": batch, "dagster_run_id": run_id},
    )
    if not applied:
        raise ConcurrentIngestError(
            f"ingest batch {batch} was planned by another run; retry when it has finished"
        )


@paused_gc()
def _run_batch(
    landing: LandingZone | _RecordLines,
    lake: Lake,
    batch: int,
    files: list[LandingFile],
    streams: dict[str, Stream],
    settings: IngestSettings,
    run_id: str | None,
    erased: Callable[[dict], bool] | None,
    report: IngestReport,
) -> None:
    ingested_at = datetime.now(UTC)
    results: list[FileResult] = []
    with tempfile.TemporaryDirectory(prefix="flywheel-quarantine-") as tmp:
        spill = _QuarantineSpill(Path(tmp) / "quarantine.arrow", batch, ingested_at)
        for name, stream in streams.items():
            stream_files = [f for f in files if f.stream == name]
            if not stream_files:
                continue
            stream_results = [FileResult(f.stream, f.path, f.size, f.mtime) for f in stream_files]
            results.extend(stream_results)
            # Read before the write starts: the row generator runs inside deltalake's writer and
            # must not call deltalake itself.
            known_ids = _ids_before(lake, stream, batch)
            rows = _stream_rows(
                landing,
                stream,
                stream_results,
                known_ids,
                batch,
                ingested_at,
                settings,
                spill,
                erased,
            )
            reader = pa.RecordBatchReader.from_batches(stream.schema, rows)
            meta = _commit_meta("ingest", batch, run_id, stream_files)
            if _applied(lake, stream.table, APP_ROWS, batch):
                for _ in reader:  # recompute the counts; the rows are already in the table
                    pass
            else:
                lake.append(
                    STREAM_TABLES[stream.name], reader, transaction=(APP_ROWS, batch), metadata=meta
                )
        lake.append(
            QUARANTINE,
            spill.finish(),
            transaction=(APP_ROWS, batch),
            metadata=_commit_meta("ingest", batch, run_id, files),
        )

    now = datetime.now(UTC)
    done_rows = []
    for r in results:
        row = _ledger_row(batch, r.status, r.stream, r.path, r.size_bytes, r.mtime, now, run_id)
        row.update(
            sha256=r.sha256,
            lines_read=r.lines_read,
            valid=r.valid,
            quarantined=r.quarantined,
            duplicates=r.duplicates,
            erased=r.erased,
        )
        done_rows.append(row)
    lake.append(
        LEDGER,
        pa.Table.from_pylist(done_rows, schema=LEDGER_SCHEMA),
        transaction=(APP_DONE, batch),
        metadata={"flywheel.operation": "ingest-done", "batch": batch, "dagster_run_id": run_id},
    )
    report.batches.append(batch)
    report.files.extend(results)


def _stream_rows(
    landing: LandingZone | _RecordLines,
    stream: Stream,
    results: list[FileResult],
    known_ids: pa.Array | None,
    batch: int,
    ingested_at: datetime,
    settings: IngestSettings,
    spill: _QuarantineSpill,
    erased: Callable[[dict], bool] | None,
) -> Iterator[pa.RecordBatch]:
    """Parse, validate and de-duplicate the stream's files; yield valid rows in bounded batches."""
    seen: set[str] = set()
    erased_rows = columnar.erased_rows(erased)
    for result in results:
        if not landing.exists(result.path):
            result.status = "missing"
            continue
        digest = hashlib.sha256()
        try:
            for chunk in landing.read_lines(result.path, settings.chunk_lines, digest):
                result.lines_read += len(chunk.lines)
                rows = _chunk_rows(stream, chunk, result, batch, ingested_at, spill, erased)
                if rows.num_rows and erased_rows is not None:
                    hit = erased_rows(rows)
                    result.erased += int(hit.sum())
                    rows = rows.filter(pa.array(~hit))
                if rows.num_rows:
                    fresh = columnar.first_seen(rows[stream.id_field], seen)
                    result.duplicates += int((~fresh).sum())
                    rows = rows.filter(pa.array(fresh))
                if rows.num_rows:
                    yield from _drop_known(stream, rows, known_ids, result)
        except FileReadError as err:
            result.lines_read += 1
            result.quarantined += 1
            result.reasons[Reason.UNREADABLE_FILE.value] += 1
            rej = Rejection(Reason.UNREADABLE_FILE, f"file could not be read past here: {err}")
            spill.add(stream.name, result.path, err.line_number, rej, b"")
        result.sha256 = digest.hexdigest()


def _chunk_rows(
    stream: Stream,
    chunk: LineChunk,
    result: FileResult,
    batch: int,
    ingested_at: datetime,
    spill: _QuarantineSpill,
    erased: Callable[[dict], bool] | None,
) -> pa.Table:
    """The chunk's rows that pass the contract, in line order, with provenance; its bad lines
    quarantined (or counted as erased). Most lines are parsed in bulk by `columnar`; the lines it
    is not sure of go through `parse_line` one by one, which decides them as it always has."""
    parsed = columnar.parse_chunk(stream, chunk.lines)
    rows, index = [], []
    for i in parsed.fallback:
        raw = chunk.lines[i]
        try:
            row = parse_line(stream, raw)
        except Rejection as rej:
            if erased is not None and erased(salvage_ids(raw)):
                result.erased += 1
                continue
            spill.add(stream.name, result.path, chunk.first_line + i, rej, raw)
            result.quarantined += 1
            result.reasons[rej.code.value] += 1
            continue
        rows.append(row)
        index.append(i)
    table, lines = columnar.merge_rows(stream, parsed, rows, index)
    return columnar.with_provenance(
        stream, table, lines + chunk.first_line, result.path, batch, ingested_at
    )


def _drop_known(
    stream: Stream, rows: pa.Table, known_ids: pa.Array | None, result: FileResult
) -> Iterator[pa.RecordBatch]:
    batch = rows.combine_chunks().to_batches()[0]
    if known_ids is None or len(known_ids) == 0:
        result.valid += batch.num_rows
        yield batch
        return
    fresh = pc.invert(pc.is_in(batch[stream.id_field], value_set=known_ids))
    kept = batch.filter(fresh)
    result.valid += kept.num_rows
    result.duplicates += batch.num_rows - kept.num_rows
    if kept.num_rows:
        yield kept


def _ids_before(lake: Lake, stream: Stream, batch: int) -> pa.Array | None:
    """Ids stored by earlier batches; rows of this batch (a replay) must not count as duplicates."""
    ids = lake.read(
        stream.table, columns=[stream.id_field], filter=pc.field("_ingest_batch") < batch
    )
    if ids is None:
        return None
    return pc.unique(ids[stream.id_field].combine_chunks())


def _applied(lake: Lake, table: str, app_id: str, batch: int) -> bool:
    dt = lake.open(table)
    if dt is None:
        return False
    version = dt.transaction_version(app_id)
    return version is not None and version >= batch


class _QuarantineSpill:
    """Quarantined lines go to a local Arrow file as they are found, so memory stays bounded."""

    def __init__(self, path: Path, batch: int, ingested_at: datetime, flush_rows: int = 10_000):
        self.path, self.batch, self.ingested_at = path, batch, ingested_at
        self.flush_rows = flush_rows
        self.rows: list[dict] = []
        self.spill = Spill(path, QUARANTINE_SCHEMA)

    def add(self, stream: str, path: str, line: int, rej: Rejection, raw: bytes) -> None:
        self.rows.append(
            {
                "stream": stream,
                "source_file": path,
                "line_number": line,
                "reason_code": rej.code.value,
                "reason": rej.detail,
                "raw_line": raw.decode("utf-8", errors="replace"),
                "raw_bytes": raw,
                "_ingest_batch": self.batch,
                "_ingested_at": self.ingested_at,
            }
        )
        if len(self.rows) >= self.flush_rows:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.spill.write(pa.RecordBatch.from_pylist(self.rows, QUARANTINE_SCHEMA))
            self.rows = []

    def finish(self) -> pa.RecordBatchReader:
        self._flush()
        return self.spill.reader()


class _Ledger:
    def __init__(self, table: pa.Table | None):
        rows = table.to_pylist() if table is not None else []
        self.max_batch = max((r["batch"] for r in rows), default=0)
        finished = {r["batch"] for r in rows if r["status"] != "planned"}
        self.done: dict[str, dict] = {}
        self._open: dict[int, list[LandingFile]] = {}
        for r in rows:
            if r["status"] != "planned":
                self.done[r["path"]] = r
            elif r["batch"] not in finished:
                self._open.setdefault(r["batch"], []).append(
                    LandingFile(r["stream"], r["path"], r["size_bytes"], r["mtime"])
                )
        self.planned_paths = {f.path for files in self._open.values() for f in files}

    @classmethod
    def load(cls, lake: Lake) -> _Ledger:
        return cls(lake.read(LEDGER.name))

    def open_plans(self) -> list[tuple[int, list[LandingFile]]]:
        return sorted(self._open.items())

    def next_batch(self) -> int:
        return self.max_batch + 1


def _ledger_row(
    batch: int,
    status: str,
    stream: str,
    path: str,
    size: int,
    mtime: datetime | None,
    now: datetime,
    run_id: str | None,
) -> dict:
    return {
        "batch": batch,
        "status": status,
        "stream": stream,
        "path": path,
        "size_bytes": size,
        "mtime": mtime,
        "sha256": None,
        "lines_read": None,
        "valid": None,
        "quarantined": None,
        "duplicates": None,
        "erased": None,
        "recorded_at": now,
        "dagster_run_id": run_id,
    }


def _commit_meta(op: str, batch: int, run_id: str | None, files: list[LandingFile]) -> dict:
    return {
        "flywheel.operation": op,
        "batch": batch,
        "dagster_run_id": run_id or "",
        "files": len(files),
    }


def _us(ts: datetime | None) -> int | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return int(ts.timestamp() * 1_000_000)
