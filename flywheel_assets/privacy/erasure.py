"""Right to erasure: remove one user's rows from every table and every readable version.

The user is found by raw id in the raw tables and by keyed hash everywhere after them; their request
ids then reach rows that carry neither (feedback on their requests, annotations, quarantined lines).
Deletes use only ids and the hash in their predicates, because a Delta commit records its predicate
in the log. Touched tables are vacuumed with no grace period, so earlier versions that held the rows
can no longer be loaded. A tombstone (the keyed hash and the request ids, never the raw id) lets
ingestion and redaction refuse the same rows if old landing files are read again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..lake import predicates as pred
from ..lake.tables import Lake, TableSpec
from .hashing import hash_column, keyed_hash

TOMBSTONES_TABLE = "erasure_tombstones"
TOMBSTONES = TableSpec(
    TOMBSTONES_TABLE,
    pa.schema(
        [
            pa.field("user_hash", pa.string()),
            pa.field("request_ids", pa.list_(pa.string())),
            pa.field("erased_at", pa.timestamp("us", tz="UTC")),
            pa.field("reason", pa.string()),
            pa.field("tables", pa.list_(pa.string())),
        ]
    ),
)
# Columns that identify a row for deletion, most specific first.
# Columns that identify a row for deletion: a table's own id before the request it refers to, so
# deleting a user's feedback on someone else's request leaves that request's other feedback alone.
ID_COLUMNS = (
    "feedback_id",
    "annotation_id",
    "case_id",
    "example_id",
    "pair_id",
    "event_id",
    "request_id",
)


@dataclass
class Tombstones:
    user_hashes: pa.Array
    request_ids: pa.Array

    @property
    def empty(self) -> bool:
        return len(self.user_hashes) == 0 and len(self.request_ids) == 0

    @classmethod
    def load(cls, lake: Lake) -> Tombstones:
        table = lake.read(TOMBSTONES_TABLE, columns=["user_hash", "request_ids"])
        if table is None or table.num_rows == 0:
            return cls(pa.array([], pa.string()), pa.array([], pa.string()))
        requests = pc.list_flatten(table["request_ids"].combine_chunks())
        return cls(
            pc.unique(table["user_hash"].combine_chunks()),
            pc.unique(requests.cast(pa.string())),
        )

    def matcher(self, key: bytes) -> RecordMatcher:
        return RecordMatcher(
            key, set(self.user_hashes.to_pylist()), set(self.request_ids.to_pylist())
        )


@dataclass
class RecordMatcher:
    """Tells ingestion whether a landing record belongs to an erased user."""

    key: bytes
    user_hashes: set[str]
    request_ids: set[str]
    _seen: dict[str, bool] = field(default_factory=dict)

    def __call__(self, record: dict) -> bool:
        if record.get("request_id") in self.request_ids:
            return True
        user = record.get("user_id")
        if user is None or not self.user_hashes:
            return False
        if user not in self._seen:  # hash each distinct user once
            self._seen[user] = keyed_hash(user, self.key, "user") in self.user_hashes
        return self._seen[user]


@dataclass
class ErasureReport:
    user_hash: str
    request_ids: list[str]
    tables: dict[str, dict] = field(default_factory=dict)  # table -> rows deleted, versions

    @property
    def rows_deleted(self) -> int:
        return sum(t["rows_deleted"] for t in self.tables.values())


def erase_user(
    lake: Lake, user_id: str, key: bytes, tables: list[str], *, reason: str = ""
) -> ErasureReport:
    """Delete every row of `user_id` from `tables`, vacuum them, and record a tombstone."""
    if not user_id or not user_id.strip():
        raise ValueError("user id must be a non-empty string")
    user_hash = keyed_hash(user_id, key, "user")
    request_ids = _user_requests(lake, user_id, user_hash, tables)
    report = ErasureReport(user_hash, sorted(request_ids))

    for name in tables:
        dt = lake.open(name)
        if dt is None:
            continue
        data = dt.to_pyarrow_dataset().to_table()
        match = _matches(data, user_id, user_hash, request_ids)
        hits = int(pc.sum(match).as_py() or 0)
        if not hits:
            continue
        version_before = dt.version()
        dt.delete(
            _delete_predicate(data.filter(match)),
            commit_properties=lake.commit_properties({"flywheel.operation": "erase"}),
        )
        # No grace period: files that held the rows go now, so no earlier version can load them.
        dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        report.tables[name] = {
            "rows_deleted": hits,
            "version_before": version_before,
            "version_after": dt.version(),
        }

    lake.append(
        TOMBSTONES,
        pa.Table.from_pylist(
            [
                {
                    "user_hash": user_hash,
                    "request_ids": report.request_ids,
                    "erased_at": datetime.now(UTC),
                    "reason": reason,
                    "tables": sorted(report.tables),
                }
            ],
            schema=TOMBSTONES.schema,
        ),
        metadata={"flywheel.operation": "erase"},
    )
    return report


def _user_requests(lake: Lake, user_id: str, user_hash: str, tables: list[str]) -> set[str]:
    ids: set[str] = set()
    for name in tables:
        dt = lake.open(name)
        if dt is None:
            continue
        schema = dt.schema().to_arrow()
        if "request_id" not in schema.names:
            continue
        # Only interactions make a request the user's; the user's feedback is matched by its own id.
        if "user_id" in schema.names and "response" in schema.names:
            rows = dt.to_pyarrow_dataset().to_table(
                columns=["request_id"], filter=pc.field("user_id") == user_id
            )
            ids.update(rows["request_id"].to_pylist())
        if "user_hash" in schema.names and "response" in schema.names:
            rows = dt.to_pyarrow_dataset().to_table(
                columns=["request_id"], filter=pc.field("user_hash") == user_hash
            )
            ids.update(rows["request_id"].to_pylist())
    return ids


def _matches(data: pa.Table, user_id: str, user_hash: str, request_ids: set[str]) -> pa.Array:
    names = data.column_names
    match = pa.repeat(False, data.num_rows)
    requests = pa.array(sorted(request_ids), pa.string())
    if "user_id" in names:
        match = pc.or_kleene(match, pc.equal(data["user_id"], user_id))
    if "user_hash" in names:
        match = pc.or_kleene(match, pc.equal(data["user_hash"], user_hash))
    for col in ("request_id", "other_request_id", "source_request_id"):
        if col in names and len(requests):
            match = pc.or_kleene(match, pc.is_in(data[col], value_set=requests))
    # Derived rows that merely mention the user (a pair whose rejected answer was theirs, a row
    # they gave feedback on) go too: curated tables are rebuilt from what is left on the next run.
    for col, values in (("source_request_ids", requests), ("feedback_user_hashes", [user_hash])):
        if col in names and len(values):
            match = pc.or_kleene(match, _any_in(data[col], pa.array(values, pa.string())))
    if "raw_line" in names:  # quarantined lines can only be searched as text
        for needle in [user_id, *sorted(request_ids)]:
            match = pc.or_kleene(match, pc.match_substring(data["raw_line"], needle))
    return pc.fill_null(match, False)


def _any_in(lists: pa.ChunkedArray, values: pa.Array) -> pa.Array:
    """True for each list that holds any of `values`."""
    lists = lists.combine_chunks()
    hits = pc.is_in(pc.list_flatten(lists), value_set=values)
    parents = pc.list_parent_indices(lists).to_numpy()
    out = np.zeros(len(lists), dtype=bool)
    out[parents[hits.to_numpy(zero_copy_only=False)]] = True
    return pa.array(out)


def _delete_predicate(rows: pa.Table) -> str:
    names = rows.column_names
    for col in ID_COLUMNS:
        if col in names and rows[col].null_count == 0:
            return pred.is_in(col, rows[col].to_pylist())
    if {"source_file", "line_number"} <= set(names):
        pairs = zip(rows["source_file"].to_pylist(), rows["line_number"].to_pylist(), strict=True)
        return pred.any_of(
            *(f"{pred.eq('source_file', f)} AND {pred.eq('line_number', n)}" for f, n in pairs)
        )
    raise ValueError(f"no id column to delete by among {names}")


def purge_erased(lake: Lake, table: str, key: bytes) -> int:
    """Delete from `table` every row of an erased user, for rows that came back through a restore
    of a version older than the erasure. Returns the rows deleted (files vacuumed at once)."""
    tombstones = Tombstones.load(lake)
    dt = lake.open(table)
    if tombstones.empty or dt is None:
        return 0
    data = dt.to_pyarrow_dataset().to_table()
    names = data.column_names
    match = pa.repeat(False, data.num_rows)
    if "user_id" in names:
        hashes = hash_column(data["user_id"], key, "user")
        match = pc.or_kleene(match, pc.is_in(hashes, value_set=tombstones.user_hashes))
    if "user_hash" in names:
        match = pc.or_kleene(match, pc.is_in(data["user_hash"], value_set=tombstones.user_hashes))
    for col in ("request_id", "other_request_id", "source_request_id"):
        if col in names:
            match = pc.or_kleene(match, pc.is_in(data[col], value_set=tombstones.request_ids))
    if "source_request_ids" in names:
        match = pc.or_kleene(match, _any_in(data["source_request_ids"], tombstones.request_ids))
    match = pc.fill_null(match, False)
    hits = int(pc.sum(match).as_py() or 0)
    if hits:
        dt.delete(
            _delete_predicate(data.filter(match)),
            commit_properties=lake.commit_properties({"flywheel.operation": "erase"}),
        )
        dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    return hits
