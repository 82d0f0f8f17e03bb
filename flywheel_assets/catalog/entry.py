"""What the catalog says about one Delta table, and the two rollback rules a table can have."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from ..lake.tables import TableSpec


@dataclass(frozen=True)
class Restore:
    """The table may be rolled back by a Delta restore.

    `id_column` names the rows a rollback takes away, so later builds leave them out (None: a
    derived table with nothing to exclude). `everywhere`: no stage may carry those rows again (raw,
    redacted, tagged rows); otherwise only this table's own rebuild leaves them out (curated sets).
    `rebuilt`: every run rebuilds the table whole, so re-admitted rows return on the next run
    rather than being appended back.
    """

    id_column: str | None
    everywhere: bool = True
    rebuilt: bool = False


@dataclass(frozen=True)
class Refuse:
    """The table may not be rolled back: undoing it would undo a safeguard, not data."""

    reason: str  # what to do instead, shown to whoever asked


@dataclass(frozen=True)
class CatalogTable:
    """One Delta table: its spec, what one row is, its key, and the rules every stage follows."""

    spec: TableSpec
    stage: str  # the stage folder (and Dagster group) whose code writes it
    description: str  # "One row per ...": the asset description in the UI
    key: tuple[str, ...]  # the columns that identify a row
    rollback: Restore | Refuse
    preview: tuple[str, ...] = ()  # redacted columns shown in the UI; never set on raw tables

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def schema(self) -> pa.Schema:
        return self.spec.schema

    @property
    def personal(self) -> bool:
        return self.spec.personal
