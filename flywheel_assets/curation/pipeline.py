"""Build the curated sets (eval cases, review queue, SFT / DPO / KTO) and the feedback metrics
from tagged_rows.

After tagged_rows only gained or re-tagged rows, the curated sets are built by key: only the
request ids that changed are derived again, and each set commits one merge (`incremental`).
Anything else upstream (a rollback, an erasure, an expiry, new settings) rebuilds them whole, so
it is reflected on the next run. A build that would read exactly the same source versions with
the same settings commits nothing.

A set a rollback restored keeps its restored rows through the builds that follow until what it
is made of changes (the local rows of `curation_state`): recomputing it from unchanged inputs
could only undo part of the restore (see docs/versions.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ..catalog.curated import (
    CURATION_STATE,
    CURATION_STATE_KEY,
    DPO_SET,
    EVAL_CASES,
    FEEDBACK_METRICS,
    KTO_SET,
    SFT_SET,
    TAGGED_ROWS,
)
from ..catalog.governance import ROLLBACK_AUDIT
from ..contract.records import INTERACTIONS
from ..governance.exclusions import HOLDOUT_REMOVAL, ROLLBACK, Exclusions, active_rollbacks
from ..governance.tombstones import without_erased
from ..lake.tables import MAINTENANCE_OPERATIONS, Lake
from ..privacy.pii import Detector
from ..privacy.redact import pseudonymize
from . import incremental
from .builds import (
    FINGERPRINT_KEY,
    build_fingerprint,
    commit_meta,
    read_or_empty,
    source_versions,
)
from .datasets import (
    CANDIDATE_COLUMNS,
    PUBLISHED,
    ROW_COLUMNS,
    CurationPolicy,
    candidate_mask,
    curate,
    finalize,
)
from .metrics import TAGGED_COLUMNS as METRIC_COLUMNS
from .metrics import daily_metrics
from .quality import CheckOutcome, audit_curated, holdout_leaks
from .tagging import FeedbackCap, TaggingReport, build_tagged_rows

__all__ = [
    "CURATED",
    "FeedbackCap",
    "TaggingReport",
    "build_curated_sets",
    "build_feedback_metrics",
    "build_tagged_rows",
    "stage_curated_sets",
]


@dataclass
class StagedSets:
    """Curated tables built in memory, not yet published: whole tables after a whole build, or
    the rows to write and the ids to delete after an incremental one (`deleted` is not None)."""

    fingerprint: str
    source_versions: dict[str, int]
    tables: dict[str, pa.Table]
    state: pa.Table  # curation_state: every row after a whole build, the changed ones otherwise
    stats: dict = field(default_factory=dict)
    rolled_back: dict[str, int] = field(default_factory=dict)  # rows left out per table
    deleted: dict[str, pa.Array] | None = None
    state_deleted: pa.Table | None = None
    rederived: int | None = None  # request ids derived again; None after a whole build
    # Sets a rollback restored whose inputs did not change: `tables` holds their published rows,
    # and publishing records the build on them without rewriting a row.
    kept: set[str] = field(default_factory=set)


CURATED = tuple(PUBLISHED)  # eval_cases, review_queue, sft_set, dpo_set, kto_set


def stage_curated_sets(
    lake: Lake, detector: Detector, key: bytes, policy: CurationPolicy
) -> StagedSets | None:
    """Build the curated tables in memory; None when the published tables were built from the
    same inputs (nothing to do). After tagged_rows only gained or re-tagged rows, only the
    request ids that changed are derived again (`incremental`); otherwise every candidate is."""
    versions = source_versions(lake, (TAGGED_ROWS.name, ROLLBACK_AUDIT.name))
    fingerprint = build_fingerprint(versions, policy)
    if all(
        lake.last_commit_metadata(spec.name).get(FINGERPRINT_KEY) == fingerprint for spec in CURATED
    ):
        return None
    exclusions = Exclusions.load(lake)
    changed = incremental.changed_request_ids(lake, policy, versions)
    if changed is not None:
        step = incremental.increment(lake, changed, policy, key, detector, exclusions)
        return StagedSets(
            fingerprint,
            versions,
            {spec.name: finalize(step.written[spec.name], spec, versions) for spec in CURATED},
            incremental.state_table(step.state_written),
            stats=step.selection.stats,
            rolled_back=step.rolled_back,
            deleted=step.deleted,
            state_deleted=step.state_deleted.to_arrow(),
            rederived=len(step.changed),
        )
    # Two reads keep the text of rows no set can use out of memory: first the columns that say
    # which rows are candidates, then only those rows, and only the columns the builders read.
    marks = read_or_empty(lake, TAGGED_ROWS, columns=list(CANDIDATE_COLUMNS))
    wanted = marks["request_id"].filter(candidate_mask(marks)).combine_chunks()
    tagged = read_or_empty(
        lake, TAGGED_ROWS, pc.field("request_id").isin(wanted), columns=list(ROW_COLUMNS)
    )
    # Rows a rollback of a set took away stay out of it until re-admitted, and take no part in
    # its global steps.
    curated = curate(tagged, policy, key, detector, incremental.excluded_by_set(exclusions))
    state = incremental.state_table(curated.state)
    staged = StagedSets(
        fingerprint, versions, {}, state, stats=curated.stats, rolled_back=curated.left_out
    )
    for spec in CURATED:
        staged.tables[spec.name] = finalize(getattr(curated, spec.name), spec, versions)
    _keep_restored(lake, staged, curated.state)
    return staged


def restored_sets(lake: Lake) -> set[str]:
    """The curated sets whose latest rows are a rollback's restore that no build has replaced
    and no re-admission has lifted (an erasure's deletes since then do not count)."""
    active = active_rollbacks(lake)
    out: set[str] = set()
    if not active:
        return out
    for spec in CURATED:
        dt = lake.open(spec.name)
        for commit in dt.history(limit=50) if dt is not None else []:
            operation = commit.get("flywheel.operation")
            if commit.get("operation") in MAINTENANCE_OPERATIONS or operation in ERASING:
                continue
            if operation == ROLLBACK and commit.get("flywheel.rollback_id") in active:
                out.add(spec.name)
            break
    return out


# Deletes that only take rows out (an erasure, an expiry, the holdout): a restore followed by one
# is still a restore, less those rows.
ERASING = ("erase", "expire", HOLDOUT_REMOVAL)


def _keep_restored(lake: Lake, staged: StagedSets, state) -> None:
    """Keep the published rows of each restored set while the local rows the build derived equal
    those of the last build: nothing the set is made of changed since it was restored. A set
    whose restored rows would leak a held-out prompt (into or out of training) is built again."""
    restored = restored_sets(lake)
    if not restored or not incremental.same_state(incremental.read_state(lake), state):
        return
    published = {name: lake.read(name) for name in restored}
    kept = set(restored)
    while True:
        tables = {name: published[name] if name in kept else t for name, t in staged.tables.items()}
        leaking = {
            name for name in TRAINING_SETS if holdout_leaks(tables[EVAL_CASES.name], tables[name])
        }
        if not leaking & kept and not (leaking and EVAL_CASES.name in kept):
            break
        kept -= leaking if leaking & kept else {EVAL_CASES.name}
    for name in kept:
        staged.tables[name] = published[name]
    staged.kept = kept


TRAINING_SETS = (SFT_SET.name, DPO_SET.name, KTO_SET.name)


@dataclass
class CurationReport:
    committed: bool
    source_versions: dict[str, int]
    checks: list[CheckOutcome] = field(default_factory=list)  # empty when nothing was rebuilt
    rows: dict[str, int] = field(default_factory=dict)  # rows written by this build, per table
    stats: dict = field(default_factory=dict)
    rolled_back: dict[str, int] = field(default_factory=dict)
    rederived: int | None = None  # request ids derived again; None after a whole build


def build_curated_sets(
    lake: Lake, detector: Detector, key: bytes, policy: CurationPolicy
) -> CurationReport:
    """Stage the curated tables, audit them, and publish them only if every check passes: a
    failing check leaves every published table exactly as it was."""
    staged = stage_curated_sets(lake, detector, key, policy)
    if staged is None:
        versions = source_versions(lake, (TAGGED_ROWS.name, ROLLBACK_AUDIT.name))
        return CurationReport(committed=False, source_versions=versions)
    # An incremental build audits the rows it writes; the rows it keeps passed when written.
    checks = audit_curated(staged.tables, detector)
    if staged.deleted is not None:
        checks = [c for c in checks if c.check != "no_holdout_leakage"]
        checks += incremental.holdout_leakage(lake, staged.tables, staged.deleted)
    report = CurationReport(
        committed=all(c.passed for c in checks),
        source_versions=staged.source_versions,
        checks=checks,
        rows={name: 0 if name in staged.kept else t.num_rows for name, t in staged.tables.items()},
        stats=staged.stats,
        rolled_back=staged.rolled_back,
        rederived=staged.rederived,
    )
    if report.committed:
        publish_curated_sets(lake, staged, policy)
    return report


def publish_curated_sets(lake: Lake, staged: StagedSets, policy: CurationPolicy) -> None:
    """Every set, then the state last: a set whose fingerprint is not the state's was written by
    something else (or by a build that stopped half-way), and the next build is a whole one."""
    meta = commit_meta(staged.fingerprint, staged.source_versions)
    for spec in CURATED:
        table = without_erased(lake, staged.tables[spec.name])  # tombstones as of this commit
        if spec.name in staged.kept:  # record the build, rewrite nothing
            lake.append(spec, spec.schema.empty_table(), metadata=meta)
        elif staged.deleted is None:
            lake.overwrite(spec, table, metadata=meta)
        else:
            gone = pa.table({spec.schema.names[0]: staged.deleted[spec.name]})
            incremental.merge(lake, spec, [spec.schema.names[0]], table, gone, meta)
    meta = meta | {
        incremental.SETTINGS_KEY: incremental.settings_of(policy),
        incremental.REDERIVED_KEY: "all" if staged.rederived is None else str(staged.rederived),
    }
    if staged.state_deleted is None:
        lake.overwrite(CURATION_STATE, staged.state, metadata=meta)
    else:
        keys = list(CURATION_STATE_KEY)
        incremental.merge(lake, CURATION_STATE, keys, staged.state, staged.state_deleted, meta)


def build_feedback_metrics(
    lake: Lake, detector: Detector | None = None, key: bytes | None = None
) -> pa.Table:
    """Recompute the days still present in raw_logs; older days keep their stored values.

    With the privacy detector and key, a model_version holding PII is stored as the redacted
    tables store it (a keyed pseudonym), so it joins with them and never reaches the metrics."""
    versions = source_versions(lake, (INTERACTIONS.table, TAGGED_ROWS.name))
    fingerprint = build_fingerprint(versions)
    dt = lake.ensure(FEEDBACK_METRICS)
    unchanged = lake.last_commit_metadata(FEEDBACK_METRICS.name).get(FINGERPRINT_KEY) == fingerprint
    if unchanged:  # built from these very versions: read nothing else
        return _sorted_metrics(lake)
    interactions = lake.read(INTERACTIONS.table, columns=["ts", "model_version"])
    if interactions is not None and detector is not None and key is not None:
        versions_as_stored, _ = pseudonymize(interactions["model_version"], detector, key)
        interactions = interactions.set_column(1, "model_version", versions_as_stored)
    tagged = lake.read(TAGGED_ROWS.name, columns=METRIC_COLUMNS)
    if interactions is None or tagged is None:
        return FEEDBACK_METRICS.schema.empty_table()
    metrics = daily_metrics(interactions, tagged)
    if metrics.num_rows:
        (
            dt.merge(
                metrics,
                predicate="t.day = s.day AND t.model_version = s.model_version",
                source_alias="s",
                target_alias="t",
                commit_properties=lake.commit_properties(commit_meta(fingerprint, versions)),
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
    return _sorted_metrics(lake)


def _sorted_metrics(lake: Lake) -> pa.Table:
    return lake.read(FEEDBACK_METRICS.name).sort_by(
        [("day", "ascending"), ("model_version", "ascending")]
    )
