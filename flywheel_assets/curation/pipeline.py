"""Build the curated tables from the redacted ones.

Curated tables are rebuilt whole from the current redacted state, so a rollback or an erasure
upstream is reflected on the next run. A build that would read exactly the same source versions
with the same settings commits nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..gcpause import paused_gc
from ..ingest.contract import DRIFT_EVENTS, INTERACTIONS
from ..lake.changes import appended_since
from ..lake.exclusions import ROLLBACK_AUDIT, Exclusions
from ..lake.tables import Lake, TableSpec
from ..privacy.pii import Detector
from ..privacy.pipeline import REDACTED_ANNOTATIONS, REDACTED_FEEDBACK, REDACTED_LOGS
from ..privacy.sampling import DriftWindow, in_any_window
from .caps import over_cap_feedback
from .datasets import (
    CANDIDATE_COLUMNS,
    ROW_COLUMNS,
    CurationPolicy,
    candidate_mask,
    curate,
    finalize,
)
from .metrics import FEEDBACK_METRICS, daily_metrics
from .metrics import TAGGED_COLUMNS as METRIC_COLUMNS
from .normalize import normalize_text
from .quality import CheckOutcome, audit_curated
from .safety import safety_flags
from .schemas import DPO_SET, EVAL_CASES, KTO_SET, REVIEW_QUEUE, SFT_SET, TAGGED_ROWS
from .signals import SignalWeights, collect_signals, tag_rows
from .signals import conflict_key as _conflict_key

SOURCES = (
    REDACTED_LOGS.name,
    REDACTED_FEEDBACK.name,
    REDACTED_ANNOTATIONS.name,
    DRIFT_EVENTS.table,
)
FINGERPRINT_KEY = "flywheel.fingerprint"
SETTINGS_KEY = "flywheel.settings"  # the settings alone: a change means a rebuild
LEFT_OUT_KEY = "flywheel.rolled_back_rows"  # interactions and annotations exclusions left out


@dataclass(frozen=True)
class FeedbackCap:
    max_per_window: int = 20
    window_hours: float = 24.0


@dataclass
class TaggingReport:
    committed: bool
    source_versions: dict[str, int]
    rows: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    over_cap_feedback: int = 0
    rolled_back: int = 0  # source rows left out because a rollback excluded them
    retagged: int | None = None  # rows tagged again and merged in; None after a full rebuild
    checks: list[CheckOutcome] = field(default_factory=list)  # empty when nothing was rebuilt


def source_versions(lake: Lake, tables: tuple[str, ...]) -> dict[str, int]:
    """The version of each table's latest data commit (maintenance commits do not count)."""
    return {name: lake.data_version(name) for name in tables}


@paused_gc()
def build_tagged_rows(
    lake: Lake,
    detector: Detector,
    weights: SignalWeights,
    cap: FeedbackCap,
    policy: CurationPolicy,
) -> TaggingReport:
    """Tag every kept interaction. When the sources only gained rows since the last build (with
    the same settings and exclusions), only the interactions those rows can change are tagged
    again and merged in; anything else (an erasure, a rollback, new settings) rebuilds whole."""
    versions = source_versions(lake, (*SOURCES, ROLLBACK_AUDIT.name))
    settings = _fingerprint({}, weights, cap, policy)
    fingerprint = _fingerprint(versions, weights, cap, policy)
    previous = lake.last_commit_metadata(TAGGED_ROWS.name)
    if previous.get(FINGERPRINT_KEY) == fingerprint:
        return TaggingReport(committed=False, source_versions=versions)

    # Rows a rollback took away upstream (or from tagged_rows itself) stay out until re-admitted.
    exclusions = Exclusions.load(lake)
    feedback, left_out = exclusions.drop(_read(lake, REDACTED_FEEDBACK), "feedback_id")
    drift = lake.read(DRIFT_EVENTS.table, columns=["event_id", "ts", "window_hours"])
    if drift is not None:
        drift, n = exclusions.drop(drift, "event_id")
        left_out += n
    windows = _windows(drift)
    # Over-cap depends on each user's whole history, so it is always computed over all feedback.
    capped = over_cap_feedback(
        feedback["user_hash"],
        feedback["ts"],
        max_per_window=cap.max_per_window,
        window_hours=cap.window_hours,
    )
    over_cap = int(pc.sum(capped).as_py() or 0)
    changed = None
    if previous.get(SETTINGS_KEY) == settings:
        built_from = json.loads(previous.get("source_versions") or "{}")
        changed = changed_request_ids(lake, built_from, versions, feedback)
    if changed is None:
        logs, n = exclusions.drop(_read(lake, REDACTED_LOGS), "request_id")
        annotations, m = exclusions.drop(_read(lake, REDACTED_ANNOTATIONS), "annotation_id")
        upstream_left_out = n + m
    else:
        only = pc.field("request_id").isin(changed)
        logs, _ = exclusions.drop(_read(lake, REDACTED_LOGS, only), "request_id")
        annotations, _ = exclusions.drop(_read(lake, REDACTED_ANNOTATIONS, only), "annotation_id")
        # The exclusions are unchanged since the last build, and so is what they left out.
        upstream_left_out = int(previous.get(LEFT_OUT_KEY, "0"))
        touches = pc.or_(
            pc.fill_null(pc.is_in(feedback["request_id"], value_set=changed), False),
            pc.fill_null(pc.is_in(feedback["other_request_id"], value_set=changed), False),
        )
        feedback, capped = feedback.filter(touches), pc.filter(capped, touches)
    signals = collect_signals(feedback, annotations, capped, weights)
    out = finalize(_tag(logs, signals, windows, weights, policy, detector), TAGGED_ROWS, versions)
    # Write-audit-publish: the table is published only if its checks pass on the staged rows.
    checks = audit_curated({TAGGED_ROWS.name: out}, detector)
    published = all(c.passed for c in checks)
    metadata = _commit_meta(fingerprint, versions) | {
        SETTINGS_KEY: settings,
        LEFT_OUT_KEY: str(upstream_left_out),
        "flywheel.retagged": str(out.num_rows) if changed is not None else "all",
    }
    if published and changed is None:
        lake.overwrite(TAGGED_ROWS, out, metadata=metadata)
    elif published:
        lake.upsert(TAGGED_ROWS, out, key="request_id", metadata=metadata)
    labels = out["label"]
    if changed is not None:
        labels = lake.read(TAGGED_ROWS.name, columns=["label"])["label"]
    return TaggingReport(
        committed=published,
        checks=checks,
        source_versions=versions,
        rows=len(labels),
        labels={x["values"]: x["counts"] for x in pc.value_counts(labels).to_pylist()},
        over_cap_feedback=over_cap,
        rolled_back=left_out + upstream_left_out,
        retagged=out.num_rows if changed is not None else None,
    )


def changed_request_ids(
    lake: Lake, built_from: dict[str, int], versions: dict[str, int], feedback: pa.Table
) -> pa.Array | None:
    """The interactions whose tags rows appended since `built_from` can change, or None when the
    sources did more than gain rows (or the exclusions changed): then only a rebuild is exact.

    An interaction changes when it is new, when feedback or an annotation about it (or a
    comparison against it) arrived, when its user's feedback cap may count differently, or when
    a new drift window covers it; and with it every row that shares its prompt and answer, whose
    `conflict` tag depends on its label.
    """
    if not built_from or built_from.get(ROLLBACK_AUDIT.name) != versions[ROLLBACK_AUDIT.name]:
        return None
    new: dict[str, pa.Table] = {}
    for name, columns in (
        (REDACTED_LOGS.name, ["request_id"]),
        (REDACTED_FEEDBACK.name, ["request_id", "other_request_id", "user_hash"]),
        (REDACTED_ANNOTATIONS.name, ["request_id"]),
        (DRIFT_EVENTS.table, ["event_id", "ts", "window_hours"]),
    ):
        rows = appended_since(lake, name, built_from.get(name, -1), columns=columns)
        if rows is None:
            return None
        if rows.num_columns:
            new[name] = rows
    ids = [
        t[c]
        for t in new.values()
        for c in ("request_id", "other_request_id")
        if c in t.schema.names
    ]
    if REDACTED_FEEDBACK.name in new and feedback.num_rows:
        # A user's new feedback can move which of their earlier events are over the cap.
        users = pc.drop_null(pc.unique(new[REDACTED_FEEDBACK.name]["user_hash"]))
        theirs = feedback.filter(
            pc.fill_null(pc.is_in(feedback["user_hash"], value_set=users), False)
        )
        ids += [theirs["request_id"], theirs["other_request_id"]]
    if DRIFT_EVENTS.table in new:
        logs = _read(lake, REDACTED_LOGS, columns=["request_id", "ts"])
        inside = in_any_window(logs["ts"], _windows(new[DRIFT_EVENTS.table]))
        ids.append(logs["request_id"].filter(inside))
    changed = _unique_ids(ids)
    return pa.concat_arrays([changed, _same_prompt_and_answer(lake, changed)])


def _same_prompt_and_answer(lake: Lake, changed: pa.Array) -> pa.Array:
    """Tagged rows outside `changed` with the same normalized prompt and answer as a changed
    row."""
    if len(changed) == 0:
        return pa.array([], pa.string())
    mine = _read(lake, REDACTED_LOGS, pc.field("request_id").isin(changed), ["prompt", "response"])
    keys = _conflict_key(normalize_text(mine["prompt"]), mine["response"])
    tagged = lake.read(TAGGED_ROWS.name, columns=["request_id", "normalized_prompt"])
    if tagged is None or len(keys) == 0:
        return pa.array([], pa.string())
    same_prompt = pc.and_(
        pc.is_in(tagged["normalized_prompt"], value_set=normalize_text(mine["prompt"])),
        pc.invert(pc.is_in(tagged["request_id"], value_set=changed)),
    )
    ids = tagged["request_id"].filter(same_prompt)
    if len(ids) == 0:
        return pa.array([], pa.string())
    others = lake.read(
        TAGGED_ROWS.name,
        columns=["request_id", "normalized_prompt", "response"],
        filter=pc.field("request_id").isin(ids),
    )
    hit = pc.is_in(_conflict_key(others["normalized_prompt"], others["response"]), value_set=keys)
    return others["request_id"].filter(hit).combine_chunks()


def _tag(logs, signals, windows, weights, policy, detector) -> pa.Table:
    tagged = tag_rows(logs, signals, windows, weights)
    # A row is safety-flagged when its prompt or its answer trips the breaker.
    flags = [
        sorted(set(p) | set(r))
        for p, r in zip(
            _content_flags(tagged["prompt"], policy, detector),
            _content_flags(tagged["response"], policy, detector),
            strict=True,
        )
    ]
    tagged = tagged.append_column("safety_flags", pa.array(flags, pa.list_(pa.string())))
    tags = [
        sorted({*t, "safety_flag"}) if f else t
        for t, f in zip(tagged["tags"].to_pylist(), flags, strict=True)
    ]
    tagged = tagged.set_column(
        tagged.schema.get_field_index("tags"), "tags", pa.array(tags, pa.list_(pa.string()))
    )
    return _with_provenance(tagged)


def _windows(drift: pa.Table | None) -> list[DriftWindow]:
    rows = drift.to_pylist() if drift is not None else []
    return [DriftWindow.before(e["ts"], e["window_hours"]) for e in rows]


def _unique_ids(parts: list) -> pa.Array:
    arrays = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in parts]
    arrays = [a.cast(pa.string()) for a in arrays if len(a)]
    if not arrays:
        return pa.array([], pa.string())
    return pc.drop_null(pc.unique(pa.concat_arrays(arrays)))


@dataclass
class StagedSets:
    """Curated tables built in memory, not yet published."""

    fingerprint: str
    source_versions: dict[str, int]
    tables: dict[str, pa.Table]
    stats: dict = field(default_factory=dict)
    rolled_back: dict[str, int] = field(default_factory=dict)  # rows left out per table


CURATED = (EVAL_CASES, REVIEW_QUEUE, SFT_SET, DPO_SET, KTO_SET)


def stage_curated_sets(
    lake: Lake, detector: Detector, key: bytes, policy: CurationPolicy
) -> StagedSets | None:
    """Build every curated table from tagged_rows in memory; None when the published tables were
    built from the same inputs (nothing to do)."""
    versions = source_versions(lake, (TAGGED_ROWS.name, ROLLBACK_AUDIT.name))
    fingerprint = _fingerprint(versions, policy)
    if all(
        lake.last_commit_metadata(spec.name).get(FINGERPRINT_KEY) == fingerprint for spec in CURATED
    ):
        return None
    # Two reads keep the text of rows no set can use out of memory: first the columns that say
    # which rows are candidates, then only those rows, and only the columns the builders read.
    marks = _read(lake, TAGGED_ROWS, columns=list(CANDIDATE_COLUMNS))
    wanted = marks["request_id"].filter(candidate_mask(marks)).combine_chunks()
    tagged = _read(
        lake, TAGGED_ROWS, pc.field("request_id").isin(wanted), columns=list(ROW_COLUMNS)
    )
    curated = curate(tagged, policy, key, detector)
    exclusions = Exclusions.load(lake)
    staged = StagedSets(fingerprint, versions, {}, stats=curated.stats)
    for spec in CURATED:
        table = finalize(getattr(curated, spec.name), spec, versions)
        # Rows a rollback of this very table took away stay out until re-admitted.
        table, dropped = exclusions.drop(table, "source_request_ids", scope=spec.name)
        staged.tables[spec.name] = table
        if dropped:
            staged.rolled_back[spec.name] = dropped
    return staged


@dataclass
class CurationReport:
    committed: bool
    source_versions: dict[str, int]
    checks: list[CheckOutcome] = field(default_factory=list)  # empty when nothing was rebuilt
    rows: dict[str, int] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    rolled_back: dict[str, int] = field(default_factory=dict)


def build_curated_sets(
    lake: Lake, detector: Detector, key: bytes, policy: CurationPolicy
) -> CurationReport:
    """Stage the curated tables, audit them, and publish them only if every check passes: a
    failing check leaves every published table exactly as it was."""
    staged = stage_curated_sets(lake, detector, key, policy)
    if staged is None:
        versions = source_versions(lake, (TAGGED_ROWS.name, ROLLBACK_AUDIT.name))
        return CurationReport(committed=False, source_versions=versions)
    checks = audit_curated(staged.tables, detector)
    report = CurationReport(
        committed=all(c.passed for c in checks),
        source_versions=staged.source_versions,
        checks=checks,
        rows={name: t.num_rows for name, t in staged.tables.items()},
        stats=staged.stats,
        rolled_back=staged.rolled_back,
    )
    if report.committed:
        publish_curated_sets(lake, staged)
    return report


def publish_curated_sets(lake: Lake, staged: StagedSets) -> None:
    for spec in CURATED:
        lake.overwrite(
            spec,
            staged.tables[spec.name],
            metadata=_commit_meta(staged.fingerprint, staged.source_versions),
        )


def build_feedback_metrics(lake: Lake) -> pa.Table:
    """Recompute the days still present in raw_logs; older days keep their stored values."""
    versions = source_versions(lake, (INTERACTIONS.table, TAGGED_ROWS.name))
    fingerprint = _fingerprint(versions)
    dt = lake.ensure(FEEDBACK_METRICS)
    unchanged = lake.last_commit_metadata(FEEDBACK_METRICS.name).get(FINGERPRINT_KEY) == fingerprint
    interactions = lake.read(INTERACTIONS.table, columns=["ts", "model_version"])
    tagged = lake.read(TAGGED_ROWS.name, columns=METRIC_COLUMNS)
    if interactions is None or tagged is None:
        return FEEDBACK_METRICS.schema.empty_table()
    metrics = daily_metrics(interactions, tagged)
    if metrics.num_rows and not unchanged:
        (
            dt.merge(
                metrics,
                predicate="t.day = s.day AND t.model_version = s.model_version",
                source_alias="s",
                target_alias="t",
                commit_properties=lake.commit_properties(_commit_meta(fingerprint, versions)),
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
    return lake.read(FEEDBACK_METRICS.name).sort_by(
        [("day", "ascending"), ("model_version", "ascending")]
    )


def _content_flags(texts, policy: CurationPolicy, detector: Detector) -> list[list[str]]:
    # Length limits are for training targets; here only what the text says matters.
    ignored = {"too_short", "too_long", "empty"}
    return [
        [f for f in row if f not in ignored]
        for row in safety_flags(texts, policy.safety, detector).to_pylist()
    ]


def _with_provenance(tagged: pa.Table) -> pa.Table:
    n = tagged.num_rows
    # Each row's own id as a one-element list.
    own_id = pa.ListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32)), tagged["request_id"].combine_chunks()
    )
    return (
        tagged.append_column("source_request_ids", own_id)
        .append_column("source_versions", pa.nulls(n, pa.string()))
        .append_column("_curated_at", pa.nulls(n, TAGGED_ROWS.schema.field("_curated_at").type))
    )


def _read(
    lake: Lake,
    spec: TableSpec,
    filter: pc.Expression | None = None,
    columns: list[str] | None = None,
) -> pa.Table:
    table = lake.read(spec.name, filter=filter, columns=columns)
    if table is None:
        table = spec.schema.empty_table()
        return table.select(columns) if columns else table
    return table


def _fingerprint(versions: dict[str, int], *settings) -> str:
    blob = json.dumps(
        [versions, *[asdict(s) for s in settings]], sort_keys=True, default=str
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _commit_meta(fingerprint: str, versions: dict[str, int]) -> dict:
    return {
        "flywheel.operation": "curate",
        FINGERPRINT_KEY: fingerprint,
        "source_versions": versions,
    }
