"""Redact again, with the current detector, the redacted rows an older detector left behind.

Every redaction commit records the detector's version (`Detector.version`) and the ingest batches
whose rows it wrote; reading those commits in order tells, per table, which batches still hold
rows an other detector wrote (stale). Those rows are redacted again from the raw rows where
retention has not expired them, else from the stored text itself (placeholders never look like
PII, so the result is what the current detector makes of the text). Only rows that come out
different are rewritten, file by file, in one commit per table that names the detector and the
batches it checked; then the table is vacuumed, so no version still holding the old text loads.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction, RemoveAction

from ..catalog.governance import TOMBSTONES
from ..catalog.redacted import REDACTED_ANNOTATIONS, REDACTED_FEEDBACK, REDACTED_LOGS
from ..contract.records import ANNOTATIONS, FEEDBACK, INTERACTIONS, TIMESTAMP
from ..lake.tables import REWRITE_KEY, Lake, TableSpec
from ..lake.versions import VersionUnavailable, check_restorable, oldest_restorable
from .erasure import purge_erased
from .pii import Detector
from .pipeline import APP_ID, DETECTOR_VERSION_KEY, LATE_BATCHES_KEY
from .redact import PSEUDONYM_PREFIX, pseudonym, redact_table

REDACT_AGAIN = "redact_again"
# Commit metadata of a re-redaction: the ingest batches it checked, as [first, last] ranges.
CHECKED_BATCHES_KEY = "flywheel.checked_batches"
# The columns redaction adds: recomputed, never compared as text.
_COUNTS = ("pii_counts", "pii_total", "_redacted_at")
COMMIT_ATTEMPTS = 5


@dataclass(frozen=True)
class Source:
    """A redacted table and the raw table its rows were redacted from."""

    spec: TableSpec
    raw: str
    id_column: str


SOURCES = (
    Source(REDACTED_LOGS, INTERACTIONS.table, "request_id"),
    Source(REDACTED_FEEDBACK, FEEDBACK.table, "feedback_id"),
    Source(REDACTED_ANNOTATIONS, ANNOTATIONS.table, "annotation_id"),
)


class ReredactionError(ValueError):
    """A re-redaction that cannot be made; the message says why."""


# --- which rows are stale: pure logic over the commits ------------------------------------------


@dataclass(frozen=True)
class RedactionCommit:
    """One commit that wrote (a redaction) or checked (a re-redaction) rows of some batches."""

    version: int
    timestamp: int  # milliseconds since the epoch
    detector: str | None  # None: written before detector versions were recorded
    batches: frozenset[int]
    again: bool = False


def redaction_commits(history: Iterable[Mapping]) -> list[RedactionCommit]:
    """The redaction and re-redaction commits of a table's history, oldest first."""
    out = []
    for commit in history:
        operation = commit.get("flywheel.operation")
        if operation == "redact":
            first, last = json.loads(commit.get("ingest_batches") or "[1, 0]")
            late = json.loads(commit.get(LATE_BATCHES_KEY) or "[]")
            batches = frozenset(range(int(first), int(last) + 1)) | frozenset(map(int, late))
        elif operation == REDACT_AGAIN:
            batches = frozenset(expand(json.loads(commit.get(CHECKED_BATCHES_KEY) or "[]")))
        else:
            continue  # deletes, restores and maintenance bring back no row an older one lacked
        out.append(
            RedactionCommit(
                version=int(commit["version"]),
                timestamp=int(commit.get("timestamp") or 0),
                detector=commit.get(DETECTOR_VERSION_KEY),
                batches=batches,
                again=operation == REDACT_AGAIN,
            )
        )
    return sorted(out, key=lambda c: c.version)


def stale_batches(
    commits: Iterable[RedactionCommit],
    *,
    current: str,
    upto: int,
    complete: bool,
    since: int | None = None,
) -> set[int]:
    """The ingest batches (1..`upto`) that may hold rows a detector other than `current` wrote.

    A commit of another detector makes the batches it wrote stale; the current detector's
    commits make the batches they wrote or checked clean again. With an incomplete history (log
    cleanup removed the first commits) every batch starts stale, since nothing says who wrote
    it. `since` (a commit time) leaves out what other detectors wrote before then.
    """
    stale = set(range(1, upto + 1)) if not complete else set()
    for commit in sorted(commits, key=lambda c: c.version):
        if commit.detector == current:
            stale -= commit.batches
        elif since is None or commit.timestamp >= since:
            stale |= {b for b in commit.batches if b <= upto}
    return stale


def ranges(batches: Iterable[int]) -> list[list[int]]:
    """Sorted batch numbers as [first, last] runs: [1, 2, 3, 7] -> [[1, 3], [7, 7]]."""
    out: list[list[int]] = []
    for b in sorted(set(batches)):
        if out and out[-1][1] == b - 1:
            out[-1][1] = b
        else:
            out.append([b, b])
    return out


def expand(runs: Iterable[Iterable[int]]) -> list[int]:
    return [b for first, last in runs for b in range(int(first), int(last) + 1)]


# --- the run over the lake -----------------------------------------------------------------------


@dataclass
class TableReport:
    table: str
    stale_batches: list[list[int]] = field(default_factory=list)
    rows_checked: int = 0
    rows_from_raw: int = 0  # checked against their raw rows
    rows_from_stored: int = 0  # raw rows expired: the stored text redacted again
    rows_rewritten: int = 0
    version_before: int = -1
    version_after: int = -1
    detectors_replaced: list[str] = field(default_factory=list)
    unrestorable_versions: list[int] = field(default_factory=list)


@dataclass
class ReredactionReport:
    detector_version: str
    tables: dict[str, TableReport] = field(default_factory=dict)

    @property
    def rows_rewritten(self) -> int:
        return sum(t.rows_rewritten for t in self.tables.values())


def redact_again(
    lake: Lake, detector: Detector, key: bytes, *, since_version: str | None = None
) -> ReredactionReport:
    """Redact again with `detector` every row of the redacted tables that another detector wrote
    (with `since_version`: only what that version, and any other after it, wrote), rewrite the
    rows that change in one commit per table, and vacuum those tables. Tables with no stale
    batch are not touched; a second run finds none."""
    current = detector.version
    report = ReredactionReport(current)
    histories = {s.spec.name: _history(lake, s.spec.name) for s in SOURCES}
    since = None
    if since_version:
        if since_version == current:
            raise ReredactionError(
                f"{since_version} is the current detector's version: its rows need no re-redaction"
            )
        seen = [
            c.timestamp for h in histories.values() for c in h[0] if c.detector == since_version
        ]
        if not seen:
            known = sorted({c.detector or "(unrecorded)" for h in histories.values() for c in h[0]})
            raise ReredactionError(
                f"no redacted table records detector version {since_version!r}; the versions "
                f"their logs record: {', '.join(known) or 'none'} (current: {current})"
            )
        since = min(seen)
    for source in SOURCES:
        commits, complete = histories[source.spec.name]
        dt = lake.open(source.spec.name)
        if dt is None:
            continue
        upto = dt.transaction_version(f"{APP_ID}.{source.spec.name}") or 0
        stale = stale_batches(commits, current=current, upto=upto, complete=complete, since=since)
        if not stale:
            continue
        table = TableReport(source.spec.name, stale_batches=ranges(stale))
        table.detectors_replaced = sorted(
            {c.detector or "(unrecorded)" for c in commits if c.detector != current}
        )
        _redact_table_again(lake, source, detector, key, stale, table)
        report.tables[source.spec.name] = table
    return report


def _history(lake: Lake, table: str) -> tuple[list[RedactionCommit], bool]:
    dt = lake.open(table)
    if dt is None:
        return [], True
    history = dt.history()
    complete = any(int(c["version"]) == 0 for c in history)
    return redaction_commits(history), complete


def _redact_table_again(
    lake: Lake,
    source: Source,
    detector: Detector,
    key: bytes,
    stale: set[int],
    report: TableReport,
) -> None:
    spec, id_col = source.spec, source.id_column
    in_stale = pc.field("_ingest_batch").isin(sorted(stale))
    stored = lake.read(spec.name, filter=in_stale)
    report.rows_checked = stored.num_rows
    new_rows, from_raw = _from_raw(lake, source, detector, key, stored, in_stale)
    leftover = stored.filter(pc.invert(pc.is_in(stored[id_col], value_set=from_raw)))
    again = [new_rows, _from_stored(spec, detector, key, leftover)]
    report.rows_from_raw, report.rows_from_stored = len(from_raw), leftover.num_rows
    replacements = _changed(stored, pa.concat_tables(again), id_col)
    tombstones_before = lake.data_version(TOMBSTONES.name)
    metadata = {
        "flywheel.operation": REDACT_AGAIN,
        DETECTOR_VERSION_KEY: detector.version,
        CHECKED_BATCHES_KEY: report.stale_batches,
        "flywheel.rows_rewritten": str(replacements.num_rows),
    }
    if replacements.num_rows:
        metadata[REWRITE_KEY] = REDACT_AGAIN  # rows changed, none were appended
    report.version_before, report.version_after, report.rows_rewritten = _rewrite(
        lake, spec.name, replacements, id_col, metadata
    )
    if lake.data_version(TOMBSTONES.name) != tombstones_before:
        purge_erased(lake, spec.name, key)  # an erasure began while the rows were rewritten
    if report.rows_rewritten:
        report.unrestorable_versions = vacuum_reporting(lake, spec.name)


def _from_raw(
    lake: Lake,
    source: Source,
    detector: Detector,
    key: bytes,
    stored: pa.Table,
    in_stale: pc.Expression,
) -> tuple[pa.Table, pa.Array]:
    """The stale rows redacted again from their raw rows, and the stored ids that had one."""
    spec, id_col = source.spec, source.id_column
    ids = stored[id_col].combine_chunks()
    position = {v: i for i, v in enumerate(ids.to_pylist())}
    pseudonymous = any(isinstance(v, str) and v.startswith(PSEUDONYM_PREFIX) for v in position)
    extras = [
        n for n in spec.schema.names if n not in _raw_names(lake, source.raw) and n not in _COUNTS
    ]
    out, found = [], []
    redacted_at = pa.scalar(datetime.now(UTC), TIMESTAMP)
    if lake.open(source.raw) is None:
        return spec.schema.empty_table(), pa.array([], pa.string())
    for raw in lake.scan(source.raw, filter=in_stale):
        raw_ids = raw[id_col].to_pylist()
        # A stored id is the raw id, or its pseudonym when the id held PII.
        match = [
            position.get(r, position.get(pseudonym(r, key)) if pseudonymous and r else None)
            if r is not None
            else None
            for r in raw_ids
        ]
        keep = [i for i, m in enumerate(match) if m is not None]
        if not keep:
            continue
        taken = pa.array([match[i] for i in keep], pa.int64())
        rows = raw.take(pa.array(keep, pa.int64()))
        for name in extras:  # what the pipeline added to the raw row (hashes, keep reason)
            rows = rows.append_column(name, stored[name].take(taken))
        redacted = redact_table(rows, detector, key, spec.schema.names)
        redacted = redacted.append_column("_redacted_at", pa.repeat(redacted_at, redacted.num_rows))
        redacted = redacted.select(spec.schema.names).cast(spec.schema)
        out.append(redacted.append_column("_stored_id", ids.take(taken)))
        found.append(ids.take(taken))
    if not out:
        return _with_stored_id(spec.schema.empty_table()), pa.array([], pa.string())
    return pa.concat_tables(out), pa.concat_arrays(found)


def _from_stored(spec: TableSpec, detector: Detector, key: bytes, stored: pa.Table) -> pa.Table:
    """Stale rows whose raw rows are gone, redacted again from their stored text: placeholders
    stay as they are, so only what the current detector finds anew is replaced and counted."""
    if stored.num_rows == 0:
        return _with_stored_id(spec.schema.empty_table())
    id_col = next(s.id_column for s in SOURCES if s.spec.name == spec.name)
    text = stored.drop_columns(["pii_counts", "pii_total"])
    redacted = redact_table(text, detector, key, spec.schema.names)
    counts = [
        _merge_counts(old, new)
        for old, new in zip(
            stored["pii_counts"].to_pylist(), redacted["pii_counts"].to_pylist(), strict=True
        )
    ]
    redacted = redacted.set_column(
        redacted.schema.get_field_index("pii_counts"),
        spec.schema.field("pii_counts"),
        pa.array(counts, spec.schema.field("pii_counts").type),
    )
    total = pc.add(stored["pii_total"], redacted["pii_total"])
    redacted = redacted.set_column(redacted.schema.get_field_index("pii_total"), "pii_total", total)
    redacted = redacted.select(spec.schema.names).cast(spec.schema)
    return redacted.append_column("_stored_id", stored[id_col])


def _merge_counts(old: list | None, new: list | None) -> list[tuple[str, int]]:
    merged: dict[str, int] = {}
    for kind, n in [*(old or []), *(new or [])]:
        merged[kind] = merged.get(kind, 0) + n
    return sorted(merged.items())


def _with_stored_id(table: pa.Table) -> pa.Table:
    return table.append_column("_stored_id", pa.array([], pa.string()))


def _raw_names(lake: Lake, table: str) -> set[str]:
    dt = lake.open(table)
    return set(dt.schema().to_arrow().names) if dt is not None else set()


def _changed(stored: pa.Table, again: pa.Table, id_col: str) -> pa.Table:
    """The rows of `again` that differ from the stored row they replace (by `_stored_id`),
    `_redacted_at` aside."""
    compared = [n for n in stored.column_names if n != "_redacted_at"]
    before = dict(zip(stored[id_col].to_pylist(), stored.select(compared).to_pylist(), strict=True))
    after = again.select(compared).to_pylist()
    keep = [
        i
        for i, (old_id, row) in enumerate(zip(again["_stored_id"].to_pylist(), after, strict=True))
        if _normal(before.get(old_id)) != _normal(row)
    ]
    return again.take(pa.array(keep, pa.int64()))


def _normal(row: dict | None) -> dict | None:
    # Map columns read back as lists of pairs in file order: compare them as sorted pairs.
    if row is None:
        return None
    return {k: sorted(v) if k == "pii_counts" and v else v for k, v in row.items()}


def _rewrite(
    lake: Lake,
    table: str,
    replacements: pa.Table,
    id_col: str,
    metadata: Mapping[str, object],
) -> tuple[int, int, int]:
    """Replace, file by file, the rows whose id is a replacement's `_stored_id`, in one commit
    (made with no rows changed too: it records the batches this detector checked). A concurrent
    commit makes the attempt start again on the new files; a row deleted meanwhile (an
    erasure) is not brought back."""
    old_ids = replacements["_stored_id"].combine_chunks()
    rows = replacements.drop_columns(["_stored_id"])
    for _ in range(COMMIT_ATTEMPTS):
        dt = lake.open(table)
        before = dt.version()
        dataset = dt.to_pyarrow_dataset()
        schema, fs = dataset.schema, dataset.filesystem
        now = int(datetime.now(UTC).timestamp() * 1000)
        actions: list[AddAction | RemoveAction] = []
        written: list[str] = []
        rewritten = 0
        try:
            for fragment in dataset.get_fragments() if len(old_ids) else []:
                data = fragment.to_table(schema=schema)
                hits = pc.fill_null(pc.is_in(data[id_col], value_set=old_ids), False)
                count = int(pc.sum(hits).as_py() or 0)
                if not count:
                    continue
                mine = pc.is_in(old_ids, value_set=data[id_col].filter(hits))
                new = rows.filter(mine).select(schema.names).cast(schema)
                kept = pa.concat_tables([data.filter(pc.invert(hits)), new])
                rewritten += new.num_rows
                size = fs.get_file_info(fragment.path).size
                actions.append(RemoveAction(fragment.path, True, now, size, {}))
                name = f"part-00000-{uuid.uuid4()}-c000.zstd.parquet"
                written.append(name)
                pq.write_table(kept, name, filesystem=fs, compression="zstd")
                # Row counts only: no value of a personal table goes into the log.
                stats = json.dumps({"numRecords": kept.num_rows})
                actions.append(AddAction(name, fs.get_file_info(name).size, {}, now, True, stats))
            properties = lake.commit_properties(
                {**metadata, "flywheel.rows_rewritten": str(rewritten)}
            )
            # Only on the version the files were read at (see `Lake.delete`).
            properties.max_commit_retries = 0
            dt.create_write_transaction(actions, "append", schema, commit_properties=properties)
        except CommitFailedError:
            for name in written:
                fs.delete_file(name)
            continue
        except BaseException:
            for name in written:  # never committed: leave no stray copy of the rows behind
                fs.delete_file(name)
            raise
        dt.update_incremental()
        return before, dt.version(), rewritten
    raise ReredactionError(
        f"{table}: gave up after {COMMIT_ATTEMPTS} attempts, each overtaken by a concurrent "
        "commit; no rows were rewritten"
    )


def vacuum_reporting(lake: Lake, table: str) -> list[int]:
    """Vacuum `table` with no grace period; the versions that could be loaded before and no
    longer can (their files held rows since rewritten or deleted)."""
    dt = lake.open(table)
    if dt is None:
        return []
    versions = sorted(int(c["version"]) for c in dt.history())
    files = {}
    for version in versions:
        try:
            old = lake.open(table, version=version)
        except Exception:  # noqa: BLE001 - a version whose log is gone
            continue
        files[version] = set(old.get_add_actions(flatten=True).column("path").to_pylist())
    removed = set(dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False))
    return [v for v, paths in files.items() if paths & removed]


# --- why a version cannot be restored -----------------------------------------------------------


def check_restorable_after_reredaction(lake: Lake, table: str, version: int) -> None:
    """`check_restorable`, naming the re-redaction that made `version` unrestorable when one
    did: the first commit after it that removed rows for privacy was a re-redaction."""
    try:
        check_restorable(lake, table, version)
    except VersionUnavailable:
        cause = _reredaction_after(lake, table, version)
        if cause is None:
            raise
        when = datetime.fromtimestamp(cause["timestamp"] / 1000, UTC).isoformat(timespec="seconds")
        raise VersionUnavailable(
            f"version {version} of {table} cannot be restored: re-redaction with detector "
            f"{cause.get(DETECTOR_VERSION_KEY)} (version {cause['version']}, {when}) rewrote "
            "rows it held that an older detector had left personal data in, and vacuumed its "
            f"files; the oldest restorable version is {oldest_restorable(lake, table)}"
        ) from None


def _reredaction_after(lake: Lake, table: str, version: int) -> dict | None:
    dt = lake.open(table)
    later = sorted(
        (c for c in (dt.history() if dt else []) if c["version"] > version),
        key=lambda c: c["version"],
    )
    for commit in later:
        operation = commit.get("flywheel.operation")
        if operation in ("erase", "expire"):
            return None
        if operation == REDACT_AGAIN and commit.get(REWRITE_KEY):
            return commit
    return None
