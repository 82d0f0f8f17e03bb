"""Delta table operations shared by every stage: create, idempotent append, stats and reads.

Plain deltalake and pyarrow only, so the lake can be used and tested without Dagster.
"""

from __future__ import annotations

import atexit
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

from .spill import Spill

# Every table keeps its history for the rollback window.
DEFAULT_RETENTION_DAYS = 30
# Commits that leave every row as it was.
MAINTENANCE_OPERATIONS = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES"})


@dataclass(frozen=True)
class TableSpec:
    """A table's name, schema and how it is kept.

    A table holding personal data lists the `safe_columns` (ids, times) whose min/max statistics may
    sit in the Delta log, and has no change data feed: both would keep copies of values outside the
    data files, where deleting rows (retention, erasure) and vacuum cannot reach them.
    """

    name: str
    schema: pa.Schema
    safe_columns: tuple[str, ...] | None = None

    @property
    def personal(self) -> bool:
        return self.safe_columns is not None

    def configuration(self, retention_days: int = DEFAULT_RETENTION_DAYS) -> dict[str, str]:
        interval = f"interval {retention_days} days"
        config = {
            "delta.logRetentionDuration": interval,
            "delta.deletedFileRetentionDuration": interval,
            "delta.enableChangeDataFeed": "false" if self.personal else "true",
        }
        if self.personal:
            config["delta.dataSkippingStatsColumns"] = ",".join(self.safe_columns)
        return config


@dataclass(frozen=True)
class Lake:
    """Where the tables live: a local folder or any deltalake URI, plus storage options.

    `commit_info` is added to every commit's metadata (the Dagster run that wrote it), and
    `retention_days` is the rollback window new tables are created with.
    """

    root: str
    storage_options: Mapping[str, str] | None = None
    commit_info: Mapping[str, str] | None = None
    retention_days: int = DEFAULT_RETENTION_DAYS

    def __post_init__(self):
        refuse_unsafe_rename(self.storage_options or {})
        if self.root.startswith(("s3://", "s3a://")):
            _finalize_s3_at_exit()

    def options(self) -> dict[str, str] | None:
        return dict(self.storage_options or {}) or None

    def commit_properties(
        self,
        metadata: Mapping[str, object] | None = None,
        transaction: tuple[str, int] | None = None,
    ) -> CommitProperties:
        return commit_properties({**(self.commit_info or {}), **(metadata or {})}, transaction)

    def uri(self, table: str) -> str:
        return f"{self.root.rstrip('/')}/{table}"

    def open(self, table: str, version: int | None = None) -> DeltaTable | None:
        """The table, or None when it does not exist yet."""
        try:
            return DeltaTable(
                self.uri(table),
                version=version,
                storage_options=self.options(),
            )
        except TableNotFoundError:
            return None

    def ensure(self, spec: TableSpec) -> DeltaTable:
        """Open the table, creating it empty (with its configuration) on first use."""
        existing = self.open(spec.name)
        if existing is not None:
            return existing
        return DeltaTable.create(
            self.uri(spec.name),
            spec.schema,
            mode="ignore",
            configuration=spec.configuration(self.retention_days),
            storage_options=self.options(),
            commit_properties=self.commit_properties({"flywheel.operation": "create"}),
        )

    def append(
        self,
        spec: TableSpec,
        data: pa.Table | pa.RecordBatchReader,
        *,
        transaction: tuple[str, int] | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> bool:
        """Append `data` in one atomic commit.

        With `transaction=(app_id, version)` the append is idempotent: it is skipped (returns False)
        when the table already recorded that version for that app, so a retried batch lands once.
        """
        dt = self.ensure(spec)
        if transaction is not None:
            app_id, txn_version = transaction
            applied = dt.transaction_version(app_id)
            if applied is not None and applied >= txn_version:
                return False
        write_deltalake(
            dt,
            data,
            mode="append",
            schema_mode="merge",
            storage_options=self.options(),
            commit_properties=self.commit_properties(metadata, transaction),
        )
        return True

    def overwrite(
        self,
        spec: TableSpec,
        data: pa.Table | pa.RecordBatchReader,
        *,
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        """Replace the table's content in one commit (earlier versions stay readable)."""
        dt = self.ensure(spec)
        write_deltalake(
            dt,
            data,
            mode="overwrite",
            storage_options=self.options(),
            commit_properties=self.commit_properties(metadata),
        )

    def upsert(
        self,
        spec: TableSpec,
        data: pa.Table,
        *,
        key: str,
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        """Replace the rows whose `key` is in `data` and add the others, in one commit.

        The table is rewritten rather than merged (Delta's merge writes strings as string_view,
        which every filtered read afterwards pays for, see `read`), streaming through a local
        spill file so memory does not grow with the table.
        """
        keys = data[key].combine_chunks()
        with tempfile.TemporaryDirectory(prefix="flywheel-upsert-") as tmp:
            spill = Spill(Path(tmp) / "rows.arrow", data.schema)
            current = self.open(spec.name)
            for batch in current.to_pyarrow_dataset().to_batches() if current else []:
                replaced = pc.fill_null(pc.is_in(batch[key], value_set=keys), False)
                spill.write(batch.filter(pc.invert(replaced)))
            spill.write(data)
            self.overwrite(spec, spill.reader(), metadata=metadata)

    def last_commit_metadata(self, table: str) -> dict[str, str]:
        """The custom metadata of the table's latest data commit (empty if none).

        Maintenance commits (compaction, vacuum, retention properties) change no row, so they are
        skipped: a fingerprint stored by the last build stays visible through them.
        """
        commit = self._last_data_commit(table)
        return {k: v for k, v in commit.items() if isinstance(v, str)} if commit else {}

    def data_version(self, table: str) -> int:
        """The version of the latest commit that changed rows (-1 when there is no table)."""
        commit = self._last_data_commit(table)
        return int(commit["version"]) if commit else -1

    def _last_data_commit(self, table: str) -> dict | None:
        dt = self.open(table)
        if dt is None:
            return None
        history = dt.history(limit=50)
        for commit in history:
            if commit.get("operation") not in MAINTENANCE_OPERATIONS:
                return commit
        return history[-1] if history else None

    def scan(
        self,
        table: str,
        *,
        filter: pc.Expression | None = None,
        columns: list[str] | None = None,
        rows: int = 100_000,
    ) -> Iterator[pa.Table]:
        """The table's rows in pieces of about `rows`, so a caller holds one piece at a time.

        Filter only on non-string columns: see `read` for why a string filter can fail.
        """
        dt = self.open(table)
        if dt is None:
            return
        pending: list[pa.RecordBatch] = []
        size = 0
        batches = dt.to_pyarrow_dataset().to_batches(
            columns=columns, filter=filter, batch_size=rows
        )
        for batch in batches:
            pending.append(batch)
            size += batch.num_rows
            if size >= rows:
                yield pa.Table.from_batches(pending)
                pending, size = [], 0
        if pending:
            yield pa.Table.from_batches(pending)

    def stats(self, table: str) -> TableStats | None:
        dt = self.open(table)
        return None if dt is None else table_stats(dt)

    def read(
        self,
        table: str,
        *,
        columns: list[str] | None = None,
        filter: pc.Expression | None = None,
        version: int | None = None,
    ) -> pa.Table | None:
        dt = self.open(table, version=version)
        if dt is None:
            return None
        dataset = dt.to_pyarrow_dataset()
        try:
            return dataset.to_table(columns=columns, filter=filter)
        except pa.ArrowNotImplementedError:
            if filter is None:
                raise
        # Files rewritten by a delete store strings as string_view, and Arrow cannot push a
        # filter on a string column down into them. Filter batch by batch instead, after Arrow
        # has read them as the table's own types.
        parts = [batch.filter(filter) for batch in dataset.to_batches()]
        out = pa.Table.from_batches(parts, schema=dataset.schema)
        return out.select(columns) if columns is not None else out


def refuse_unsafe_rename(options: Mapping[str, str]) -> None:
    """Refuse the "unsafe rename" settings: with them two writers can both commit version N and
    one commit silently replaces the other. S3-compatible stores use conditional writes instead
    (`aws_conditional_put: etag`)."""
    settings = {**os.environ, **options}
    for name, value in settings.items():
        if "allow_unsafe_rename" in name.lower() and str(value).lower() not in ("", "false", "0"):
            raise ValueError(
                f"{name}={value} is refused: unsafe renames let concurrent writers overwrite each "
                "other's commits; use conditional writes (aws_conditional_put: etag) instead"
            )


_S3_FINALIZER: list[bool] = []


def _finalize_s3_at_exit() -> None:
    # pyarrow's S3 client must be shut down before the interpreter exits, or the process aborts
    # ("terminate called without an active exception") after the work is done.
    if not _S3_FINALIZER:
        _S3_FINALIZER.append(True)
        atexit.register(pafs.finalize_s3)


@dataclass(frozen=True)
class TableStats:
    version: int
    rows: int
    files: int


def table_stats(dt: DeltaTable) -> TableStats:
    """Version and row count from the Delta log alone (no data files are read)."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    rows = int(pc.sum(actions["num_records"]).as_py() or 0) if actions.num_rows else 0
    return TableStats(version=dt.version(), rows=rows, files=actions.num_rows)


def commit_properties(
    metadata: Mapping[str, object] | None, transaction: tuple[str, int] | None = None
) -> CommitProperties:
    # Commit metadata values must be strings; structured values are stored as JSON.
    custom = {
        k: v if isinstance(v, str) else json.dumps(v, default=str)
        for k, v in (metadata or {}).items()
    }
    txns = [Transaction(app_id=transaction[0], version=transaction[1])] if transaction else None
    return CommitProperties(custom_metadata=custom or None, app_transactions=txns)
