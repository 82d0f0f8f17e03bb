"""The `flywheel` command: materialize in-process, inspect tables, write sample data."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .console import CliError, format_table
from .lake.tables import Lake
from .settings import lake_root, landing_root


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"flywheel {args.command}: error: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flywheel",
        description="Turn an LLM app's production interactions and feedback into versioned, "
        "curated Delta tables. Every command works on a landing zone (JSON Lines from the app) "
        "and a lake (Delta tables).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="materialize the dataset assets in-process (no daemon) and print the table summary",
        description="Materialize every dataset asset (or a selection) in this process, run their "
        "checks, and print each table's version, rows and rows added. Exits 1 with a one-line "
        "reason when a step fails.",
    )
    _add_locations(run)
    run.add_argument(
        "--select",
        metavar="ASSETS",
        help="Dagster asset selection, e.g. 'raw_logs' or 'group:ingest' (default: every asset)",
    )
    run.add_argument("--verbose", action="store_true", help="show Dagster's step log")
    run.set_defaults(handler=_run)

    tables = sub.add_parser(
        "tables",
        help="list the lake's tables with their Delta version and row count",
        description="List every table the project defines, with its current Delta version and "
        "row count (read from the Delta log, no data scan).",
    )
    tables.add_argument(
        "--lake", metavar="URI", help="lake root (default: $FLYWHEEL_LAKE or data/lake)"
    )
    tables.set_defaults(handler=_tables)

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
    _add_locations(forget)
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
    _add_locations(expire)
    expire.set_defaults(handler=_expire)

    export = sub.add_parser(
        "export",
        help="write a curated set as JSON Lines that TRL or OpenAI fine-tuning load directly",
        description="Write sft_set, dpo_set, kto_set or eval_cases as JSON Lines: TRL's "
        "conversational SFT, preference (DPO) and unpaired preference (KTO) formats, or "
        "OpenAI's chat fine-tuning format for sft_set. --version exports an earlier version.",
    )
    export.add_argument(
        "table", choices=["sft_set", "dpo_set", "kto_set", "eval_cases"], help="the set to export"
    )
    export.add_argument("--out", required=True, metavar="FILE", help="the JSON Lines file to write")
    export.add_argument("--version", type=int, help="Delta version to export (default: latest)")
    export.add_argument(
        "--format", choices=["trl", "openai"], default="trl", help="trl (default) or openai"
    )
    export.add_argument(
        "--lake", metavar="URI", help="lake root (default: $FLYWHEEL_LAKE or data/lake)"
    )
    export.set_defaults(handler=_export)

    sample = sub.add_parser(
        "sample",
        help="write a seeded sample landing zone (interactions, feedback, annotations, drift)",
        description="Write a deterministic sample landing zone: interactions with some PII, "
        "feedback of every kind, operator annotations, drift events, retries and malformed lines.",
    )
    sample.add_argument(
        "--landing", metavar="DIR", help="landing root (default: $FLYWHEEL_LANDING or data/landing)"
    )
    sample.add_argument("--n", type=int, default=2000, help="number of interactions (default 2000)")
    sample.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    sample.add_argument("--days", type=int, default=14, help="days the sample spans (default 14)")
    sample.add_argument(
        "--start",
        type=_utc_date,
        help="first day, YYYY-MM-DD (default: --days before today, so it ends today)",
    )
    sample.add_argument(
        "--if-empty",
        action="store_true",
        help="do nothing when the landing zone already holds files",
    )
    sample.set_defaults(handler=_sample)
    from . import cli_collector, cli_training, cli_versioning

    cli_training.add_commands(sub, _add_locations)
    cli_versioning.add_commands(sub, _add_locations, _run_op_job)
    cli_collector.add_commands(sub)
    return parser


def _add_locations(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--landing", metavar="DIR", help="landing root (default: $FLYWHEEL_LANDING or data/landing)"
    )
    parser.add_argument(
        "--lake", metavar="URI", help="lake root (default: $FLYWHEEL_LAKE or data/lake)"
    )


def _run(args: argparse.Namespace) -> int:
    from .runner import RunFailed, run_assets

    lake = Lake(lake_root(args.lake))
    try:
        outcome = run_assets(
            landing=landing_root(args.landing),
            lake=lake.root,
            select=args.select,
            verbose=args.verbose,
        )
    except RunFailed as exc:
        raise CliError(str(exc)) from None
    print(format_table(["table", "version", "rows", "rows added"], outcome.summary_rows()))
    if outcome.landing_rows():
        print()
        print(
            format_table(
                ["stream", "files", "lines read", "valid", "quarantined", "duplicates", "erased"],
                outcome.landing_rows(),
            )
        )
    if outcome.notes:
        print()
    for line in outcome.notes:
        print(line)
    return 0


def _run_op_job(args: argparse.Namespace, job: str, op: str, op_config: dict) -> dict:
    """Run an op job in-process with `op_config` for `op`; return its materializations."""
    from .runner import RunFailed, execute_job, materializations

    try:
        result = execute_job(
            job,
            landing=landing_root(args.landing),
            lake=lake_root(args.lake),
            run_config={"ops": {op: {"config": op_config}}},
        )
    except RunFailed as exc:
        raise CliError(str(exc)) from None
    return materializations(result)


def _forget(args: argparse.Namespace) -> int:
    if not args.user_id.strip():
        raise CliError("USER_ID must not be blank")
    mats = _run_op_job(
        args, "erase_user_job", "erase_user_rows", {"user_id": args.user_id, "reason": args.reason}
    )
    touched = mats.get("erasure_tombstones", {}).get("tables_touched", {})
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
    mats = _run_op_job(args, "retention_job", "expire_raw_data", config)
    rows = [[t, m.get("rows_deleted", 0)] for t, m in sorted(mats.items())]
    print(f"expired raw data older than {args.days} days")
    print(format_table(["table", "rows deleted"], rows) if rows else "no raw rows were old enough")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .curation.export import ExportFormat, export_table

    try:
        result = export_table(
            Lake(lake_root(args.lake)),
            args.table,
            args.out,
            version=args.version,
            fmt=ExportFormat(args.format),
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(f"wrote {result.rows} rows of {result.table} version {result.version} to {result.path}")
    if result.skipped:
        print(
            f"left out {result.skipped} conversations with tool turns, which the OpenAI format "
            "cannot express without tool calls (--format trl keeps them)"
        )
    return 0


def _tables(args: argparse.Namespace) -> int:
    from .runner import dataset_tables

    lake = Lake(lake_root(args.lake))
    rows = []
    for table in dataset_tables():
        stats = lake.stats(table)
        rows.append([table, "-", "-"] if stats is None else [table, stats.version, stats.rows])
    print(format_table(["table", "version", "rows"], rows))
    return 0


def _sample(args: argparse.Namespace) -> int:
    from .sample.generator import write_sample_landing

    root = Path(landing_root(args.landing))
    if args.if_empty and root.exists() and any(p.is_file() for p in root.rglob("*.jsonl*")):
        print(f"{root} already holds landing files; left as it is")
        return 0
    if args.n < 1 or args.days < 1:
        raise CliError("--n and --days must be at least 1")
    # The sample ends today, so retention and drift windows behave as they would on live data.
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = args.start or today - timedelta(days=args.days)
    manifest = write_sample_landing(
        root, n_interactions=args.n, seed=args.seed, start=start, days=args.days
    )
    rows = [
        [
            s,
            len(manifest.files[s]),
            manifest.lines[s],
            manifest.valid[s],
            manifest.duplicates[s],
            sum(manifest.malformed[s].values()),
        ]
        for s in manifest.files
    ]
    print(f"sample landing zone written to {root}")
    print(format_table(["stream", "files", "lines", "valid", "retries", "malformed"], rows))
    return 0


def _utc_date(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def console() -> None:
    """The `flywheel` executable: run, flush, and leave without interpreter teardown.

    deltalake's reader threads can outlive Python's finalization and abort the process at exit
    (delta-rs issue 2184), turning a finished command into exit code 134; everything is written
    and flushed by then, so the process ends with the command's own code instead.
    """
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
