"""Blocking checks that no detector fires on any string column of a redacted or curated table.

The columns come from each table's schema, so a column added later is checked too. Curated tables
built write-audit-publish are checked by curation before they are published; every other redacted
and curated table is checked here after it is written.

A check whose table did not change since it passed, with the same detector (code, configured
patterns and patterns file), reports that pass again without reading the table.
"""

import os
from pathlib import Path

import dagster as dg

from .. import catalog
from ..catalog.governance import TOMBSTONES
from ..lake.verifications import Check, fingerprint, verify
from ..metadata import check_result
from ..resources import LakeResource
from . import pii, redact
from . import resources as privacy_resources
from .resources import PrivacyResource

# The detector's and the rule's code: after an edit every check runs again once.
_CODE = fingerprint(
    *(Path(m).read_bytes() for m in (__file__, pii.__file__, redact.__file__)),
    Path(privacy_resources.__file__).read_bytes(),
)


def detector_rules(privacy: PrivacyResource) -> str:
    """Everything the resource builds its detector from: its config and the patterns file."""
    path = privacy.patterns_file or os.environ.get(pii.PATTERNS_ENV)
    patterns = Path(path).read_bytes() if path and Path(path).is_file() else b""
    return fingerprint(_CODE, privacy.model_dump_json(), path or "", patterns)


def no_residual_pii(columns: list[str], privacy: PrivacyResource) -> Check:
    def rule(rows):
        residual = redact.residual_pii(rows, privacy.detector())
        return not residual, {"rows_with_pii": residual}

    return Check("no_residual_pii", columns, rule, fingerprint(detector_rules(privacy), *columns))


def no_residual_pii_check(table: str, columns: list[str]) -> dg.AssetChecksDefinition:
    """A blocking check that no PII detector fires on any of `columns` of `table`."""

    @dg.asset_check(
        asset=table,
        name="no_residual_pii",
        blocking=True,
        description=f"No PII detector fires on any string in {', '.join(columns)} of {table}.",
    )
    def check(
        context: dg.AssetCheckExecutionContext, lake: LakeResource, privacy: PrivacyResource
    ) -> dg.AssetCheckResult:
        checks = [no_residual_pii(columns, privacy)]
        (outcome,) = verify(lake.lake(), table, checks, run_id=context.run.run_id)
        return check_result(table, outcome)

    return check


# Checked by curation on the staged rows, before they are published.
CHECKED_BEFORE_PUBLISH = frozenset(
    {"tagged_rows", "eval_cases", "review_queue", "sft_set", "dpo_set", "kto_set"}
)
# Every redacted and curated table; the tombstones are governance records, not copies of rows.
CHECKED_TABLES = [
    t.spec
    for t in catalog.TABLES
    if t.stage in ("privacy", "curation") and t.spec.name != TOMBSTONES.name
]
CHECKS = [
    no_residual_pii_check(spec.name, redact.string_columns(spec.schema))
    for spec in CHECKED_TABLES
    if spec.name not in CHECKED_BEFORE_PUBLISH
]
