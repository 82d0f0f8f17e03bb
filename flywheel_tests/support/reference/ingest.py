"""The per-line ingest loop as it was before the columnar fast path: every line through
`parse_line`, rows built as dicts. Tests run both over the same lines and compare."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from flywheel_assets.contract.landing import FileReadError
from flywheel_assets.contract.records import Reason, Rejection, Stream, parse_line, salvage_ids


def reference_stream_rows(
    landing,
    stream: Stream,
    results: list,
    known_ids: pa.Array | None,
    batch: int,
    ingested_at: datetime,
    settings,
    spill,
    erased: Callable[[dict], bool] | None,
) -> Iterator[pa.RecordBatch]:
    """Parse, validate and de-duplicate the stream's files; yield valid rows in bounded batches."""
    seen: set[str] = set()
    for result in results:
        if not landing.exists(result.path):
            result.status = "missing"
            continue
        digest = hashlib.sha256()
        try:
            for chunk in landing.read_lines(result.path, settings.chunk_lines, digest):
                rows = []
                for offset, raw in enumerate(chunk.lines):
                    line_no = chunk.first_line + offset
                    result.lines_read += 1
                    try:
                        row = parse_line(stream, raw)
                    except Rejection as rej:
                        if erased is not None and erased(salvage_ids(raw)):
                            result.erased += 1
                            continue
                        spill.add(stream.name, result.path, line_no, rej, raw)
                        result.quarantined += 1
                        result.reasons[rej.code.value] += 1
                        continue
                    if erased is not None and erased(row):
                        result.erased += 1
                        continue
                    row_id = row[stream.id_field]
                    if row_id in seen:
                        result.duplicates += 1
                        continue
                    seen.add(row_id)
                    row.update(
                        _source_file=result.path,
                        _source_line=line_no,
                        _ingest_batch=batch,
                        _ingested_at=ingested_at,
                    )
                    rows.append(row)
                if rows:
                    yield from _drop_known(stream, rows, known_ids, result)
        except FileReadError as err:
            result.lines_read += 1
            result.quarantined += 1
            result.reasons[Reason.UNREADABLE_FILE.value] += 1
            rej = Rejection(Reason.UNREADABLE_FILE, f"file could not be read past here: {err}")
            spill.add(stream.name, result.path, err.line_number, rej, b"")
        result.sha256 = digest.hexdigest()


def _drop_known(
    stream: Stream, rows: list[dict], known_ids: pa.Array | None, result
) -> Iterator[pa.RecordBatch]:
    batch = pa.RecordBatch.from_pylist(rows, schema=stream.schema)
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
