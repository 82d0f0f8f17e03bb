"""Blocking checks on the redacted tables: no detector fires on any text column."""

import dagster as dg

from ..lake.tables import TableSpec
from ..resources import LakeResource, PrivacyResource
from .pipeline import REDACTED_ANNOTATIONS, REDACTED_FEEDBACK, REDACTED_LOGS, TEXT_COLUMNS
from .redact import residual_pii


def _no_residual_pii(spec: TableSpec) -> dg.AssetChecksDefinition:
    text, messages = TEXT_COLUMNS[spec.name]

    @dg.asset_check(
        asset=spec.name,
        name="no_residual_pii",
        blocking=True,
        description=f"No PII detector fires on {', '.join(text + messages)} of {spec.name}.",
    )
    def check(lake: LakeResource, privacy: PrivacyResource) -> dg.AssetCheckResult:
        table = lake.lake().read(spec.name, columns=text + messages)
        residual = residual_pii(table, privacy.detector(), text, messages)
        return dg.AssetCheckResult(
            passed=not residual,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows_with_pii": dg.MetadataValue.json(residual)},
        )

    return check


CHECKS = [_no_residual_pii(s) for s in (REDACTED_LOGS, REDACTED_FEEDBACK, REDACTED_ANNOTATIONS)]
