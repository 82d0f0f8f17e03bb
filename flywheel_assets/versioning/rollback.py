"""Roll a table back to an earlier version, keep the rolled-back rows out, re-admit them on request.

A rollback is a Delta restore (a new commit whose content equals the target version) plus:
- the ids of the rows it took away, recorded in `rollback_exclusions`, so that no later build puts
  them back (redaction skips them, tagged_rows and the curated sets leave them out);
- a `rollback_audit` row: table, from, to, reason, who, when, and the registered models that
  trained on the versions rolled back;
- erasure wins: rows of erased users that an old version still held are deleted again at once;
- the holdout wins: restored training rows with a prompt eval_cases now holds out (or restored
  held-out cases whose prompt a training set now holds) are deleted at once.

The restore commits on top of the very version whose rows were compared, so a writer committing
in between cannot lose rows: Delta refuses the restore and the rollback runs again on the new
latest version, whose extra rows it then names as excluded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import CommitFailedError

from .. import catalog
from ..catalog.curated import EVAL_CASES
from ..catalog.entry import Refuse, Restore
from ..catalog.governance import ROLLBACK_AUDIT, ROLLBACK_EXCLUSIONS
from ..governance.exclusions import (
    ALL,
    HOLDOUT_REMOVAL,
    READMIT,
    ROLLBACK,
    Exclusions,
    readmitted_rollbacks,
)
from ..lake.tables import Lake, TableSpec
from ..lake.versions import VersionUnavailable, check_restorable, version_at
from ..privacy.erasure import purge_erased
from ..privacy.reredaction import check_restorable_after_reredaction
from ..training.registry import Registry
from ..training.snapshot import PINNED_TABLES


@dataclass(frozen=True)
class Target:
    """A table that may be rolled back, with its catalog rule."""

    table: str
    rule: Restore

    @property
    def id_column(self) -> str | None:
        return self.rule.id_column

    @property
    def scope(self) -> str:
        # Rows rolled back from an upstream table stay out of every stage; a curated set's
        # stay out of that set's rebuild only.
        return ALL if self.rule.everywhere else self.table

    @property
    def rebuilt(self) -> bool:
        return self.rule.rebuilt


# The tables a rollback can restore, by name.
TARGETS = [t.name for t in catalog.TABLES if isinstance(t.rollback, Restore)]


class RollbackError(ValueError):
    """A rollback or re-admission that cannot be made; the message says why."""


@dataclass
class RollbackResult:
    rollback_id: str
    table: str
    from_version: int
    to_version: int
    restored_version: int
    rows_before: int
    rows_after: int
    ids_count: int  # ids of rows rolled back (excluded) or re-admitted
    erased_rows_removed: int
    affected_models: list[dict] = field(default_factory=list)
    rebuilt: bool = False
    held_out_rows_removed: int = 0  # restored rows that would have leaked a held-out prompt


def rollback_table(
    lake: Lake,
    table: str,
    *,
    key: bytes,
    reason: str,
    to_version: int | None = None,
    to_timestamp: datetime | None = None,
    actor: str = "cli",
    run_id: str | None = None,
    before_restore: Callable[[int], None] | None = None,
) -> RollbackResult:
    """Restore `table` to `to_version` (or the version current at `to_timestamp`).

    The restore commits only on top of the version whose rows it compared: a writer that commits
    in between makes Delta refuse the restore, and the rollback starts again from the new latest
    version, so every row it takes away is named by an exclusion. `before_restore` is called
    with the version read just before each restore commits (a test's way to race it).
    """
    target = _target(table)
    if not reason or not reason.strip():
        raise RollbackError("a rollback needs a reason (it goes into the audit)")
    if (to_version is None) == (to_timestamp is None):
        raise RollbackError("give exactly one of a version or a timestamp to roll back to")
    if lake.open(table) is None:
        raise RollbackError(f"no table {table!r} under {lake.root}")
    for _ in range(RESTORE_ATTEMPTS):
        attempt = _attempt(lake, target, key, reason, to_version, to_timestamp, before_restore)
        if attempt is not None:
            break
    else:
        raise RollbackError(
            f"{table}: gave up after {RESTORE_ATTEMPTS} attempts, each overtaken by a concurrent "
            "commit; nothing was restored"
        )
    result = attempt
    _audit(lake, result, action=ROLLBACK, reason=reason, actor=actor, run_id=run_id)
    return result


RESTORE_ATTEMPTS = 5


def _attempt(
    lake: Lake,
    target: Target,
    key: bytes,
    reason: str,
    to_version: int | None,
    to_timestamp: datetime | None,
    before_restore: Callable[[int], None] | None,
) -> RollbackResult | None:
    """One rollback on top of the latest version; None when a concurrent commit overtook it."""
    table = target.table
    dt = lake.open(table)  # the snapshot the restore commits on top of
    current = dt.version()
    version = to_version if to_version is not None else version_at(lake, table, to_timestamp)
    if version == current:
        raise RollbackError(f"{table} is already at version {version}: nothing to roll back")
    check_restorable_after_reredaction(lake, table, version)  # names a re-redaction that won
    before = lake.read(table, version=current)
    after = lake.read(table, version=version)
    _refuse_excluded_rows(lake, target, after, version)
    excluded = _rows_taken_away(before, after, target.id_column)
    rollback_id = f"rb-{table}-{current}-to-{version}-{datetime.now(UTC):%Y%m%d%H%M%S%f}"
    affected = affected_models(lake, table, from_version=current, to_version=version)

    if len(excluded):
        # Exclusions first: a crash after the restore still leaves the rows named.
        _record_exclusions(lake, target, rollback_id, excluded)
    metadata = {
        "flywheel.operation": ROLLBACK,
        "flywheel.rollback_id": rollback_id,
        "flywheel.reason": reason,
    }
    if before_restore is not None:
        before_restore(current)
    try:
        dt.restore(version, commit_properties=lake.commit_properties(metadata))
    except CommitFailedError:
        # Another writer committed since `current` was read: this attempt restored nothing.
        if len(excluded):
            lake.delete(
                ROLLBACK_EXCLUSIONS.name,
                lambda rows: pc.equal(rows["rollback_id"], rollback_id),
                metadata={"flywheel.operation": "rollback-retry"},
            )
        return None
    restored = dt.version()
    erased = purge_erased(lake, table, key)
    held = remove_held_out(lake, table)
    stats = lake.stats(table)
    return RollbackResult(
        rollback_id=rollback_id,
        table=table,
        from_version=current,
        to_version=version,
        restored_version=restored,
        rows_before=before.num_rows,
        rows_after=stats.rows if stats else 0,
        ids_count=len(excluded),
        erased_rows_removed=erased,
        affected_models=affected,
        rebuilt=target.rebuilt,
        held_out_rows_removed=held,
    )


def _record_exclusions(lake: Lake, target: Target, rollback_id: str, ids: pa.Array) -> None:
    now = datetime.now(UTC)
    lake.append(
        ROLLBACK_EXCLUSIONS,
        pa.table(
            {
                "rollback_id": pa.array([rollback_id] * len(ids)),
                "table": pa.array([target.table] * len(ids)),
                "scope": pa.array([target.scope] * len(ids)),
                "id_column": pa.array([target.id_column] * len(ids)),
                "id": ids,
                "excluded_at": pa.array([now] * len(ids), pa.timestamp("us", tz="UTC")),
            },
            schema=ROLLBACK_EXCLUSIONS.schema,
        ),
        metadata={"flywheel.operation": ROLLBACK, "flywheel.rollback_id": rollback_id},
    )


def _refuse_excluded_rows(lake: Lake, target: Target, rows: pa.Table | None, version: int) -> None:
    """A version holding rows that an earlier rollback of this table keeps out cannot be
    restored: the rows would be back in the table and excluded at once. Re-admitting that
    rollback is how to bring them back."""
    column = target.id_column
    if column is None or rows is None or column not in rows.column_names or not rows.num_rows:
        return
    exclusions = Exclusions.load(lake)
    ids = _flat(rows[column])
    for rollback_id, excluded in sorted(exclusions.of_table(target.table).items()):
        hit = pc.is_in(ids, value_set=excluded)
        count = len(pc.unique(ids.filter(pc.fill_null(hit, False))))
        if count:
            raise RollbackError(
                f"version {version} of {target.table} holds {count} row(s) that rollback "
                f"{rollback_id} keeps out; re-admit them with 'flywheel readmit {rollback_id}' "
                "or roll back to a version without them"
            )


def remove_held_out(lake: Lake, table: str) -> int:
    """After a restore of a training set or of eval_cases, delete the restored rows that would
    put a held-out eval prompt into training: training rows whose prompt eval_cases now holds out,
    or held-out eval cases whose prompt a training set now holds. The holdout wins, like erasure.
    Returns the rows deleted."""
    if table not in (*HELD_AGAINST, EVAL_CASES.name) or lake.open(EVAL_CASES.name) is None:
        return 0
    if table == EVAL_CASES.name:
        trained = [
            lake.read(t, columns=["normalized_prompt"])["normalized_prompt"].combine_chunks()
            for t in HELD_AGAINST
            if lake.open(t) is not None
        ]
        prompts = pc.unique(pa.concat_arrays(trained)) if trained else pa.array([], pa.string())

        def leak(rows: pa.Table) -> pa.Array:
            taken = pc.is_in(rows["normalized_prompt"], value_set=prompts)
            return pc.fill_null(pc.and_(rows["holdout"], taken), False)
    else:
        evals = lake.read(EVAL_CASES.name, columns=["normalized_prompt", "holdout"])
        held = evals.filter(pc.fill_null(evals["holdout"], False))["normalized_prompt"]
        prompts = pc.unique(held.combine_chunks())

        def leak(rows: pa.Table) -> pa.Array:
            return pc.fill_null(pc.is_in(rows["normalized_prompt"], value_set=prompts), False)

    columns = (
        ["normalized_prompt", "holdout"] if table == EVAL_CASES.name else ["normalized_prompt"]
    )
    rows = lake.read(table, columns=columns)
    if rows is None or not rows.num_rows or not int(pc.sum(leak(rows)).as_py() or 0):
        return 0
    deleted = lake.delete(table, leak, metadata={"flywheel.operation": HOLDOUT_REMOVAL})
    return deleted.rows_deleted


HELD_AGAINST = ("sft_set", "dpo_set", "kto_set")


@dataclass
class ReadmitResult:
    rollback_id: str
    table: str
    ids_readmitted: int
    rows_restored: int  # appended back into the table (tables that are not rebuilt whole)
    note: str


def readmit(
    lake: Lake,
    rollback_id: str,
    *,
    key: bytes,
    reason: str,
    actor: str = "cli",
    run_id: str | None = None,
) -> ReadmitResult:
    """Lift a rollback's exclusions. Tables appended to (raw, redacted) get the rolled-back rows
    back from the version before the rollback; tables rebuilt whole get them on the next run."""
    if not reason or not reason.strip():
        raise RollbackError("re-admitting needs a reason (it goes into the audit)")
    record = _rollback_record(lake, rollback_id)
    if rollback_id in readmitted_rollbacks(lake):
        raise RollbackError(f"rollback {rollback_id} was already re-admitted")
    table = record["table"]
    target = _target(table)
    ids = _excluded_ids(lake, rollback_id)
    restored = 0
    note = "the next run rebuilds the table with these rows"
    if not target.rebuilt and len(ids):
        try:
            check_restorable(lake, table, record["from_version"])
        except VersionUnavailable as exc:
            raise RollbackError(
                f"cannot re-admit {rollback_id}: the rows lived in version "
                f"{record['from_version']} of {table}, which is gone ({exc})"
            ) from exc
        old = lake.read(table, version=record["from_version"])
        present = lake.read(table, columns=[target.id_column])[target.id_column]
        back = old.filter(
            pc.and_(
                pc.is_in(old[target.id_column], value_set=ids),
                pc.invert(pc.is_in(old[target.id_column], value_set=present.combine_chunks())),
            )
        )
        if back.num_rows:
            dt = lake.open(table)
            schema = dt.schema().to_arrow()
            lake.append(
                TableSpec(table, pa.schema(schema)),
                back.select(pa.schema(schema).names),
                metadata={"flywheel.operation": "readmit", "flywheel.rollback_id": rollback_id},
            )
            restored = back.num_rows - purge_erased(lake, table, key)
        note = f"{restored} row(s) appended back from version {record['from_version']}"
    _audit(
        lake,
        RollbackResult(
            rollback_id=rollback_id,
            table=table,
            from_version=record["from_version"],
            to_version=record["to_version"],
            restored_version=lake.open(table).version(),
            rows_before=record["rows_after"],
            rows_after=(lake.stats(table).rows if lake.stats(table) else 0),
            ids_count=len(ids),
            erased_rows_removed=0,
        ),
        action=READMIT,
        reason=reason,
        actor=actor,
        run_id=run_id,
    )
    return ReadmitResult(rollback_id, table, len(ids), restored, note)


def affected_models(lake: Lake, table: str, *, from_version: int, to_version: int) -> list[dict]:
    """Registered models that trained on data from the versions being rolled back.

    For a pinned training table (sft_set, dpo_set, kto_set, eval_cases) that is exact: the models
    whose pinned version lies in (to_version, from_version]. For a table upstream of them it is
    every model whose pinned data was written after the first rolled-back version was, since only
    those can hold its rows.
    """
    models = Registry(lake).models()
    if not models or from_version <= to_version:
        return []
    if table in PINNED_TABLES:
        return [
            _model_summary(m)
            for m in models
            if to_version < int(m["dataset_versions"].get(table, -1)) <= from_version
        ]
    first_bad = _commit_time(lake, table, to_version + 1)
    if first_bad is None:
        return [_model_summary(m) for m in models]
    out = []
    for m in models:
        times = [_commit_time(lake, t, v) for t, v in m["dataset_versions"].items() if v >= 0]
        # A pinned version whose log is gone is older than the window: it cannot hold new rows.
        if any(t is not None and t >= first_bad for t in times):
            out.append(_model_summary(m))
    return out


def audit_log(lake: Lake) -> list[dict]:
    rows = lake.read(ROLLBACK_AUDIT.name)
    return [] if rows is None else rows.sort_by("at").to_pylist()


def _target(table: str) -> Target:
    entry = catalog.BY_NAME.get(table)
    if entry is None:
        raise RollbackError(
            f"unknown table {table!r}; tables that can be rolled back: {', '.join(sorted(TARGETS))}"
        )
    if isinstance(entry.rollback, Refuse):
        raise RollbackError(f"{table} cannot be rolled back: {entry.rollback.reason}")
    return Target(table, entry.rollback)


def _rows_taken_away(before: pa.Table, after: pa.Table, column: str | None) -> pa.Array:
    """Ids present now that the target version does not have."""
    if column is None or before is None or column not in before.column_names:
        return pa.array([], pa.string())
    now_ids = _flat(before[column])
    then_ids = _flat(after[column]) if after is not None and column in after.column_names else None
    gone = now_ids if then_ids is None else now_ids.filter(pc.invert(pc.is_in(now_ids, then_ids)))
    return pc.unique(gone.drop_null()).cast(pa.string())


def _flat(column: pa.ChunkedArray) -> pa.Array:
    array = column.combine_chunks()
    return pc.list_flatten(array) if pa.types.is_list(array.type) else array


def _model_summary(model: dict) -> dict:
    return {
        "model_id": model["model_id"],
        "status": model["status"],
        "dataset_versions": dict(model["dataset_versions"]),
    }


def _commit_time(lake: Lake, table: str, version: int) -> datetime | None:
    dt = lake.open(table)
    if dt is None:
        return None
    for commit in dt.history():
        if commit["version"] == version:
            return datetime.fromtimestamp(commit["timestamp"] / 1000, UTC)
    return None


def _rollback_record(lake: Lake, rollback_id: str) -> dict:
    rows = lake.read(ROLLBACK_AUDIT.name)
    if rows is not None:
        match = rows.filter(
            pc.and_(pc.equal(rows["rollback_id"], rollback_id), pc.equal(rows["action"], ROLLBACK))
        )
        if match.num_rows:
            return match.to_pylist()[0]
    raise RollbackError(f"no rollback {rollback_id!r}; 'flywheel history --rollbacks' lists them")


def _excluded_ids(lake: Lake, rollback_id: str) -> pa.Array:
    rows = lake.read(ROLLBACK_EXCLUSIONS.name, filter=pc.field("rollback_id") == rollback_id)
    return pa.array([], pa.string()) if rows is None else rows["id"].combine_chunks()


def _audit(
    lake: Lake,
    result: RollbackResult,
    *,
    action: str,
    reason: str,
    actor: str,
    run_id: str | None,
) -> None:
    row = {
        "rollback_id": result.rollback_id,
        "action": action,
        "table": result.table,
        "from_version": result.from_version,
        "to_version": result.to_version,
        "restored_version": result.restored_version,
        "rows_before": result.rows_before,
        "rows_after": result.rows_after,
        "ids_count": result.ids_count,
        "erased_rows_removed": result.erased_rows_removed,
        "affected_models": [m["model_id"] for m in result.affected_models],
        "reason": reason,
        "actor": actor,
        "run_id": run_id,
        "at": datetime.now(UTC),
    }
    lake.append(
        ROLLBACK_AUDIT,
        pa.Table.from_pylist([row], schema=ROLLBACK_AUDIT.schema),
        metadata={"flywheel.operation": action, "flywheel.rollback_id": result.rollback_id},
    )
