"""`flywheel forget`, `expire` and `redact`: erasure on request, retention on schedule, and
re-redaction when the detector improves."""

from __future__ import annotations

import argparse
import sys

from .options import add_locations
from .output import CliError, format_table
from .runner import run_job_for_cli


def add_commands(sub) -> None:
    forget = sub.add_parser(
        "forget",
        help="erase one user from every table and every readable version (right to erasure)",
        description="Record a tombstone (the keyed hash only) so no writer stores USER_ID's rows "
        "again, then delete every row of USER_ID from every table, raw to curated (found by "
        "keyed hash and through the user's request ids), and vacuum so no earlier version can "
        "still load them. Runs erase_user_job with the keyed hash: the raw id never reaches "
        "Dagster's run storage. Names the registered models trained on the erased rows.",
    )
    forget.add_argument(
        "user_id", metavar="USER_ID", help="the user id exactly as the app logged it"
    )
    forget.add_argument("--reason", default="", help="why, for the audit trail (e.g. a ticket id)")
    add_locations(forget)
    forget.set_defaults(handler=_forget)

    expire = sub.add_parser(
        "expire",
        help="delete raw data older than the retention window (what retention_schedule runs)",
        description="Delete rows of the raw tables older than --days by event time, vacuum them "
        "away, and delete (or archive) landing files ingested before then. Runs retention_job.",
    )
    expire.add_argument("--days", type=int, default=30, help="retention window in days (30)")
    expire.add_argument(
        "--landing-files",
        choices=["keep", "archive", "delete"],
        default="delete",
        help="what to do with expired landing files (default delete)",
    )
    add_locations(expire)
    expire.set_defaults(handler=_expire)

    redact = sub.add_parser(
        "redact",
        help="redact again, with the current detector, rows an older detector redacted",
        description="Run redact_again_job: find the rows of the redacted tables an older "
        "detector version wrote (each redaction commit records its detector version and ingest "
        "batches), redact them again from their raw rows (or from the stored text where "
        "retention expired the raw rows), rewrite the rows that change in one commit per table, "
        "rebuild the curated sets from them and vacuum, so no version still holding the old "
        "text can be loaded or rolled back to. Prints the versions that became unrestorable.",
    )
    which = redact.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--all",
        action="store_true",
        help="every row a detector version other than the current one wrote",
    )
    which.add_argument(
        "--since-version",
        metavar="V",
        help="only rows detector version V, and any version after it, wrote",
    )
    add_locations(redact)
    redact.set_defaults(handler=_redact)


def _forget(args: argparse.Namespace) -> int:
    if not args.user_id.strip():
        raise CliError("USER_ID must not be blank")
    from ..governance.hashing import keyed_hash
    from .runner import load_definitions

    key = load_definitions().resources["privacy"].key()
    config = {"user_hash": keyed_hash(args.user_id, key, "user"), "reason": args.reason}
    report = run_job_for_cli(args, "erase_user_job", "erase_user_rows", config).output_for_node(
        "erase_user_rows"
    )
    rows = [
        [table, info["rows_deleted"], info["version_before"], info["version_after"]]
        for table, info in sorted(report.tables.items())
    ]
    if not rows:
        print(
            f"warning: no rows of {args.user_id} were found in any table; tombstone recorded "
            f"anyway (erasure {report.erasure_id}), so rows that arrive later are dropped. "
            "Check the id is exactly as the app logged it.",
            file=sys.stderr,
        )
    else:
        print(
            f"erased: {report.rows_deleted} rows in {len(rows)} tables; tombstone recorded "
            f"(erasure {report.erasure_id})"
        )
        print(format_table(["table", "rows deleted", "version before", "version after"], rows))
    if report.models:
        print(
            "models trained on the erased rows (their weights may still hold what they learned; "
            f"retrain without them, and `flywheel rollback-model` a promoted one): "
            f"{', '.join(report.models)}"
        )
    return 0


def _expire(args: argparse.Namespace) -> int:
    if args.days < 1:
        raise CliError("--days must be at least 1")
    # Dagster names enum config values by member name.
    config = {"raw_days": args.days, "landing_files": args.landing_files.upper()}
    result = run_job_for_cli(args, "retention_job", "expire_raw_data", config)
    deleted = result.output_for_node("expire_raw_data").rows_deleted
    rows = [[t, n] for t, n in sorted(deleted.items()) if n]
    print(f"expired raw data older than {args.days} days")
    print(format_table(["table", "rows deleted"], rows) if rows else "no raw rows were old enough")
    return 0


def _redact(args: argparse.Namespace) -> int:
    since = (args.since_version or "").strip()
    if args.since_version is not None and not since:
        raise CliError("--since-version needs a detector version (e.g. 2.c8cc907cd386)")
    config = {"since_version": since}
    report = run_job_for_cli(args, "redact_again_job", "redact_rows_again", config).output_for_node(
        "redact_rows_again"
    )
    redacted = {n: t for n, t in report.tables.items() if t.rows_checked or t.stale_batches}
    if not redacted:
        print(
            f"nothing to redact again: every redacted row was written by detector "
            f"{report.detector_version}" + (f" or before {since}" if since else "")
        )
        return 0
    print(f"redacted again with detector {report.detector_version}")
    rows = [
        [n, t.rows_checked, t.rows_from_raw, t.rows_from_stored, t.rows_rewritten,
         " ".join(t.detectors_replaced) or "-"]
        for n, t in sorted(redacted.items())
    ]  # fmt: skip
    headers = ["table", "rows checked", "from raw", "from stored text", "rewritten", "replaced"]
    print(format_table(headers, rows))
    gone = [[n, " ".join(map(str, t.unrestorable_versions))]
            for n, t in sorted(report.tables.items()) if t.unrestorable_versions]  # fmt: skip
    print()
    if gone:
        print("versions no longer restorable (they held text the older detector missed):")
        print(format_table(["table", "versions"], gone))
    else:
        print("no row changed: no version became unrestorable")
    return 0
