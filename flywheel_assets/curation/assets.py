"""Gold assets: tagged rows, eval cases, review queue, SFT / DPO / KTO sets, feedback metrics."""

import dagster as dg
import pyarrow.compute as pc
from pydantic import Field

from ..catalog.curated import (
    CURATION_STATE,
    FAILURE_CLUSTERS,
    FEEDBACK_METRICS,
    KTO_SET,
    REVIEW_QUEUE,
    TAGGED_ROWS,
)
from ..catalog.redacted import REDACTED_ANNOTATIONS, REDACTED_FEEDBACK, REDACTED_LOGS
from ..contract.records import DRIFT_EVENTS, INTERACTIONS
from ..metadata import asset_args, rows_now, table_metadata, version_of
from ..privacy.resources import PrivacyResource
from ..resources import LakeResource
from .checks import check_results, check_specs, failure_message
from .datasets import CurationPolicy
from .failures import FED_SETS, ClusterPolicy, build_failure_clusters
from .metrics import MetricThresholds, breaches, chart_markdown, overall
from .pipeline import (
    CURATED,
    FeedbackCap,
    build_curated_sets,
    build_feedback_metrics,
    build_tagged_rows,
)
from .safety import SafetyPolicy
from .signals import SignalWeights

TAGGED_CHECKS = check_specs([TAGGED_ROWS.name])
CURATED_CHECKS = check_specs([spec.name for spec in CURATED])


class CurationConfig(dg.Config):
    """Settings shared by tagging and the curated sets; the defaults suit most apps."""

    holdout_share: float = Field(
        default=0.2, description="Share of eval prompts held out (keyed hash of the prompt)."
    )
    similarity_min: float = Field(
        default=0.10,
        description="DPO pairs from corrections and edits need at least this normalized "
        "Levenshtein similarity between chosen and rejected (below: a rewrite).",
    )
    similarity_max: float = Field(
        default=0.95, description="...and at most this (above: a typo fix that teaches nothing)."
    )
    near_duplicate_threshold: float = Field(
        default=0.9, description="Prompts at least this similar are collapsed in training sets."
    )
    max_user_share: float = Field(
        default=0.1, description="No user may contribute more than this share of a training set."
    )
    min_rows_per_user: int = Field(
        default=5, description="...except that every user may contribute this many rows."
    )
    feedback_cap_per_window: int = Field(
        default=20,
        description="Feedback events one user may give per window before the rest goes to review.",
    )
    feedback_cap_window_hours: float = Field(default=24.0, description="The cap's window.")
    blocklist: list[str] = Field(
        default_factory=list,
        description="Words or phrases that keep a text out of training (case-insensitive).",
    )
    classifier: str | None = Field(
        default=None,
        description="Optional 'package.module:function' taking a list of texts and returning, "
        "per text, False (safe) or True / a reason (unsafe).",
    )
    signal_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Overrides of the signal weights and label thresholds, e.g. "
        "{'copy': 0.25, 'positive_at': 1.0}; names as in SignalWeights.",
    )
    max_chars: int = Field(default=8000, description="Longest training target kept.")
    min_chars: int = Field(default=2, description="Shortest training target kept.")

    def policy(self) -> CurationPolicy:
        return CurationPolicy(
            holdout_share=self.holdout_share,
            similarity_min=self.similarity_min,
            similarity_max=self.similarity_max,
            near_duplicate_threshold=self.near_duplicate_threshold,
            max_user_share=self.max_user_share,
            min_rows_per_user=self.min_rows_per_user,
            safety=SafetyPolicy(
                blocklist=tuple(self.blocklist),
                min_chars=self.min_chars,
                max_chars=self.max_chars,
                classifier=self.classifier,
            ),
        )

    def weights(self) -> SignalWeights:
        known = set(SignalWeights.__dataclass_fields__)
        unknown = sorted(set(self.signal_weights) - known)
        if unknown:
            raise dg.Failure(f"unknown signal weight(s) {unknown}; known: {sorted(known)}")
        return SignalWeights(**self.signal_weights)

    def cap(self) -> FeedbackCap:
        return FeedbackCap(self.feedback_cap_per_window, self.feedback_cap_window_hours)


@dg.asset(
    name=TAGGED_ROWS.name,
    **asset_args(TAGGED_ROWS.name),
    deps=[
        REDACTED_LOGS.name,
        REDACTED_FEEDBACK.name,
        REDACTED_ANNOTATIONS.name,
        DRIFT_EVENTS.table,
    ],
    check_specs=TAGGED_CHECKS,
)
def tagged_rows(
    context: dg.AssetExecutionContext,
    config: CurationConfig,
    lake: LakeResource,
    privacy: PrivacyResource,
):
    the_lake = lake.lake()
    before = rows_now(the_lake, TAGGED_ROWS.name)
    report = build_tagged_rows(
        the_lake, privacy.detector(), config.weights(), config.cap(), config.policy()
    )
    if not report.checks:
        context.log.info("redacted tables unchanged since the last build: nothing committed")
    if report.checks and not report.committed:
        yield from check_results(TAGGED_CHECKS, report.checks, {})
        raise dg.Failure(failure_message(report.checks))
    yield dg.MaterializeResult(
        metadata=table_metadata(
            the_lake,
            TAGGED_ROWS.name,
            before,
            labels=dg.MetadataValue.json(report.labels),
            over_cap_feedback=report.over_cap_feedback,
            rolled_back_rows_left_out=report.rolled_back,
            source_versions=dg.MetadataValue.json(report.source_versions),
            rebuilt=report.committed,
            retagged_rows=report.retagged if report.retagged is not None else "all",
        )
    )
    yield from check_results(
        TAGGED_CHECKS, report.checks, {TAGGED_ROWS.name: version_of(the_lake, TAGGED_ROWS.name)}
    )


@dg.multi_asset(
    name="curated_sets",
    description="Builds eval cases, the review queue and the SFT, DPO and KTO training sets from "
    "tagged_rows, behind the safety circuit breaker, the per-user caps and the holdout.",
    specs=[
        dg.AssetSpec(spec.name, deps=[TAGGED_ROWS.name], **asset_args(spec.name))
        for spec in (*CURATED, CURATION_STATE)
    ],
    check_specs=CURATED_CHECKS,
)
def curated_sets(
    context: dg.AssetExecutionContext,
    config: CurationConfig,
    lake: LakeResource,
    privacy: PrivacyResource,
):
    the_lake = lake.lake()
    before = {spec.name: rows_now(the_lake, spec.name) for spec in (*CURATED, CURATION_STATE)}
    report = build_curated_sets(the_lake, privacy.detector(), privacy.key(), config.policy())
    if not report.checks:
        context.log.info("tagged_rows unchanged since the last build: nothing committed")
    if report.checks and not report.committed:
        yield from check_results(CURATED_CHECKS, report.checks, {})
        raise dg.Failure(failure_message(report.checks))
    for spec in CURATED:
        extra = {"source_versions": dg.MetadataValue.json(report.source_versions)}
        if spec.name == KTO_SET.name:
            kto = the_lake.read(KTO_SET.name, columns=["label"])
            desirable = int(pc.sum(kto["label"]).as_py() or 0)
            extra.update(desirable=desirable, undesirable=kto.num_rows - desirable)
        if spec.name == REVIEW_QUEUE.name:
            queue = the_lake.read(REVIEW_QUEUE.name, columns=["reason"])
            each = pc.list_flatten(pc.split_pattern(queue["reason"], ","))
            reasons = {c["values"]: c["counts"] for c in pc.value_counts(each).to_pylist()}
            extra["reasons"] = dg.MetadataValue.json(dict(sorted(reasons.items())))
        if report.stats:
            extra["curation_stats"] = dg.MetadataValue.json(report.stats)
        if report.checks:
            extra["rows_written"] = report.rows.get(spec.name, 0)
        extra["rolled_back_rows_left_out"] = report.rolled_back.get(spec.name, 0)
        yield dg.MaterializeResult(
            asset_key=spec.name,
            metadata=table_metadata(the_lake, spec.name, before[spec.name], **extra),
        )
    # "all" after a whole build; otherwise how many request ids were derived again, by key.
    rederived = "all" if report.rederived is None else report.rederived
    yield dg.MaterializeResult(
        asset_key=CURATION_STATE.name,
        metadata=table_metadata(
            the_lake, CURATION_STATE.name, before[CURATION_STATE.name], rederived=rederived
        ),
    )
    yield from check_results(
        CURATED_CHECKS,
        report.checks,
        {spec.name: version_of(the_lake, spec.name) for spec in CURATED},
    )


class MetricsConfig(dg.Config):
    min_positive_rate: float = Field(default=0.70, description="Warn below this positive rate.")
    max_correction_rate: float = Field(default=0.20, description="Warn above this correction rate.")
    max_safety_flag_rate: float = Field(
        default=0.005, description="Warn above this share of safety-flagged interactions."
    )


METRIC_CHECKS = ("positive_rate_healthy", "correction_rate_healthy", "safety_flag_rate_healthy")


@dg.asset(
    name=FEEDBACK_METRICS.name,
    **asset_args(FEEDBACK_METRICS.name),
    deps=[TAGGED_ROWS.name, INTERACTIONS.table],
    check_specs=[
        dg.AssetCheckSpec(name, asset=FEEDBACK_METRICS.name, description=desc)
        for name, desc in zip(
            METRIC_CHECKS,
            [
                "The positive rate over all days is at least min_positive_rate (warns).",
                "The correction rate is at most max_correction_rate (warns).",
                "The safety flag rate is at most max_safety_flag_rate (warns).",
            ],
            strict=True,
        )
    ],
)
def feedback_metrics(config: MetricsConfig, lake: LakeResource, privacy: PrivacyResource):
    the_lake = lake.lake()
    before = rows_now(the_lake, FEEDBACK_METRICS.name)
    metrics = build_feedback_metrics(the_lake, privacy.detector(), privacy.key())
    rates = overall(metrics) if metrics.num_rows else {}
    yield dg.MaterializeResult(
        metadata=table_metadata(
            the_lake,
            FEEDBACK_METRICS.name,
            before,
            rates=dg.MetadataValue.json(rates),
            chart=dg.MetadataValue.md(chart_markdown(metrics)),
        )
    )
    crossed = (
        breaches(
            rates,
            MetricThresholds(
                config.min_positive_rate, config.max_correction_rate, config.max_safety_flag_rate
            ),
        )
        if rates
        else {}
    )
    for check, rate in zip(
        METRIC_CHECKS, ["positive_rate", "correction_rate", "safety_flag_rate"], strict=True
    ):
        yield dg.AssetCheckResult(
            check_name=check,
            passed=rate not in crossed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"value": rates.get(rate), "breach": crossed.get(rate, "")},
        )


class FailureClusterConfig(dg.Config):
    min_size: int = Field(
        default=5,
        description="Failing rows (negative, corrected or edited) a cluster needs to be kept.",
    )
    similarity: float = Field(
        default=0.85,
        description="Normalized Indel similarity at which two prompts (digits masked) join one "
        "cluster. Clusters are chains of such pairs, so lower values merge whole topics.",
    )


@dg.asset(
    name=FAILURE_CLUSTERS.name,
    **asset_args(FAILURE_CLUSTERS.name),
    deps=[TAGGED_ROWS.name, *FED_SETS],
)
def failure_clusters(
    context: dg.AssetExecutionContext, config: FailureClusterConfig, lake: LakeResource
) -> dg.MaterializeResult:
    the_lake = lake.lake()
    before = rows_now(the_lake, FAILURE_CLUSTERS.name)
    try:
        policy = ClusterPolicy(min_size=config.min_size, similarity=config.similarity)
    except ValueError as exc:
        raise dg.Failure(f"invalid failure_clusters config: {exc}") from None
    report = build_failure_clusters(the_lake, policy)
    if not report.committed:
        context.log.info("tagged_rows and the curated sets unchanged: nothing committed")
    # The largest clusters by id only: representatives are user text, and the event log keeps
    # metadata out of erasure's reach.
    largest = the_lake.read(FAILURE_CLUSTERS.name, columns=["cluster_id", "size"])
    largest = largest.sort_by([("size", "descending"), ("cluster_id", "ascending")]).slice(0, 5)
    sizes = dict(zip(largest["cluster_id"].to_pylist(), largest["size"].to_pylist(), strict=True))
    return dg.MaterializeResult(
        metadata=table_metadata(
            the_lake,
            FAILURE_CLUSTERS.name,
            before,
            largest=dg.MetadataValue.json(sizes),
            source_versions=dg.MetadataValue.json(report.source_versions),
            rebuilt=report.committed,
        )
    )


ASSETS = [tagged_rows, curated_sets, feedback_metrics, failure_clusters]
