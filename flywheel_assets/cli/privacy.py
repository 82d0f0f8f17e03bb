"""`flywheel forget` and `expire`: erasure on request, retention on schedule."""

from __future__ import annotations

import argparse

from .options import add_locations
from .output import CliError, format_table
from .runner import run_job_for_cli


def add_commands(sub) -> None:
    forget = sub.add_parser(
        "forget",
        help="erase one user from every table and every readable version (right to erasure)",
        description="Delete every row of USER_ID from every table, raw to curated (found by raw "
        "id in raw tables, by keyed hash after them, and through the user's request ids), vacuum "
        "so no earlier version can still load them, and record a tombstone (the keyed hash only) "
        "so old landing files cannot bring them back. Runs erase_user_job.",
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


def _forget(args: argparse.Namespace) -> int:
    if not args.user_id.strip():
        raise CliError("USER_ID must not be blank")
    result = run_job_for_cli(
        args, "erase_user_job", "erase_user_rows", {"user_id": args.user_id, "reason": args.reason}
    )
    touched = result.output_for_node("erase_user_rows").tables
    rows = [
        [table, info["rows_deleted"], info["version_before"], info["version_after"]]
        for table, info in sorted(touched.items())
    ]
    print(f"erased: {sum(r[1] for r in rows)} rows in {len(rows)} tables; tombstone recorded")
    if rows:
        print(format_table(["table", "rows deleted", "version before", "version after"], rows))
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
