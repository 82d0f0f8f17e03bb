"""Build the curated tables from the redacted ones.

Curated tables are rebuilt whole from the current redacted state, so a rollback or an erasure
upstream is reflected on the next run. A build that would read exactly the same source versions
with the same settings commits nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from ..ingest.contract import DRIFT_EVENTS, INTERACTIONS
from ..lake.exclusions import ROLLBACK_AUDIT, Exclusions
from ..lake.tables import Lake, TableSpec
from ..privacy.pii import Detector
from ..privacy.pipeline import REDACTED_ANNOTATIONS, REDACTED_FEEDBACK, REDACTED_LOGS
from ..privacy.sampling import DriftWindow
from .caps import over_cap_feedback
from .datasets import CurationPolicy, curate, finalize
from .metrics import FEEDBACK_METRICS, daily_metrics
from .quality import CheckOutcome, audit_curated
from .safety import safety_flags
from .schemas import DPO_SET, EVAL_CASES, KTO_SET, REVIEW_QUEUE, SFT_SET, TAGGED_ROWS
from .signals import SignalWeights, collect_signals, tag_rows

SOURCES = (
    REDACTED_LOGS.name,
    REDACTED_FEEDBACK.name,
    REDACTED_ANNOTATIONS.name,
    DRIFT_EVENTS.table,
)
FINGERPRINT_KEY = "flywheel.fingerprint"


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
    checks: list[CheckOutcome] = field(default_factory=list)  # empty when nothing was rebuilt


def source_versions(lake: Lake, tables: tuple[str, ...]) -> dict[str, int]:
    """The version of each table's latest data commit (maintenance commits do not count)."""
    return {name: lake.data_version(name) for name in tables}


def build_tagged_rows(
    lake: Lake,
    detector: Detector,
    weights: SignalWeights,
    cap: FeedbackCap,
    policy: CurationPolicy,
) -> TaggingReport:
    versions = source_versions(lake, (*SOURCES, ROLLBACK_AUDIT.name))
    fingerprint = _fingerprint(versions, weights, cap, policy)
    if lake.last_commit_metadata(TAGGED_ROWS.name).get(FINGERPRINT_KEY) == fingerprint:
        return TaggingReport(committed=False, source_versions=versions)

    # Rows a rollback took away upstream (or from tagged_rows itself) stay out until re-admitted.
    exclusions = Exclusions.load(lake)
    logs, left_out = exclusions.drop(_read(lake, REDACTED_LOGS), "request_id")
    feedback, n = exclusions.drop(_read(lake, REDACTED_FEEDBACK), "feedback_id")
    left_out += n
    annotations, n = exclusions.drop(_read(lake, REDACTED_ANNOTATIONS), "annotation_id")
    left_out += n
    drift = lake.read(DRIFT_EVENTS.table, columns=["event_id", "ts", "window_hours"])
    if drift is not None:
        drift, n = exclusions.drop(drift, "event_id")
        left_out += n
    windows = [
        DriftWindow.before(e["ts"], e["window_hours"])
        for e in (drift.to_pylist() if drift is not None else [])
    ]
    capped = over_cap_feedback(
        feedback["user_hash"],
        feedback["ts"],
        max_per_window=cap.max_per_window,
        window_hours=cap.window_hours,
    )
    signals = collect_signals(feedback, annotations, capped, weights)
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
    tagged = _with_provenance(tagged)
    out = finalize(tagged, TAGGED_ROWS, versions)
    # Write-audit-publish: the table is published only if its checks pass on the staged rows.
    checks = audit_curated({TAGGED_ROWS.name: out}, detector)
    published = all(c.passed for c in checks)
    if published:
        lake.overwrite(TAGGED_ROWS, out, metadata=_commit_meta(fingerprint, versions))
    labels = pc.value_counts(out["label"]).to_pylist()
    return TaggingReport(
        committed=published,
        checks=checks,
        source_versions=versions,
        rows=out.num_rows,
        labels={x["values"]: x["counts"] for x in labels},
        over_cap_feedback=int(pc.sum(capped).as_py() or 0),
        rolled_back=left_out,
    )


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
    tagged = _read(lake, TAGGED_ROWS)
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
    tagged = lake.read(TAGGED_ROWS.name)
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
    return (
        tagged.append_column(
            "source_request_ids", pa.array([[r] for r in tagged["request_id"].to_pylist()])
        )
        .append_column("source_versions", pa.nulls(n, pa.string()))
        .append_column("_curated_at", pa.nulls(n, TAGGED_ROWS.schema.field("_curated_at").type))
    )


def _read(lake: Lake, spec: TableSpec) -> pa.Table:
    table = lake.read(spec.name)
    return table if table is not None else spec.schema.empty_table()


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
