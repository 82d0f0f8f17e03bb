"""The versioning stage's tables, written by rollback_table_job and readmit_rollback_job."""

import dagster as dg

from ..catalog.governance import ROLLBACK_AUDIT, ROLLBACK_EXCLUSIONS
from ..metadata import asset_args

rollback_audit = dg.AssetSpec(ROLLBACK_AUDIT.name, **asset_args(ROLLBACK_AUDIT.name))
rollback_exclusions = dg.AssetSpec(ROLLBACK_EXCLUSIONS.name, **asset_args(ROLLBACK_EXCLUSIONS.name))

ASSETS = [rollback_audit, rollback_exclusions]
