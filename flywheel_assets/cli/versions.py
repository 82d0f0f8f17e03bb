"""`flywheel history`, `rollback`, `readmit` and `maintain`: versions and undo."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from .options import add_json, add_lake, add_locations, lake_of
from .output import CliError, format_table
from .runner import run_job_for_cli


def add_commands(sub) -> None:
    history = sub.add_parser(
        "history",
        help="list a table's versions: time, operation, rows added and removed, the Dagster run",
        description="Print each version of TABLE still in its Delta log, newest first: version, "
        "commit time, operation (WRITE, MERGE, DELETE, RESTORE, OPTIMIZE...), rows after the "
        "commit, rows added and removed, and the Dagster run that wrote it. With --rollbacks, "
        "list the rollbacks and re-admissions instead.",
    )
    history.add_argument("table", nargs="?", help="table name, e.g. sft_set")
    history.add_argument("--limit", type=int, default=20, help="newest N versions (20)")
    history.add_argument("--rollbacks", action="store_true", help="list rollback_audit instead")
    add_lake(history)
    add_json(history)
    history.set_defaults(handler=_history)

    rollback = sub.add_parser(
        "rollback",
        help="restore a table to an earlier version; its rows stay out of later runs",
        description="Run rollback_table_job: restore TABLE to --to-version N (or the version "
        "current at --to-timestamp) as a new commit, record the ids of the rows taken away so no "
        "later run puts them back (until `flywheel readmit`), audit it, and list the registered "
        "models that trained on the rolled-back versions.",
    )
    rollback.add_argument("table", help="table name, e.g. sft_set or redacted_logs")
    target = rollback.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-version", type=int, metavar="N", help="version to restore")
    target.add_argument(
        "--to-timestamp",
        metavar="T",
        help="restore the version current at this ISO-8601 time (UTC if no zone is given)",
    )
    rollback.add_argument("--reason", required=True, help="why; recorded in rollback_audit")
    add_locations(rollback)
    rollback.set_defaults(handler=_rollback)

    readmit = sub.add_parser(
        "readmit",
        help="lift a rollback's exclusions so its rows may come back",
        description="Re-admit the rows ROLLBACK_ID took away: appended tables (raw, redacted) get "
        "them back from the version before the rollback; tables rebuilt whole (tagged_rows, the "
        "curated sets) get them on the next run. Erased users' rows never come back.",
    )
    readmit.add_argument("rollback_id", help="id printed by `flywheel rollback`")
    readmit.add_argument("--reason", required=True, help="why; recorded in rollback_audit")
    add_locations(readmit)
    readmit.set_defaults(handler=_readmit)

    maintain = sub.add_parser(
        "maintain",
        help="compact every table and vacuum files older than the rollback window",
        description="What table_maintenance_job does: set each table's log and file retention to "
        "the rollback window ($FLYWHEEL_ROLLBACK_WINDOW_DAYS, 30), compact small files (rows "
        "unchanged), and vacuum only files removed before the window, so every version inside "
        "it stays restorable.",
    )
    maintain.add_argument("--min-files", type=int, default=8, help="compact from N files (8)")
    maintain.add_argument("--no-vacuum", action="store_true", help="compact only")
    add_locations(maintain)
    maintain.set_defaults(handler=_maintain)


def _history(args: argparse.Namespace) -> int:
    from ..lake.versions import VersionUnavailable, history
    from ..versioning.rollback import audit_log

    lake = lake_of(args)
    if args.rollbacks:
        rows = audit_log(lake)
        if args.json:
            print(json.dumps(rows, default=str, indent=2))
            return 0
        if not rows:
            print("no rollbacks yet")
            return 0
        table = [
            [
                f"{r['at']:%Y-%m-%d %H:%M}",
                r["action"],
                r["rollback_id"],
                r["table"],
                f"{r['from_version']} -> {r['to_version']}",
                r["ids_count"],
                " ".join(r["affected_models"] or []) or "-",
                r["reason"],
            ]
            for r in rows
        ]
        headers = ["at", "action", "rollback", "table", "versions", "ids", "models", "reason"]
        print(format_table(headers, table))
        return 0
    if not args.table:
        raise CliError("name a TABLE, or pass --rollbacks")
    if args.limit < 1:
        raise CliError("--limit must be at least 1")
    try:
        versions = history(lake, args.table, limit=args.limit)
    except VersionUnavailable as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps([v.__dict__ for v in versions], default=str, indent=2))
        return 0
    rows = [
        [
            v.version,
            f"{v.timestamp:%Y-%m-%d %H:%M:%S}",
            v.operation + (f" ({v.detail})" if v.detail else ""),
            v.rows,
            v.rows_added,
            v.rows_removed,
            v.run_id or "-",
        ]
        for v in versions
    ]
    print(format_table(["version", "time (UTC)", "operation", "rows", "+", "-", "run"], rows))
    return 0


def _rollback(args: argparse.Namespace) -> int:
    config = {"table": args.table, "reason": args.reason}
    if args.to_version is not None:
        config["to_version"] = args.to_version
    else:
        try:
            when = datetime.fromisoformat(args.to_timestamp)
        except ValueError:
            raise CliError(
                f"--to-timestamp {args.to_timestamp!r} is not an ISO-8601 time"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        config["to_timestamp"] = when.isoformat()
    result = run_job_for_cli(args, "rollback_table_job", "restore_table_version", config)
    rolled = result.output_for_node("restore_table_version")
    version = lake_of(args).stats(args.table).version
    print(
        f"{args.table}: rolled back from version {rolled.from_version} to {rolled.to_version} "
        f"(now version {version}, {rolled.rows_after} rows)"
    )
    print(f"rollback id: {rolled.rollback_id} ({rolled.ids_count} id(s) excluded from later runs)")
    if rolled.erased_rows_removed:
        print(f"erased users' rows removed again: {rolled.erased_rows_removed}")
    models = [m["model_id"] for m in rolled.affected_models]
    print(
        "models trained on the rolled-back versions: " + (", ".join(models) if models else "none")
    )
    return 0


def _readmit(args: argparse.Namespace) -> int:
    config = {"rollback_id": args.rollback_id, "reason": args.reason}
    result = run_job_for_cli(args, "readmit_rollback_job", "readmit_rolled_back_rows", config)
    readmitted = result.output_for_node("readmit_rolled_back_rows")
    print(
        f"{readmitted.rollback_id}: {readmitted.ids_readmitted} id(s) re-admitted to "
        f"{readmitted.table}; {readmitted.note}"
    )
    return 0


def _maintain(args: argparse.Namespace) -> int:
    config = {"min_files": args.min_files, "vacuum": not args.no_vacuum}
    result = run_job_for_cli(args, "table_maintenance_job", "compact_and_vacuum", config)
    reports = result.output_for_node("compact_and_vacuum")
    rows = [[r.table, r.files_before, r.files_after, r.rows, r.files_vacuumed] for r in reports]
    print(f"rollback window: {lake_of(args).retention_days} days")
    print(format_table(["table", "files before", "files after", "rows", "vacuumed"], rows))
    return 0
