"""Right to erasure: remove one user's rows from every table and every readable version.

The user is named by keyed hash only (the raw id never has to reach Dagster's run storage): raw
tables are matched by hashing their user ids, later tables by their hash column, and the user's
request ids then reach rows that carry neither (feedback on their requests, annotations,
quarantined lines). The tombstone (the hash and the request ids, never the raw id) is committed
BEFORE any delete: every writer that copies user rows forward re-reads tombstones just before it
commits, so a run that overlaps the erasure either sees the tombstone and drops the rows, or
committed before it, and then the deletes that follow remove its rows. Deletes rewrite only the
files holding the rows and record no predicate (see `Lake.delete`); touched tables are vacuumed
with no grace period, so earlier versions that held the rows can no longer be loaded.

What "erased" covers: every row of the user in every catalog table and in every version of those
tables that can still be loaded, and nothing of them in the Delta logs. It does not cover copies
outside the lake: models trained on the rows (the report names them, `ErasureReport.models`),
files someone exported, and backups.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.governance import TOMBSTONES
from ..catalog.models import MODEL_REGISTRY
from ..governance.hashing import hash_column, keyed_hash
from ..governance.tombstones import Tombstones
from ..lake.spill import remove_stale_spills
from ..lake.tables import ERASURE_KEY, Lake, VersionUnreadable

T = TypeVar("T")
# A JSON string token, escapes included, as it appears in a line that does not parse.
_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass
class ErasureReport:
    user_hash: str
    request_ids: list[str]
    erasure_id: str = ""
    tables: dict[str, dict] = field(default_factory=dict)  # table -> rows deleted, versions
    # Registered models whose training data held the user's rows: erasure cannot reach into
    # their weights, so they are named for retirement.
    models: list[str] = field(default_factory=list)

    @property
    def rows_deleted(self) -> int:
        return sum(t["rows_deleted"] for t in self.tables.values())


def erase_user(
    lake: Lake, user_id: str, key: bytes, tables: list[str], *, reason: str = ""
) -> ErasureReport:
    """Erase `user_id` (a raw id) from `tables`; see `erase_user_hash`."""
    if not user_id or not user_id.strip():
        raise ValueError("user id must be a non-empty string")
    return erase_user_hash(lake, keyed_hash(user_id, key, "user"), key, tables, reason=reason)


def erase_user_hash(
    lake: Lake,
    user_hash: str,
    key: bytes,
    tables: list[str],
    *,
    reason: str = "",
    erasure_id: str | None = None,
) -> ErasureReport:
    """Record a tombstone, then delete every row of the user with keyed hash `user_hash` from
    `tables` and vacuum them. A user with no rows still gets the tombstone, so rows that arrive
    later are refused."""
    if not re.fullmatch(r"[0-9a-f]{64}", user_hash or ""):
        raise ValueError("user hash must be the 64-character keyed hash of the user id")
    report = ErasureReport(user_hash, [], erasure_id or uuid.uuid4().hex)
    requests = _user_requests(lake, user_hash, key, tables)
    report.models = _models_trained_on(lake, user_hash, key, requests, tables)
    _record_tombstone(lake, report, requests, tables, reason)
    # A second sweep catches requests committed between the first search and the tombstone.
    for _ in range(2):
        for name in tables:
            _erase_from(lake, name, user_hash, key, requests, report)
        found = _user_requests(lake, user_hash, key, tables)
        if found <= requests:
            break
        requests |= found
        _record_tombstone(lake, report, found, tables, reason)
    report.request_ids = sorted(requests)
    # Spills a killed run left behind may hold the user's rows, out of every table's reach.
    remove_stale_spills(lake.root)
    return report


def _erase_from(
    lake: Lake,
    name: str,
    user_hash: str,
    key: bytes,
    requests: set[str],
    report: ErasureReport,
) -> None:
    result = lake.delete(
        name,
        lambda data: _matches(data, user_hash, key, requests),
        metadata={"flywheel.operation": "erase", ERASURE_KEY: report.erasure_id},
        purge=True,
    )
    if not result.rows_deleted:
        return
    info = report.tables.setdefault(
        name, {"rows_deleted": 0, "version_before": result.version_before}
    )
    info["rows_deleted"] += result.rows_deleted
    info["version_after"] = result.version_after


def _record_tombstone(
    lake: Lake, report: ErasureReport, requests: Iterable[str], tables: list[str], reason: str
) -> None:
    row = {
        "user_hash": report.user_hash,
        "request_ids": sorted(requests),
        "erased_at": datetime.now(UTC),
        "reason": reason,
        "tables": sorted(tables),
        "erasure_id": report.erasure_id,
    }
    lake.append(
        TOMBSTONES,
        pa.Table.from_pylist([row], schema=TOMBSTONES.schema),
        metadata={"flywheel.operation": "erase", ERASURE_KEY: report.erasure_id},
    )


def _user_requests(lake: Lake, user_hash: str, key: bytes, tables: list[str]) -> set[str]:
    """The request ids of the user's interactions (only interactions make a request the user's;
    the user's feedback is matched by its own user column)."""
    ids: set[str] = set()
    for name in tables:
        dt = lake.open(name)
        if dt is None:
            continue
        names = dt.schema().to_arrow().names
        if "request_id" not in names or "response" not in names:
            continue
        if "user_id" in names:
            for rows in lake.scan(name, columns=["request_id", "user_id"]):
                mine = pc.equal(hash_column(rows["user_id"], key, "user"), user_hash)
                ids.update(rows["request_id"].filter(pc.fill_null(mine, False)).to_pylist())
        if "user_hash" in names:
            rows = lake.read(
                name, columns=["request_id"], filter=pc.field("user_hash") == user_hash
            )
            ids.update(rows["request_id"].to_pylist())
    ids.discard(None)
    return ids


def _models_trained_on(
    lake: Lake, user_hash: str, key: bytes, requests: set[str], tables: list[str]
) -> list[str]:
    """The registered models whose dataset versions hold rows of the user, read before the
    deletes make those versions unreadable."""
    registry = lake.read(MODEL_REGISTRY.name, columns=["model_id", "dataset_versions"])
    if registry is None:
        return []
    hits: list[str] = []
    for model in registry.to_pylist():
        for table, version in json.loads(model["dataset_versions"] or "{}").items():
            if table not in tables:
                continue
            try:
                data = lake.read(table, version=int(version))
            except (VersionUnreadable, OSError, ValueError):
                continue  # that version is gone already: its rows were erased before
            if data is not None and pc.any(_matches(data, user_hash, key, requests)).as_py():
                hits.append(model["model_id"])
                break
    return sorted(hits)


def _matches(data: pa.Table, user_hash: str, key: bytes, request_ids: set[str]) -> pa.Array:
    names = data.column_names
    match = pa.repeat(False, data.num_rows)
    requests = pa.array(sorted(request_ids), pa.string())
    if "user_id" in names:
        hashed = hash_column(data["user_id"], key, "user")
        match = pc.or_kleene(match, pc.equal(hashed, user_hash))
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
    if "raw_line" in names:
        lines = data["raw_line"].to_pylist()
        mine = [_line_is_users(line, user_hash, key, request_ids) for line in lines]
        match = pc.or_kleene(match, pa.array(mine, pa.bool_()))
    return pc.fill_null(match, False)


def _line_is_users(line: str | None, user_hash: str, key: bytes, request_ids: set[str]) -> bool:
    """Whether a quarantined line belongs to the user: by its user and request fields when it
    parses as a JSON object, else by any whole JSON string in it (escapes decoded) that is the
    user's id or one of their request ids. Ids are compared whole, never as substrings."""
    if not line:
        return False
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if isinstance(record, dict):
        user, request = record.get("user_id"), record.get("request_id")
        return (isinstance(user, str) and keyed_hash(user, key, "user") == user_hash) or (
            isinstance(request, str) and request in request_ids
        )
    for token in _json_strings(line):
        if token in request_ids or keyed_hash(token, key, "user") == user_hash:
            return True
    return False


def _json_strings(line: str) -> Iterable[str]:
    for raw in _JSON_STRING.findall(line):
        try:
            yield json.loads(f'"{raw}"')
        except ValueError:  # a bad escape: compare the token as written
            yield raw


def _any_in(lists: pa.ChunkedArray, values: pa.Array) -> pa.Array:
    """True for each list that holds any of `values`."""
    lists = lists.combine_chunks()
    hits = pc.is_in(pc.list_flatten(lists), value_set=values)
    parents = pc.list_parent_indices(lists).to_numpy()
    out = np.zeros(len(lists), dtype=bool)
    out[parents[hits.to_numpy(zero_copy_only=False)]] = True
    return pa.array(out)


def purge_erased(lake: Lake, table: str, key: bytes) -> int:
    """Delete from `table` every row of an erased user (rows that came back through a restore of
    a version older than the erasure, or that a writer committed as the erasure ran). Returns the
    rows deleted (files vacuumed at once)."""
    tombstones = Tombstones.load(lake)
    if tombstones.empty:
        return 0
    result = lake.delete(
        table,
        lambda data: tombstones.matches(data, key),
        metadata={"flywheel.operation": "erase"},
        purge=True,
    )
    return result.rows_deleted


def commit_without_erased(
    lake: Lake,
    table: str,
    rows: pa.RecordBatchReader,
    key: bytes | None,
    commit: Callable[[pa.RecordBatchReader], T],
) -> tuple[T, int]:
    """Commit `rows` to `table` through `commit`, leaving out the rows of erased users, and
    return what `commit` returned and the rows left out.

    Tombstones are read here, after the writer read its inputs and just before it commits: an
    erasure commits its tombstone before its first delete, so a run that overlaps it drops the
    user's rows. If a tombstone lands in the instant between that read and the commit, the
    committed rows of that user are deleted again (and vacuumed) at once.
    """
    before = lake.data_version(TOMBSTONES.name)
    dropped = [0]
    result = commit(Tombstones.load(lake).drop_batches(rows, key, dropped))
    if lake.data_version(TOMBSTONES.name) != before:
        dropped[0] += purge_erased(lake, table, key)
    return result, dropped[0]
