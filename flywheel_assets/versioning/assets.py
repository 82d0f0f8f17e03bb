"""The versioning stage's tables, written by rollback_table_job and `flywheel rollback/readmit`."""

import dagster as dg

from ..lake.exclusions import ROLLBACK_AUDIT, ROLLBACK_EXCLUSIONS
from ..metadata import column_schema

GROUP = "operations"  # with the drift monitor: the loop's upkeep, not its data

rollback_audit = dg.AssetSpec(
    ROLLBACK_AUDIT.name,
    group_name=GROUP,
    kinds={"delta"},
    description="One row per rollback or re-admission (rollback_id, action): the table, the "
    "versions from and to, rows before and after, ids excluded or re-admitted, erased rows "
    "removed again, the models that trained on the rolled-back versions, reason, actor, run.",
    metadata={"dagster/column_schema": column_schema(ROLLBACK_AUDIT.schema)},
)
rollback_exclusions = dg.AssetSpec(
    ROLLBACK_EXCLUSIONS.name,
    group_name=GROUP,
    kinds={"delta"},
    description="One row per id a rollback took away (rollback_id, id): the table, the id column, "
    "and the scope ('all': no stage may carry it; a curated table: only that table's rebuild "
    "leaves it out). Active until the rollback is re-admitted.",
    metadata={"dagster/column_schema": column_schema(ROLLBACK_EXCLUSIONS.schema)},
)

ASSETS = [rollback_audit, rollback_exclusions]
