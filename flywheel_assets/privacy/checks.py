"""Blocking checks on the redacted tables: no detector fires on any text column."""

import dagster as dg

from ..catalog.redacted import REDACTED_ANNOTATIONS, REDACTED_FEEDBACK, REDACTED_LOGS
from ..resources import LakeResource
from .pipeline import TEXT_COLUMNS
from .redact import residual_pii
from .resources import PrivacyResource


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
    def check(lake: LakeResource, privacy: PrivacyResource) -> dg.AssetCheckResult:
        data = lake.lake().read(table, columns=text + messages)
        residual = residual_pii(data, privacy.detector(), text, messages)
        return dg.AssetCheckResult(
            passed=not residual,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows_with_pii": dg.MetadataValue.json(residual)},
        )

    return check


CHECKS = [
    no_residual_pii_check(spec.name, *TEXT_COLUMNS[spec.name])
    for spec in (REDACTED_LOGS, REDACTED_FEEDBACK, REDACTED_ANNOTATIONS)
]
