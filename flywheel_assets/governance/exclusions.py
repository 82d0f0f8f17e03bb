"""Rows rolled back stay out: the ids a rollback removed, which every later build leaves out until
they are re-admitted.

A rollback records the ids of the rows it took away (request, feedback, annotation or event ids)
with a scope: "all" when the rolled-back table is raw, redacted or tagged_rows (nothing downstream
may carry those rows), or the curated table's name (only that table's rebuild leaves them out).
Re-admitting a rollback lifts all of its exclusions at once; both are rows in `rollback_audit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.governance import ROLLBACK_AUDIT, ROLLBACK_EXCLUSIONS
from ..lake.tables import Lake

ALL = "all"
ROLLBACK = "rollback"
READMIT = "readmit"
# A restore's follow-up deletes (`flywheel.operation`): restored rows that would leak a held-out
# eval prompt. Like an erasure's, they leave a restored table restored.
HOLDOUT_REMOVAL = "rollback-holdout"


@dataclass
class Exclusions:
    """The active exclusions: ids by (scope, id column)."""

    ids: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    # table -> rollback id -> the ids that rollback of the table keeps out
    rollbacks: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(self.ids.values())

    @classmethod
    def load(cls, lake: Lake) -> Exclusions:
        rows = lake.read(ROLLBACK_EXCLUSIONS.name)
        if rows is None or rows.num_rows == 0:
            return cls()
        active = active_rollbacks(lake)
        rows = rows.filter(pc.is_in(rows["rollback_id"], pa.array(sorted(active), pa.string())))
        out: dict[tuple[str, str], set[str]] = {}
        rollbacks: dict[str, dict[str, set[str]]] = {}
        for rollback_id, table, scope, column, value in zip(
            rows["rollback_id"].to_pylist(),
            rows["table"].to_pylist(),
            rows["scope"].to_pylist(),
            rows["id_column"].to_pylist(),
            rows["id"].to_pylist(),
            strict=True,
        ):
            out.setdefault((scope, column), set()).add(value)
            rollbacks.setdefault(table, {}).setdefault(rollback_id, set()).add(value)
        return cls(out, rollbacks)

    def of_table(self, table: str) -> dict[str, pa.Array]:
        """The ids each active rollback of `table` keeps out, by rollback id."""
        return {
            rollback_id: pa.array(sorted(ids), pa.string())
            for rollback_id, ids in self.rollbacks.get(table, {}).items()
        }

    def values(self, column: str, scope: str = ALL) -> pa.Array:
        """Ids excluded for `column` in `scope` (scope "all" always applies)."""
        ids = self.ids.get((ALL, column), set())
        if scope != ALL:
            ids = ids | self.ids.get((scope, column), set())
        return pa.array(sorted(ids), pa.string())

    def drop(self, rows: pa.Table, column: str, scope: str = ALL) -> tuple[pa.Table, int]:
        """`rows` without those whose `column` is excluded; a list column drops a row when any of
        its values is excluded. Returns the rows kept and how many were dropped."""
        values = self.values(column, scope)
        if len(values) == 0 or rows.num_rows == 0 or column not in rows.column_names:
            return rows, 0
        hit = _any_in(rows[column], values)
        return rows.filter(pc.invert(hit)), int(pc.sum(hit).as_py() or 0)


def readmitted_rollbacks(lake: Lake) -> set[str]:
    return _rollback_ids(lake, READMIT)


def active_rollbacks(lake: Lake) -> set[str]:
    """The rollbacks that finished (their audit row exists) and were not re-admitted since."""
    return _rollback_ids(lake, ROLLBACK) - _rollback_ids(lake, READMIT)


def _rollback_ids(lake: Lake, action: str) -> set[str]:
    audit = lake.read(ROLLBACK_AUDIT.name, columns=["rollback_id", "action"])
    if audit is None:
        return set()
    return set(audit.filter(pc.equal(audit["action"], action))["rollback_id"].to_pylist())


def _any_in(column: pa.ChunkedArray, values: pa.Array) -> pa.Array:
    array = column.combine_chunks()
    if not pa.types.is_list(array.type):
        return pc.fill_null(pc.is_in(array, value_set=values), False)
    hits = pc.is_in(pc.list_flatten(array), value_set=values).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(array).to_numpy()
    out = np.zeros(len(array), dtype=bool)
    out[parents[hits]] = True
    return pa.array(out)
