"""Asset checks on the bronze tables: unique ids, required fields, every line accounted for."""

import dagster as dg

from ..catalog.raw import LEDGER
from ..contract.records import STREAMS, Stream
from ..resources import LakeResource
from .quality import duplicate_ids, null_counts, unbalanced_files


def _ids_are_unique(stream: Stream) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=stream.table,
        name="ids_are_unique",
        blocking=True,
        description=f"Each {stream.id_field} appears once: client retries were stored once.",
    )
    def check(lake: LakeResource) -> dg.AssetCheckResult:
        ids = lake.lake().read(stream.table, columns=[stream.id_field])
        repeated, sample = duplicate_ids(ids[stream.id_field])
        return dg.AssetCheckResult(
            passed=repeated == 0,
            metadata={"duplicated_ids": repeated, "sample": dg.MetadataValue.json(sample)},
        )

    return check


def _required_fields_present(stream: Stream) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=stream.table,
        name="required_fields_present",
        blocking=True,
        description=f"No null or blank value in the contract's required fields: {stream.required}.",
    )
    def check(lake: LakeResource) -> dg.AssetCheckResult:
        table = lake.lake().read(stream.table, columns=stream.required)
        missing = null_counts(table, stream.required)
        return dg.AssetCheckResult(
            passed=not missing, metadata={"missing": dg.MetadataValue.json(missing)}
        )

    return check


@dg.asset_check(
    asset=LEDGER.name,
    name="every_line_accounted_for",
    blocking=True,
    description="For every ingested file: valid + quarantined + duplicates = lines read.",
)
def every_line_accounted_for(lake: LakeResource) -> dg.AssetCheckResult:
    ledger = lake.lake().read(LEDGER.name)
    bad = unbalanced_files(ledger)
    return dg.AssetCheckResult(
        passed=not bad, metadata={"unbalanced_files": dg.MetadataValue.json(bad)}
    )


CHECKS = [
    *(_ids_are_unique(s) for s in STREAMS),
    *(_required_fields_present(s) for s in STREAMS),
    every_line_accounted_for,
]
