"""`flywheel run`, `tables`, `export` and `sample`: the pipeline and its tables."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .. import catalog
from .options import add_lake, add_landing, add_locations, lake_of, landing_of
from .output import CliError, format_table


def add_commands(sub) -> None:
    run = sub.add_parser(
        "run",
        help="materialize the dataset assets in-process (no daemon) and print the table summary",
        description="Materialize every dataset asset (or a selection) in this process, run their "
        "checks, and print each table's version, rows and rows added. Exits 1 with a one-line "
        "reason when a step fails.",
    )
    add_locations(run)
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
    add_lake(tables)
    tables.set_defaults(handler=_tables)

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
    add_lake(export)
    export.set_defaults(handler=_export)

    sample = sub.add_parser(
        "sample",
        help="write a seeded sample landing zone (interactions, feedback, annotations, drift)",
        description="Write a deterministic sample landing zone: interactions with some PII, "
        "feedback of every kind, operator annotations, drift events, retries and malformed lines.",
    )
    add_landing(sample)
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


def _run(args: argparse.Namespace) -> int:
    from .runner import RunFailed, run_assets

    try:
        outcome = run_assets(
            landing=landing_of(args),
            lake=lake_of(args).root,
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


def _export(args: argparse.Namespace) -> int:
    from ..curation.export import ExportFormat, export_table

    try:
        result = export_table(
            lake_of(args),
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
    lake = lake_of(args)
    rows = []
    for entry in catalog.TABLES:
        stats = lake.stats(entry.name)
        rows.append(
            [entry.name, "-", "-"] if stats is None else [entry.name, stats.version, stats.rows]
        )
    print(format_table(["table", "version", "rows"], rows))
    return 0


def _sample(args: argparse.Namespace) -> int:
    from ..sample import write_sample_landing

    root = Path(landing_of(args))
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
