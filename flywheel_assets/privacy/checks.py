"""Blocking checks on the redacted tables: no detector fires on any text column.

A check whose table did not change since it passed, with the same detector (code, configured
patterns and patterns file), reports that pass again without reading the table.
"""

import os
from pathlib import Path

import dagster as dg

from ..catalog.redacted import REDACTED_ANNOTATIONS, REDACTED_FEEDBACK, REDACTED_LOGS
from ..lake.verifications import Check, fingerprint, verify
from ..metadata import check_result
from ..resources import LakeResource
from . import pii, redact
from . import resources as privacy_resources
from .pipeline import TEXT_COLUMNS
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


def no_residual_pii(text: list[str], messages: list[str], privacy: PrivacyResource) -> Check:
    def rule(rows):
        residual = redact.residual_pii(rows, privacy.detector(), text, messages)
        return not residual, {"rows_with_pii": residual}

    columns = text + messages
    return Check("no_residual_pii", columns, rule, fingerprint(detector_rules(privacy), *columns))


def no_residual_pii_check(
    table: str, text: list[str], messages: list[str]
) -> dg.AssetChecksDefinition:
    """A blocking check that no PII detector fires on the given text columns of `table`."""

    @dg.asset_check(
        asset=table,
        name="no_residual_pii",
        blocking=True,
        description=f"No PII detector fires on {', '.join(text + messages)} of {table}.",
    )
    def check(
        context: dg.AssetCheckExecutionContext, lake: LakeResource, privacy: PrivacyResource
    ) -> dg.AssetCheckResult:
        checks = [no_residual_pii(text, messages, privacy)]
        (outcome,) = verify(lake.lake(), table, checks, run_id=context.run.run_id)
        return check_result(table, outcome)

    return check


CHECKS = [
    no_residual_pii_check(spec.name, *TEXT_COLUMNS[spec.name])
    for spec in (REDACTED_LOGS, REDACTED_FEEDBACK, REDACTED_ANNOTATIONS)
]
