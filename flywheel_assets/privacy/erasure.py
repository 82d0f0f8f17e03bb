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

from .. import catalog
from ..catalog.governance import TOMBSTONES
from ..governance.hashing import hash_column, keyed_hash
from ..governance.tombstones import Tombstones
from ..lake import predicates as pred
from ..lake.tables import Lake


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
            _delete_predicate(data.filter(match), name),
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


def _delete_predicate(rows: pa.Table, table: str) -> str:
    """A predicate on the table's key (from the catalog) that matches exactly `rows`: a table's
    own id, so deleting a user's feedback on someone else's request leaves that request's other
    feedback alone."""
    key = catalog.table(table).key
    if any(rows[c].null_count for c in key):
        raise ValueError(f"{table}: rows to erase have no {'/'.join(key)} to delete them by")
    if len(key) == 1:
        return pred.is_in(key[0], rows[key[0]].to_pylist())
    values = zip(*(rows[c].to_pylist() for c in key), strict=True)
    return pred.any_of(*(" AND ".join(map(pred.eq, key, row)) for row in values))


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
            _delete_predicate(data.filter(match), table),
            commit_properties=lake.commit_properties({"flywheel.operation": "erase"}),
        )
        dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    return hits
