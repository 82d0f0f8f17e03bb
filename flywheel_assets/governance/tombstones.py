"""Erased users stay erased: the tombstones every writer consults before it stores a row.

A tombstone holds the user's keyed hash and request ids, never the raw id. An erasure commits its
tombstone before it deletes anything, so a writer that copies user rows forward re-reads the
tombstones after reading its inputs, just before its commit (`Tombstones.load(...).drop(...)`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.governance import TOMBSTONES
from ..lake.tables import Lake
from .hashing import hash_column, keyed_hash

# Columns that name a request, and lists of them, in any table.
REQUEST_COLUMNS = ("request_id", "other_request_id", "source_request_id")


@dataclass
class Tombstones:
    user_hashes: pa.Array
    request_ids: pa.Array

    @property
    def empty(self) -> bool:
        return len(self.user_hashes) == 0 and len(self.request_ids) == 0

    @classmethod
    def load(cls, lake: Lake) -> Tombstones:
        table = lake.read(TOMBSTONES.name, columns=["user_hash", "request_ids"])
        if table is None or table.num_rows == 0:
            return cls(pa.array([], pa.string()), pa.array([], pa.string()))
        requests = pc.list_flatten(table["request_ids"].combine_chunks())
        return cls(
            pc.unique(table["user_hash"].combine_chunks()),
            pc.unique(requests.cast(pa.string())),
        )

    def matches(self, data: pa.Table, key: bytes | None) -> pa.Array:
        """True for each row of an erased user: by raw id (hashed with `key`; tables past the
        raw ones pass None), user hash, a request id, a listed source request, or a listed
        feedback user."""
        names = data.column_names
        match = pa.repeat(False, data.num_rows)
        if self.empty or not data.num_rows:
            return match
        users, requests = self.user_hashes, self.request_ids
        if "user_id" in names and key is not None:
            hashed = hash_column(data["user_id"], key, "user")
            match = pc.or_kleene(match, pc.is_in(hashed, value_set=users))
        if "user_hash" in names:
            match = pc.or_kleene(match, pc.is_in(data["user_hash"], value_set=users))
        for col in REQUEST_COLUMNS:
            if col in names:
                match = pc.or_kleene(match, pc.is_in(data[col], value_set=requests))
        for col, values in (("source_request_ids", requests), ("feedback_user_hashes", users)):
            if col in names:
                match = pc.or_kleene(match, _any_in(data[col], values))
        return pc.fill_null(match, False)

    def drop(self, data: pa.Table, key: bytes | None) -> tuple[pa.Table, int]:
        """`data` without the rows of erased users, and how many were dropped."""
        erased = self.matches(data, key)
        dropped = int(pc.sum(erased).as_py() or 0)
        return (data.filter(pc.invert(erased)) if dropped else data), dropped

    def drop_batches(
        self, reader: pa.RecordBatchReader, key: bytes | None, dropped: list[int]
    ) -> pa.RecordBatchReader:
        """`reader` without the rows of erased users; adds the count dropped to `dropped[0]`
        as the batches are read (for a writer that streams its commit)."""

        def kept() -> Iterator[pa.RecordBatch]:
            for batch in reader:
                rows, n = self.drop(pa.Table.from_batches([batch]), key)
                dropped[0] += n
                yield from rows.to_batches()

        return pa.RecordBatchReader.from_batches(reader.schema, kept())

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


def _any_in(lists: pa.ChunkedArray, values: pa.Array) -> pa.Array:
    """True for each list that holds any of `values`."""
    lists = lists.combine_chunks()
    if not len(values) or not len(lists):
        return pa.repeat(False, len(lists))
    flat = pc.is_in(pc.list_flatten(lists), value_set=values)
    parents = pc.list_parent_indices(lists)
    hit_parents = pc.unique(pc.filter(parents, flat))
    return pc.is_in(pa.array(range(len(lists)), pa.int64()), value_set=hit_parents.cast(pa.int64()))


def without_erased(
    lake: Lake, rows: pa.Table | pa.RecordBatchReader, key: bytes | None = None
) -> pa.Table | pa.RecordBatchReader:
    """`rows` less those of erased users, by tombstones read now: call it just before a commit
    that copies user rows forward, after the inputs were read. `key` hashes a raw `user_id`
    column; tables past the raw ones need none."""
    tombstones = Tombstones.load(lake)
    if tombstones.empty:
        return rows
    if isinstance(rows, pa.Table):
        return tombstones.drop(rows, key)[0]
    return tombstones.drop_batches(rows, key, [0])
