"""Bronze assets: the landing zone ingested exactly once into versioned Delta tables."""

import dagster as dg
from pydantic import Field

from ..metadata import column_schema, rows_now, table_metadata
from ..privacy.erasure import Tombstones
from ..resources import LakeResource, LandingResource, PrivacyResource
from .contract import (
    ANNOTATIONS,
    DRIFT_EVENTS,
    FEEDBACK,
    INTERACTIONS,
    QUARANTINE,
    QUARANTINE_SCHEMA,
    QUARANTINE_TABLE,
    STREAMS,
)
from .pipeline import LEDGER, LEDGER_SCHEMA, LEDGER_TABLE, IngestSettings, ingest_landing

GROUP = "ingest"

DESCRIPTIONS = {
    INTERACTIONS.table: "One row per logged interaction (request_id), as the app sent it: prompt "
    "or chat messages, response, model version, raw user id. Unredacted.",
    FEEDBACK.table: "One row per feedback event (feedback_id): thumbs, rating, edit, regenerate, "
    "copy, accept, report or comparison on one request, with any correction or comment.",
    ANNOTATIONS.table: "One row per operator annotation (annotation_id) on one request: tags, "
    "optional correction and verdict.",
    DRIFT_EVENTS.table: "One row per drift event (event_id) from a drift detector: metric, value, "
    "threshold and the window it covers.",
    QUARANTINE_TABLE: "One row per rejected landing line: stream, source file, line number, reason "
    "code and reason, and the raw line exactly as it arrived.",
    LEDGER_TABLE: "One row per landing file and ingest batch step: 'planned' when a batch is "
    "planned, 'done' with lines read, valid, quarantined and duplicate counts once ingested.",
}
SCHEMAS = {s.table: s.schema for s in STREAMS} | {
    QUARANTINE_TABLE: QUARANTINE_SCHEMA,
    LEDGER_TABLE: LEDGER_SCHEMA,
}
BRONZE_TABLES = list(SCHEMAS)


class IngestConfig(dg.Config):
    chunk_lines: int = Field(
        default=50_000,
        description="Landing lines parsed and held in memory at once; bounds memory per stream.",
    )
    max_batch_bytes: int = Field(
        default=1 << 30,
        description="Landing bytes per ingest batch; each batch is one atomic commit per table.",
    )


@dg.multi_asset(
    name="ingest_landing",
    description="Reads every landing file not yet ingested, validates each line against the "
    "landing contract, stores each record once, and quarantines bad lines with their reason.",
    specs=[
        dg.AssetSpec(
            table,
            description=DESCRIPTIONS[table],
            group_name=GROUP,
            kinds={"delta"},
            metadata={"dagster/column_schema": column_schema(SCHEMAS[table])},
        )
        for table in BRONZE_TABLES
    ],
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
        settings=IngestSettings(config.chunk_lines, config.max_batch_bytes),
        run_id=context.run.run_id,
        # Erased users stay erased when old landing files are read again.
        erased=None if tombstones.empty else tombstones.matcher(privacy.key()),
    )
    for stream in STREAMS:  # tables exist even before their first line arrives
        the_lake.ensure(stream.spec)
    the_lake.ensure(QUARANTINE)
    the_lake.ensure(LEDGER)

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
        totals = report.totals(stream.name)
        yield dg.MaterializeResult(
            asset_key=stream.table,
            metadata=table_metadata(
                the_lake,
                stream.table,
                before[stream.table],
                files_ingested=totals["files"],
                lines_read=totals["lines_read"],
                valid=totals["valid"],
                quarantined=totals["quarantined"],
                duplicates=totals["duplicates"],
                erased=totals["erased"],
            ),
        )
    yield dg.MaterializeResult(
        asset_key=QUARANTINE_TABLE,
        metadata=table_metadata(
            the_lake,
            QUARANTINE_TABLE,
            before[QUARANTINE_TABLE],
            reasons=dg.MetadataValue.json(report.reasons()),
        ),
    )
    totals = report.totals()
    yield dg.MaterializeResult(
        asset_key=LEDGER_TABLE,
        metadata=table_metadata(
            the_lake,
            LEDGER_TABLE,
            before[LEDGER_TABLE],
            batches=dg.MetadataValue.json(report.batches),
            resumed_batches=dg.MetadataValue.json(report.resumed),
            changed_files=dg.MetadataValue.json([c.path for c in report.changed]),
            **totals,
        ),
    )
