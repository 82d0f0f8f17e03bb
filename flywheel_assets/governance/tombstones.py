"""Erased users stay erased: the tombstones every writer consults before it stores a row.

A tombstone holds the user's keyed hash and request ids, never the raw id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.governance import TOMBSTONES
from ..lake.tables import Lake
from .hashing import keyed_hash


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
