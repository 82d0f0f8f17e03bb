"""The retraining loop's tables: training snapshots, evaluation answers, the model registry and its
audit, the drift monitor's evaluations, and what each promotion improved."""

from __future__ import annotations

import pyarrow as pa

from ..contract.records import TIMESTAMP
from ..lake.tables import TableSpec

TRAINING_SNAPSHOTS = TableSpec(
    "training_snapshot",
    pa.schema(
        [
            pa.field("snapshot_id", pa.string()),
            pa.field("run_id", pa.string()),
            # threshold | drift | schedule | failure_cluster | manual
            pa.field("trigger", pa.string()),
            pa.field("run_key", pa.string()),
            pa.field("versions", pa.string()),  # JSON: {"sft_set": 4, ...}
            pa.field("rows", pa.string()),  # JSON: rows per table at those versions
            pa.field("new_rows", pa.string()),  # JSON: rows added since the previous snapshot
            pa.field("created_at", TIMESTAMP),
            # The failure cluster a failure_cluster_sensor run targets (null otherwise; added
            # later, so older tables gain it on their next append).
            pa.field("target_cluster", pa.string()),
        ]
    ),
)
# Answers are generated from the users' (redacted) prompts, so the table is kept like the curated
# ones: no change feed, log statistics on ids and times only.
CANDIDATE_EVALS = TableSpec(
    "candidate_eval",
    pa.schema(
        [
            pa.field("candidate_id", pa.string()),  # the model this evaluation gated
            pa.field("role", pa.string()),  # production | candidate
            pa.field("model_id", pa.string()),  # the model that answered ("base": no adapter)
            pa.field("case_id", pa.string()),
            pa.field("kind", pa.string()),
            pa.field("holdout", pa.bool_()),
            pa.field("output", pa.string()),
            pa.field("score", pa.float64()),
            pa.field("passed", pa.bool_()),
            pa.field("run_id", pa.string()),
            pa.field("evaluated_at", TIMESTAMP),
            # Mean per-token log-likelihood of the expected answer, of the corrected answer
            # (regression cases), and their difference; `score`/`output` are the generated
            # answer's, on the judged subset only (judge_passed: its score reached the threshold).
            pa.field("loglik", pa.float64()),
            pa.field("contrast_loglik", pa.float64()),
            pa.field("margin", pa.float64()),
            pa.field("judge_passed", pa.bool_()),
        ]
    ),
    safe_columns=(
        "candidate_id",
        "case_id",
        "evaluated_at",
        "loglik",
        "contrast_loglik",
        "margin",
        "judge_passed",
    ),
)
MODEL_REGISTRY = TableSpec(
    "model_registry",
    pa.schema(
        [
            pa.field("model_id", pa.string()),
            pa.field("base_model", pa.string()),
            pa.field("adapter_uri", pa.string()),
            pa.field("method", pa.string()),
            pa.field("hyperparameters", pa.string()),  # JSON
            pa.field("snapshot_id", pa.string()),
            pa.field("dataset_versions", pa.string()),  # JSON: {"sft_set": 4, ...}
            pa.field("metrics", pa.string()),  # JSON: pass rates before and after, losses
            pa.field("status", pa.string()),
            pa.field("status_reason", pa.string()),
            pa.field("trigger", pa.string()),
            pa.field("run_key", pa.string()),
            pa.field("run_id", pa.string()),
            pa.field("created_at", TIMESTAMP),
            pa.field("updated_at", TIMESTAMP),
        ]
    ),
)
REGISTRY_AUDIT = TableSpec(
    "model_registry_audit",
    pa.schema(
        [
            pa.field("at", TIMESTAMP),
            pa.field("model_id", pa.string()),
            pa.field("from_status", pa.string()),
            pa.field("to_status", pa.string()),
            pa.field("reason", pa.string()),
            pa.field("action", pa.string()),  # register | promote | rollback
            pa.field("actor", pa.string()),  # a Dagster run id, or "cli"
        ]
    ),
)
DRIFT_MONITOR = TableSpec(
    "drift_monitor",
    pa.schema(
        [
            pa.field("window_end", pa.date32()),
            pa.field("model_version", pa.string()),
            pa.field("window_days", pa.int32()),
            pa.field("with_feedback", pa.int64()),
            pa.field("negative", pa.int64()),
            pa.field("negative_rate", pa.float64()),
            pa.field("threshold", pa.float64()),
            pa.field("breached", pa.bool_()),
            pa.field("event_id", pa.string()),  # the drift event written, when breached
            pa.field("evaluated_at", TIMESTAMP),
        ]
    ),
)
MODEL_IMPROVEMENT = TableSpec(
    "model_improvement",
    pa.schema(
        [
            pa.field("model_id", pa.string()),
            pa.field("replaced_model_id", pa.string()),  # the production model replaced, or "base"
            pa.field("promoted_at", TIMESTAMP),
            pa.field("holdout_pass_rate_before", pa.float64()),
            pa.field("holdout_pass_rate_after", pa.float64()),
            pa.field("pass_rate_gain", pa.float64()),  # after - before (0.03 = 3 points)
            pa.field("relative_gain", pa.float64()),  # (after - before) / before; null at before 0
            pa.field("mean_gain", pa.float64()),  # the gate's mean held-out gain on `metric`
            pa.field("gain_low", pa.float64()),  # and its bootstrap interval
            pa.field("gain_high", pa.float64()),
            pa.field("metric", pa.string()),  # margin | loglik; null when the gate recorded none
            pa.field("holdout_cases", pa.int64()),  # the scorable held-out cases of the interval
            # exp(mean_gain) - 1 when the gate compared log-likelihoods: how much likelier, per
            # token, the promoted model finds the held-out answers than the model it replaced.
            pa.field("likelihood_gain", pa.float64()),
        ]
    ),
)
