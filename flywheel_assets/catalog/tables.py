"""Every Delta table of the project, once, in pipeline order (upstream first).

Assets take their description and schema from here; the CLI lists these tables, maintenance
compacts and vacuums every one of them, erasure searches them in this order, and a rollback
follows each table's rule.
"""

from __future__ import annotations

from .curated import (
    CURATION_STATE,
    CURATION_STATE_KEY,
    DPO_SET,
    EVAL_CASES,
    FAILURE_CLUSTERS,
    FEEDBACK_METRICS,
    KTO_SET,
    REVIEW_QUEUE,
    SFT_SET,
    TAGGED_ROWS,
)
from .entry import CatalogTable, Refuse, Restore
from .governance import ROLLBACK_AUDIT, ROLLBACK_EXCLUSIONS, TOMBSTONES
from .models import (
    CANDIDATE_EVALS,
    DRIFT_MONITOR,
    MODEL_IMPROVEMENT,
    MODEL_REGISTRY,
    REGISTRY_AUDIT,
    TRAINING_SNAPSHOTS,
)
from .raw import (
    INGEST_IDS,
    LEDGER,
    QUARANTINE,
    RAW_ANNOTATIONS,
    RAW_DRIFT_EVENTS,
    RAW_FEEDBACK,
    RAW_LOGS,
)
from .redacted import REDACTED_ANNOTATIONS, REDACTED_FEEDBACK, REDACTED_LOGS

TABLES: tuple[CatalogTable, ...] = (
    # ingest
    CatalogTable(
        RAW_LOGS,
        "ingest",
        "One row per logged interaction (request_id), as the app sent it: prompt or chat messages, "
        "response, model version, raw user id. Unredacted.",
        ("request_id",),
        Restore("request_id"),
    ),
    CatalogTable(
        RAW_FEEDBACK,
        "ingest",
        "One row per feedback event (feedback_id): thumbs, rating, edit, regenerate, copy, accept, "
        "report or comparison on one request, with any correction or comment.",
        ("feedback_id",),
        Restore("feedback_id"),
    ),
    CatalogTable(
        RAW_ANNOTATIONS,
        "ingest",
        "One row per operator annotation (annotation_id) on one request: tags, optional "
        "correction and verdict.",
        ("annotation_id",),
        Restore("annotation_id"),
    ),
    CatalogTable(
        RAW_DRIFT_EVENTS,
        "ingest",
        "One row per drift event (event_id), from a drift detector's landing files or from the "
        "drift monitor: metric, value, threshold and the window it covers.",
        ("event_id",),
        Restore("event_id"),
    ),
    CatalogTable(
        QUARANTINE,
        "ingest",
        "One row per rejected landing line: stream, source file, line number, reason code and "
        "reason, and the raw line exactly as it arrived.",
        ("source_file", "line_number"),
        Refuse(
            "the quarantine is the record of rejected lines; land corrected lines again instead"
        ),
    ),
    CatalogTable(
        LEDGER,
        "ingest",
        "One row per landing file and ingest batch step: 'planned' when a batch is planned, "
        "'done' with lines read, valid, quarantined and duplicate counts once ingested.",
        ("batch", "path", "status"),
        Refuse(
            "rolling back the ledger would re-ingest landing files; roll back the tables they "
            "fed instead"
        ),
    ),
    CatalogTable(
        INGEST_IDS,
        "ingest",
        "One row per record id ever ingested (stream, id, batch): ids only, kept after retention "
        "or erasure removed the record, so a record sent again is never stored twice.",
        ("stream", "id"),
        Refuse("rolling back the ids would let records sent again be stored twice"),
    ),
    # privacy
    CatalogTable(
        REDACTED_LOGS,
        "privacy",
        "One row per kept interaction (request_id): prompt, chat messages and response with PII "
        "replaced by typed placeholders, user and session as keyed hashes, why it was kept "
        "(feedback, annotation, low_confidence, drift_window or sampled) and PII counts by kind.",
        ("request_id",),
        Restore("request_id"),
        preview=("request_id", "keep_reason", "prompt", "response"),
    ),
    CatalogTable(
        REDACTED_FEEDBACK,
        "privacy",
        "One row per feedback event (feedback_id) with correction and comment redacted and the "
        "user as a keyed hash.",
        ("feedback_id",),
        Restore("feedback_id"),
        preview=("feedback_id", "request_id", "kind", "correction"),
    ),
    CatalogTable(
        REDACTED_ANNOTATIONS,
        "privacy",
        "One row per operator annotation (annotation_id) with its correction redacted.",
        ("annotation_id",),
        Restore("annotation_id"),
        preview=("annotation_id", "request_id", "verdict", "correction"),
    ),
    CatalogTable(
        TOMBSTONES,
        "privacy",
        "One row per erasure request: the user's keyed hash (never the raw id), their request "
        "ids, when, why, and the tables touched. Written by erase_user_job.",
        ("user_hash", "erased_at"),
        Refuse("erasures cannot be undone"),
    ),
    # curation
    CatalogTable(
        TAGGED_ROWS,
        "curation",
        "One row per kept interaction (request_id) with its feedback and annotations folded in: "
        "tags (user_positive, user_negative, corrected, edited, compared, low_confidence, "
        "drift_window, conflict, safety_flag, over_cap and operator tags), a label (positive / "
        "negative / unknown) with a confidence, and the best correction.",
        ("request_id",),
        Restore("request_id", rebuilt=True),
        preview=("request_id", "label", "confidence", "tags", "prompt"),
    ),
    CatalogTable(
        EVAL_CASES,
        "curation",
        "One row per eval case (case_id): golden cases (positive, uncorrected answers that must "
        "keep working) and regression cases (negative answers with a correction: expected = the "
        "corrected text), with a deterministic holdout flag.",
        ("case_id",),
        Restore("source_request_ids", everywhere=False, rebuilt=True),
        preview=("case_id", "kind", "holdout", "input", "expected"),
    ),
    CatalogTable(
        REVIEW_QUEUE,
        "curation",
        "One row per interaction waiting for a human (request_id), with the reason: negative "
        "without correction, conflict, unsafe training target, or over-cap feedback. It leaves "
        "the queue when an operator annotates it with a correction or a verdict.",
        ("request_id",),
        Restore("source_request_ids", everywhere=False, rebuilt=True),
        preview=("request_id", "reason", "prompt", "response"),
    ),
    CatalogTable(
        SFT_SET,
        "curation",
        "One row per SFT example (example_id): chat messages whose last turn is the assistant's "
        "good or corrected answer; one per near-duplicate prompt, a correction winning.",
        ("example_id",),
        Restore("source_request_ids", everywhere=False, rebuilt=True),
        preview=("example_id", "target_source", "prompt", "completion"),
    ),
    CatalogTable(
        DPO_SET,
        "curation",
        "One row per preference pair (pair_id): prompt, chosen, rejected and their similarity, "
        "from corrections, edits and side-by-side comparisons.",
        ("pair_id",),
        Restore("source_request_ids", everywhere=False, rebuilt=True),
        preview=("pair_id", "similarity", "prompt", "chosen", "rejected"),
    ),
    CatalogTable(
        KTO_SET,
        "curation",
        "One row per unpaired example (example_id): prompt, completion and whether it is "
        "desirable (TRL's KTO format).",
        ("example_id",),
        Restore("source_request_ids", everywhere=False, rebuilt=True),
        preview=("example_id", "label", "prompt", "completion"),
    ),
    CatalogTable(
        CURATION_STATE,
        "curation",
        "One row per local row of a curated set (set, row_id, request_id): what the global steps "
        "(best answer per prompt, holdout, near-duplicates, caps) read, without the text, so a "
        "build after new tagged rows derives only the request ids that changed.",
        CURATION_STATE_KEY,
        Refuse(
            "it is the curated sets' build state, derived from tagged_rows: roll back tagged_rows "
            "or a curated set instead, and the next build rebuilds it whole"
        ),
    ),
    CatalogTable(
        FEEDBACK_METRICS,
        "curation",
        "One row per day and model_version: interactions logged, feedback collection rate, "
        "positive, negative and correction rates, and the safety flag rate.",
        ("day", "model_version"),
        Restore(None, rebuilt=True),
    ),
    CatalogTable(
        FAILURE_CLUSTERS,
        "curation",
        "One row per failure cluster (cluster_id): near-duplicate prompts (normalized, digits "
        "masked) with negative or corrected answers, with the failing rows' count, the negative "
        "rate over all the cluster's rows, corrections, up to three redacted example prompts, "
        "first and last seen, and the curated sets its rows feed.",
        ("cluster_id",),
        Refuse(
            "it is derived from tagged_rows and the curated sets and rebuilt whole on each run: "
            "roll back tagged_rows or a curated set instead"
        ),
        preview=("cluster_id", "size", "rows", "negative_rate", "representative"),
    ),
    # monitoring
    CatalogTable(
        DRIFT_MONITOR,
        "monitoring",
        "One row per model_version and evaluation: the negative-feedback rate over the rolling "
        "window and whether it breaches the threshold. A breach writes a drift event into "
        "drift_events, validated like a landing record, so the loop works without an external "
        "detector.",
        ("window_end", "model_version", "evaluated_at"),
        Refuse("the monitor's evaluations are a log; roll back drift_events to withdraw an event"),
    ),
    # training
    CatalogTable(
        TRAINING_SNAPSHOTS,
        "training",
        "One row per retrain run: the exact Delta versions of sft_set, dpo_set, kto_set and "
        "eval_cases it trains and evaluates on, with row counts and what was new since the "
        "previous snapshot.",
        ("snapshot_id",),
        Refuse(
            "a snapshot records what a registered model trained on; roll back the curated sets "
            "instead"
        ),
    ),
    CatalogTable(
        CANDIDATE_EVALS,
        "training",
        "One row per eval case, model and role (production or candidate) of a retrain run: the "
        "generated answer, its score and whether it passed. The run's gate compares the two "
        "roles.",
        ("candidate_id", "role", "case_id"),
        Refuse("evaluation answers are the evidence behind the registry's decisions"),
    ),
    CatalogTable(
        MODEL_REGISTRY,
        "training",
        "One row per trained model (model_id): base model, adapter URI, method, hyperparameters, "
        "the pinned dataset versions, metrics, status (candidate, promoted, rejected, retired), "
        "trigger and run key.",
        ("model_id",),
        Refuse("use 'flywheel rollback-model' to change the promoted model"),
    ),
    CatalogTable(
        REGISTRY_AUDIT,
        "training",
        "One row per status change of a registered model: when, the model, the status before and "
        "after, the action (register, promote, rollback), the reason and who made it.",
        ("model_id", "at"),
        Refuse("the registry audit is append-only"),
    ),
    # monitoring, over the registry
    CatalogTable(
        MODEL_IMPROVEMENT,
        "monitoring",
        "One row per promoted model (model_id): the production model it replaced (or base), when "
        "it was first promoted, the held-out pass rate before and after with the gain in points "
        "and relative to before, and the gate's mean held-out gain with its bootstrap interval. "
        "Rebuilt whole from the registry.",
        ("model_id",),
        Restore(None, rebuilt=True),
    ),
    # versioning
    CatalogTable(
        ROLLBACK_AUDIT,
        "versioning",
        "One row per rollback or re-admission (rollback_id, action): the table, the versions "
        "from and to, rows before and after, ids excluded or re-admitted, erased rows removed "
        "again, the models that trained on the rolled-back versions, reason, actor, run.",
        ("rollback_id", "action"),
        Refuse("the rollback audit is append-only"),
    ),
    CatalogTable(
        ROLLBACK_EXCLUSIONS,
        "versioning",
        "One row per id a rollback took away (rollback_id, id): the table, the id column, and the "
        "scope ('all': no stage may carry it; a curated table: only that table's rebuild leaves "
        "it out). Active until the rollback is re-admitted.",
        ("rollback_id", "id"),
        Refuse("use 'flywheel readmit ROLLBACK_ID' to lift a rollback's exclusions"),
    ),
)

BY_NAME: dict[str, CatalogTable] = {t.name: t for t in TABLES}


class UnknownTable(KeyError):
    """A table name the catalog does not hold; the message lists the ones it does."""

    def __str__(self) -> str:
        return self.args[0]


def table(name: str) -> CatalogTable:
    """The catalog entry of `name`."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownTable(
            f"unknown table {name!r}; the lake's tables are: {', '.join(BY_NAME)}"
        ) from None


def tables_of(stage: str) -> tuple[CatalogTable, ...]:
    return tuple(t for t in TABLES if t.stage == stage)
