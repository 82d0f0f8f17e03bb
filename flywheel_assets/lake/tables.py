"""Delta table operations shared by every stage: create, idempotent append, stats and reads.

Plain deltalake and pyarrow only, so the lake can be used and tested without Dagster.
"""

from __future__ import annotations

import atexit
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction

from .permissions import make_private

# Every table keeps its history for the rollback window.
DEFAULT_RETENTION_DAYS = 30
# Commits that leave every row as it was.
MAINTENANCE_OPERATIONS = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES"})
# Set on the commits of `Lake.delete`: Delta records them as a write, but they remove rows, so no
# reader may take their files for appended rows.
REWRITE_KEY = "flywheel.rewrite"
# What such a commit added and removed (Delta records file counts only for a hand-made commit).
ROWS_ADDED_KEY = "flywheel.rows_added"
ROWS_REMOVED_KEY = "flywheel.rows_removed"
# Commit metadata naming the erasure that made a commit (never the user).
ERASURE_KEY = "flywheel.erasure_id"
# How often `Lake.delete` reads the files again when a concurrent commit overtook it.
DELETE_ATTEMPTS = 5


class VersionUnreadable(ValueError):
    """A version whose log is still there but whose data files were removed; the message says
    which commit (an erasure, a retention run or a vacuum) removed them, when the log tells."""


@dataclass(frozen=True)
class DeleteResult:
    rows_deleted: int
    version_before: int
    version_after: int


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
        make_private(self.root, create=False)
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
        make_private(self.root)
        try:
            return DeltaTable.create(
                self.uri(spec.name),
                spec.schema,
                mode="ignore",
                configuration=spec.configuration(self.retention_days),
                storage_options=self.options(),
                commit_properties=self.commit_properties({"flywheel.operation": "create"}),
            )
        except CommitFailedError:
            # Another writer created it at the same moment: its table is the one to use.
            created = self.open(spec.name)
            if created is None:
                raise
            return created

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
        """Replace the rows whose `key` is in `data` and add the others, in one commit that
        rewrites only the files holding a replaced row (see `replace`)."""
        self.ensure(spec)
        keys = data[key].combine_chunks()
        result = self.replace(
            spec.name, lambda rows: pc.is_in(rows[key], value_set=keys), data, metadata=metadata
        )
        if result.version_after == result.version_before:  # nothing to write: record the commit
            self.append(spec, spec.schema.empty_table(), metadata=metadata)

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
        """The table's rows in pieces of about `rows`, so a caller holds one piece at a time."""
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in self.batches(table, columns=columns, filter=filter, rows=rows):
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
        """The table's rows (or those of `version`) in the table's own types, or None when
        there is no table. Every read of the lake goes through here or `batches`."""
        dt = self.open(table, version=version)
        if dt is None:
            return None
        dataset = dt.to_pyarrow_dataset()
        schema = (
            dataset.schema if columns is None else pa.schema(map(dataset.schema.field, columns))
        )
        parts = list(self._batches(dt, dataset, columns, filter, None))
        return pa.Table.from_batches(parts, schema=schema)

    def batches(
        self,
        table: str,
        *,
        columns: list[str] | None = None,
        filter: pc.Expression | None = None,
        version: int | None = None,
        rows: int | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """The table's rows batch by batch (about `rows` each), in the table's own types."""
        dt = self.open(table, version=version)
        if dt is not None:
            yield from self._batches(dt, dt.to_pyarrow_dataset(), columns, filter, rows)

    def _batches(
        self,
        dt: DeltaTable,
        dataset: ds.Dataset,
        columns: list[str] | None,
        filter: pc.Expression | None,
        rows: int | None,
    ) -> Iterator[pa.RecordBatch]:
        size = {"batch_size": rows} if rows else {}
        try:
            for fragment in dataset.get_fragments():
                if filter is None or not _has_view_types(fragment.physical_schema):
                    yield from fragment.to_batches(
                        schema=dataset.schema, columns=columns, filter=filter, **size
                    )
                    continue
                # Files Delta's delete or merge rewrote store strings as string_view, which
                # Arrow cannot compare with a string filter: read them in the table's types
                # first, then filter.
                for batch in fragment.to_batches(schema=dataset.schema, **size):
                    kept = pa.Table.from_batches([batch]).filter(filter)
                    kept = kept.select(columns) if columns is not None else kept
                    yield from kept.to_batches()
        except FileNotFoundError:
            name = Path(dt.table_uri.rstrip("/")).name
            raise VersionUnreadable(self.why_unreadable(name, dt.version())) from None

    def why_unreadable(self, table: str, version: int) -> str:
        """Why `version` of `table` can no longer be read: the first later commit that deleted
        rows for privacy (naming the erasure) or, failing that, a vacuum."""
        latest = self.open(table)
        later = sorted(
            (c for c in (latest.history() if latest else []) if c["version"] > version),
            key=lambda c: c["version"],
        )
        removers = [c for c in later if c.get("flywheel.operation") in ("erase", "expire")]
        if removers:
            commit = removers[0]
            when = _commit_time(commit)
            if commit.get("flywheel.operation") == "erase":
                erasure = commit.get(ERASURE_KEY)
                what = f"erasure {erasure}" if erasure else "an erasure"
            else:
                what = "raw-data retention"
            cause = f"{what} (version {commit['version']}, {when}) deleted rows it held"
        else:
            cause = "a vacuum or log cleanup removed files it needs"
        current = latest.version() if latest else -1
        return (
            f"version {version} of {table} is no longer readable: {cause}, and its files were "
            f"vacuumed; the latest version is {current}"
        )

    def delete(
        self,
        table: str,
        match: Callable[[pa.Table], pa.Array],
        *,
        metadata: Mapping[str, object] | None = None,
        purge: bool = False,
    ) -> DeleteResult:
        """Delete the rows for which `match` (a boolean mask over a file's rows) is true, in one
        commit that rewrites only the files holding them; with `purge`, vacuum at once so no
        earlier version can load the deleted rows. See `replace`."""
        result = self.replace(table, match, None, metadata=metadata)
        if purge and result.rows_deleted:
            self.vacuum_now(table)
        return result

    def replace(
        self,
        table: str,
        match: Callable[[pa.Table], pa.Array],
        rows: pa.Table | None,
        *,
        metadata: Mapping[str, object] | None = None,
    ) -> DeleteResult:
        """Remove the rows for which `match` is true and add `rows`, in one commit that rewrites
        only the files holding a removed row (what a Delta merge does, without its costs).

        Every file written keeps the table's own types (Delta's delete and merge write
        string_view, which pandas cannot read), and the log records no predicate: nothing of
        the removed values is copied into it. Only row counts are kept as file statistics.
        A commit overtaken by a concurrent one is redone on the new version.
        """
        for _ in range(DELETE_ATTEMPTS):
            dt = self.open(table)
            if dt is None:
                return DeleteResult(0, -1, -1)
            try:
                return self._replace_once(dt, match, rows, metadata)
            except CommitFailedError:
                continue  # another commit landed since the files were read: read them again
        raise CommitFailedError(
            f"{table}: gave up after {DELETE_ATTEMPTS} attempts, each overtaken by a "
            "concurrent commit; nothing was changed"
        )

    def _replace_once(
        self,
        dt: DeltaTable,
        match: Callable[[pa.Table], pa.Array],
        rows: pa.Table | None,
        metadata: Mapping[str, object] | None,
    ) -> DeleteResult:
        before = dt.version()
        dataset = dt.to_pyarrow_dataset()
        schema = dataset.schema
        fs, now = dataset.filesystem, int(time.time() * 1000)
        actions: list[AddAction | RemoveAction] = []
        written: list[str] = []

        def add(data: pa.Table) -> None:
            name = f"part-00000-{uuid.uuid4()}-c000.zstd.parquet"
            written.append(name)
            pq.write_table(data, name, filesystem=fs, compression="zstd")
            stats = json.dumps({"numRecords": data.num_rows})
            actions.append(AddAction(name, fs.get_file_info(name).size, {}, now, True, stats))

        deleted = 0
        try:
            for fragment in dataset.get_fragments():
                data = fragment.to_table(schema=schema)
                hits = pc.fill_null(match(data), False)
                count = int(pc.sum(hits).as_py() or 0)
                if not count:
                    continue
                deleted += count
                size = fs.get_file_info(fragment.path).size
                actions.append(RemoveAction(fragment.path, True, now, size, {}))
                kept = data.filter(pc.invert(hits))
                if kept.num_rows:
                    add(kept)
            if rows is not None and rows.num_rows:
                add(rows.select(schema.names).cast(schema))
            if not actions:
                return DeleteResult(0, before, before)
            counts = {
                REWRITE_KEY: "replace" if rows is not None else "delete",
                ROWS_ADDED_KEY: str(rows.num_rows if rows is not None else 0),
                ROWS_REMOVED_KEY: str(deleted),
            }
            properties = self.commit_properties({**(metadata or {}), **counts})
            # No retries: Delta does not check a hand-made commit's removed files against
            # concurrent commits, so it may only land on the version its files were read at.
            properties.max_commit_retries = 0
            dt.create_write_transaction(actions, "append", schema, commit_properties=properties)
        except BaseException:
            for name in written:  # never committed: leave no stray copy of the rows behind
                fs.delete_file(name)
            raise
        dt.update_incremental()
        return DeleteResult(deleted, before, dt.version())

    def vacuum_now(self, table: str) -> None:
        """Remove every file the current version does not use, with no grace period: versions
        that needed them can no longer be loaded."""
        dt = self.open(table)
        if dt is not None:
            dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)


def _has_view_types(schema: pa.Schema) -> bool:
    def view(t: pa.DataType) -> bool:
        if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
            return True
        return any(view(t.field(i).type) for i in range(t.num_fields))

    return any(view(f.type) for f in schema)


def _commit_time(commit: Mapping) -> str:
    return datetime.fromtimestamp(commit["timestamp"] / 1000, UTC).isoformat(timespec="seconds")


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
