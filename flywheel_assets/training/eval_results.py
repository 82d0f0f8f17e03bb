"""The candidate_eval table: every generated answer a gate decision was based on."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from ..ingest.contract import TIMESTAMP
from ..lake.tables import TableSpec

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
        ]
    ),
    safe_columns=("candidate_id", "case_id", "evaluated_at"),
)


def scored_rows(candidate_id: str, parts: list[tuple[str, str, pa.Table]], run_id: str) -> pa.Table:
    """Rows for `candidate_eval` from (role, answering model, scored cases) parts."""
    now = datetime.now(UTC)
    tables = []
    for role, model_id, scored in parts:
        n = scored.num_rows
        tables.append(
            pa.table(
                {
                    "candidate_id": pa.array([candidate_id] * n, pa.string()),
                    "role": pa.array([role] * n, pa.string()),
                    "model_id": pa.array([model_id] * n, pa.string()),
                    "case_id": scored["case_id"],
                    "kind": scored["kind"],
                    "holdout": scored["holdout"],
                    "output": scored["output"],
                    "score": scored["score"],
                    "passed": scored["passed"],
                    "run_id": pa.array([run_id] * n, pa.string()),
                    "evaluated_at": pa.array([now] * n, TIMESTAMP),
                },
                schema=CANDIDATE_EVALS.schema,
            )
        )
    return pa.concat_tables(tables)
