"""Bronze assets: the landing zone ingested exactly once into versioned Delta tables."""

import dagster as dg
from pydantic import Field

from .. import catalog
from ..catalog.raw import INGEST_IDS, LEDGER, QUARANTINE, STREAM_TABLES
from ..contract.landing import DEFAULT_MAX_LINE_BYTES
from ..contract.records import STREAMS
from ..governance.tombstones import Tombstones
from ..metadata import asset_args, rows_now, table_metadata
from ..privacy.resources import PrivacyResource
from ..reports import LandingTotals, LedgerReport
from ..resources import LakeResource, LandingResource
from .pipeline import IngestSettings, ingest_landing

BRONZE_TABLES = [t.name for t in catalog.tables_of("ingest")]


class IngestConfig(dg.Config):
    chunk_lines: int = Field(
        default=50_000,
        description="Landing lines parsed and held in memory at once; bounds memory per stream.",
    )
    max_batch_bytes: int = Field(
        default=1 << 30,
        description="Landing bytes per ingest batch; each batch is one atomic commit per table.",
    )
    max_line_bytes: int = Field(
        default=DEFAULT_MAX_LINE_BYTES,
        description="Longest landing line read, in bytes; a longer one is quarantined as "
        "line_too_long (its first 4 KiB kept) and never held whole in memory.",
    )


@dg.multi_asset(
    name="ingest_landing",
    description="Reads every landing file not yet ingested, validates each line against the "
    "landing contract, stores each record once, and quarantines bad lines with their reason.",
    specs=[dg.AssetSpec(table, **asset_args(table)) for table in BRONZE_TABLES],
)
def ingest_landing_asset(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    landing: LandingResource,
    lake: LakeResource,
    privacy: PrivacyResource,
):
    the_lake, zone = lake.lake(), landing.zone()
    before = {t: rows_now(the_lake, t) for t in BRONZE_TABLES}
    tombstones = Tombstones.load(the_lake)
    report = ingest_landing(
        zone,
        the_lake,
        settings=IngestSettings(config.chunk_lines, config.max_batch_bytes, config.max_line_bytes),
        run_id=context.run.run_id,
        # Erased users stay erased when old landing files are read again.
        erased=None if tombstones.empty else tombstones.matcher(privacy.key()),
    )
    for stream in STREAMS:  # tables exist even before their first line arrives
        the_lake.ensure(STREAM_TABLES[stream.name])
    the_lake.ensure(QUARANTINE)
    the_lake.ensure(LEDGER)
    the_lake.ensure(INGEST_IDS)

    for refused in report.refused:
        context.log.warning(f"Landing entry {refused.path} refused, never read: {refused.reason}")
    if report.changed:
        context.log.warning(
            "Landing files changed after they were ingested (not re-read): "
            + ", ".join(c.path for c in report.changed)
        )
    if not report.committed:
        context.log.info("No new landing files: nothing committed.")
    unbalanced = [f.path for f in report.files if not f.balanced]
    if unbalanced:  # would mean a line was lost or counted twice; never publish quietly
        raise dg.Failure(f"line accounting does not balance for: {', '.join(unbalanced)}")

    for stream in STREAMS:
        totals = _landing_totals(report.totals(stream.name))
        yield dg.MaterializeResult(
            asset_key=stream.table,
            metadata=table_metadata(
                the_lake, stream.table, before[stream.table], **totals.metadata()
            ),
        )
    yield dg.MaterializeResult(
        asset_key=QUARANTINE.name,
        metadata=table_metadata(
            the_lake,
            QUARANTINE.name,
            before[QUARANTINE.name],
            reasons=dg.MetadataValue.json(report.reasons()),
        ),
    )
    totals = report.totals()
    yield dg.MaterializeResult(
        asset_key=LEDGER.name,
        metadata=table_metadata(
            the_lake,
            LEDGER.name,
            before[LEDGER.name],
            **LedgerReport(
                batches=report.batches,
                resumed_batches=report.resumed,
                changed_files=[c.path for c in report.changed],
            ).metadata(),
            **totals,
        ),
    )
    yield dg.MaterializeResult(
        asset_key=INGEST_IDS.name,
        metadata=table_metadata(the_lake, INGEST_IDS.name, before[INGEST_IDS.name]),
    )


def _landing_totals(totals: dict[str, int]) -> LandingTotals:
    return LandingTotals(**{"files_ingested": totals.pop("files"), **totals})
