"""The candidate_eval table: every case score a gate decision was based on."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from ..catalog.models import CANDIDATE_EVALS
from ..contract.records import TIMESTAMP


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
                    "loglik": scored["loglik"],
                    "contrast_loglik": scored["contrast_loglik"],
                    "margin": scored["margin"],
                    "judge_passed": scored["judge_passed"],
                },
                schema=CANDIDATE_EVALS.schema,
            )
        )
    return pa.concat_tables(tables)
