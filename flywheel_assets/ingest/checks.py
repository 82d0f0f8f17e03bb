"""Asset checks on the bronze tables: unique ids, required fields, every line accounted for; and
that each record is stored once downstream too (a record sent again after retention removed its
raw copy must not come back as a second row).

Each table's checks run in one step that reads the table once. A check whose table did not change
since it passed (same Delta version, same rules) reports that pass again without reading it.
"""

from pathlib import Path

import dagster as dg

from ..catalog.raw import LEDGER
from ..contract.records import STREAMS, Stream
from ..lake.verifications import Check, fingerprint, verify
from ..metadata import check_result
from ..resources import LakeResource
from . import quality

# The rules' own code is part of what a pass verified: after an edit every check runs again once.
_CODE = fingerprint(Path(__file__).read_bytes(), Path(quality.__file__).read_bytes())


# Tables downstream of ingestion that hold each record at most once, and the id that says so.
DOWNSTREAM_IDS = {
    "redacted_logs": "request_id",
    "redacted_feedback": "feedback_id",
    "tagged_rows": "request_id",
    "review_queue": "request_id",
}


def ids_are_unique(stream: Stream) -> Check:
    return unique_ids(stream.id_field)


def unique_ids(column: str) -> Check:
    def rule(rows):
        repeated, sample = quality.duplicate_ids(rows[column])
        return repeated == 0, {"duplicated_ids": repeated, "sample": sample}

    return Check("ids_are_unique", [column], rule, fingerprint(_CODE, column))


def required_fields_present(stream: Stream) -> Check:
    def rule(rows):
        missing = quality.null_counts(rows, stream.required)
        return not missing, {"missing": missing}

    return Check(
        "required_fields_present", stream.required, rule, fingerprint(_CODE, *stream.required)
    )


def every_line_accounted_for() -> Check:
    def rule(rows):
        bad = quality.unbalanced_files(rows)
        return not bad, {"unbalanced_files": bad}

    # Every column: ledgers written before erasure existed have no `erased` column.
    return Check("every_line_accounted_for", None, rule, _CODE)


def table_checks(table: str, checks: list[tuple[Check, str]]) -> dg.AssetChecksDefinition:
    """One step running the blocking `checks` (each with its description) on `table`."""

    @dg.multi_asset_check(
        name=f"{table}_checks",
        description=f"The blocking checks on {table}, reading it once.",
        specs=[
            dg.AssetCheckSpec(check.name, asset=table, blocking=True, description=description)
            for check, description in checks
        ],
        can_subset=True,
    )
    def run_checks(context: dg.AssetCheckExecutionContext, lake: LakeResource):
        selected = {key.name for key in context.selected_asset_check_keys}
        chosen = [check for check, _ in checks if check.name in selected]
        for outcome in verify(lake.lake(), table, chosen, run_id=context.run.run_id):
            yield check_result(table, outcome)

    return run_checks


def _stream_checks(stream: Stream) -> dg.AssetChecksDefinition:
    return table_checks(
        stream.table,
        [
            (
                ids_are_unique(stream),
                f"Each {stream.id_field} appears once: client retries were stored once.",
            ),
            (
                required_fields_present(stream),
                f"No null or blank value in the contract's required fields: {stream.required}.",
            ),
        ],
    )


CHECKS = [
    *(_stream_checks(s) for s in STREAMS),
    table_checks(
        LEDGER.name,
        [
            (
                every_line_accounted_for(),
                "For every ingested file: valid + quarantined + duplicates = lines read.",
            )
        ],
    ),
    *(
        table_checks(
            table,
            [
                (
                    unique_ids(column),
                    f"Each {column} appears once: a record is stored once downstream, also when "
                    "it was sent again after its raw copy expired.",
                )
            ],
        )
        for table, column in DOWNSTREAM_IDS.items()
    ),
]
