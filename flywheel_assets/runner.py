"""Materialize the project's assets in this process, as `flywheel run` does, and summarize."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import dagster as dg

from .ingest.contract import STREAMS
from .lake.tables import Lake, TableStats

FAILURE_CLASS_PATH = f"{dg.Failure.__module__}.{dg.Failure.__qualname__}"


class RunFailed(Exception):
    """The run failed; the message says which step and why, in one line."""

    def __init__(self, message: str, result: dg.ExecuteInProcessResult | None = None):
        super().__init__(message)
        self.result = result


@dataclass
class RunOutcome:
    tables: list[tuple[str, TableStats | None, TableStats | None]]
    materializations: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary_rows(self) -> list[list]:
        rows = []
        for name, before, after in self.tables:
            if after is None:
                continue
            added = after.rows - (before.rows if before else 0)
            rows.append([name, after.version, after.rows, f"{added:+d}"])
        return rows

    def landing_rows(self) -> list[list]:
        rows = []
        for stream in STREAMS:
            meta = self.materializations.get(stream.table)
            if meta is None:
                continue
            rows.append(
                [stream.name]
                + [meta.get(k, 0) for k in ("files_ingested", "lines_read", "valid")]
                + [meta.get(k, 0) for k in ("quarantined", "duplicates", "erased")]
            )
        return rows


def load_definitions() -> dg.Definitions:
    from .definitions import defs

    return defs


def dataset_tables(defs: dg.Definitions | None = None) -> list[str]:
    """Every asset stored as a Delta table, upstream first."""
    defs = defs or load_definitions()
    graph = defs.resolve_asset_graph()
    ordered = [k for level in graph.toposorted_asset_keys_by_level for k in sorted(level)]
    return [k.to_user_string() for k in ordered if "delta" in graph.get(k).kinds]


def instance_for_cli() -> dg.DagsterInstance:
    # With DAGSTER_HOME set (`make run` and `make ui` set it) the UI sees the runs.
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def run_assets(
    *,
    landing: str,
    lake: str,
    select: str | None = None,
    instance: dg.DagsterInstance | None = None,
    run_config: dict | None = None,
    verbose: bool = False,
) -> RunOutcome:
    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    refreshable = set(defs.resolve_job_def("refresh_job").asset_layer.selected_asset_keys)
    try:
        keys = dg.AssetSelection.from_string(select).resolve(graph) if select else refreshable
    except Exception as exc:  # the selection parser raises several error types
        raise RunFailed(f"invalid --select {select!r}: {exc}") from None
    if not keys:
        raise RunFailed(f"--select {select!r} matches no asset")
    if keys - refreshable:
        names = ", ".join(sorted(k.to_user_string() for k in keys - refreshable))
        raise RunFailed(f"{names}: retraining runs through retrain_job (flywheel retrain)")
    keys = _whole_multi_assets(defs, keys)

    the_lake = Lake(lake)
    tables = [t for t in dataset_tables(defs) if dg.AssetKey(t) in keys]
    before = {t: the_lake.stats(t) for t in tables}
    result = execute_job(
        "refresh_job",
        landing=landing,
        lake=lake,
        run_config=run_config,
        asset_selection=sorted(keys),
        instance=instance,
        verbose=verbose,
    )
    outcome = RunOutcome(tables=[(t, before[t], the_lake.stats(t)) for t in tables])
    outcome.materializations = materializations(result)
    for check in result.get_asset_check_evaluations():
        if not check.passed:
            table = check.asset_key.to_user_string()
            outcome.notes.append(f"warning: check {check.check_name} on {table} failed")
    ledger = outcome.materializations.get("ingest_ledger", {})
    if ledger and not ledger.get("batches"):
        outcome.notes.append("ingest: no new landing files, nothing committed")
    kept = outcome.materializations.get("redacted_logs", {}).get("kept_by_reason")
    if kept and sum(kept.values()):
        reasons = ", ".join(f"{k} {v}" for k, v in kept.items() if v and k != "unsampled")
        total = sum(kept.values())
        outcome.notes.append(
            f"sampling: kept {total - kept.get('unsampled', 0)} of {total} new interactions "
            f"({reasons}); dropped {kept.get('unsampled', 0)}"
        )
    monitor = outcome.materializations.get("drift_monitor", {})
    if monitor.get("events_written"):
        rates = ", ".join(f"{m} {r:.1%}" for m, r in monitor["breaches"].items())
        outcome.notes.append(
            f"drift: negative-feedback rate over the threshold for {rates}; drift_monitor wrote "
            f"{monitor['events_written']} drift event(s) to {monitor['landing_file']}, which the "
            "next run ingests"
        )
    for path in ledger.get("changed_files") or []:
        outcome.notes.append(f"warning: {path} changed after it was ingested; not re-read")
    return outcome


def execute_job(
    name: str,
    *,
    landing: str,
    lake: str,
    run_config: dict | None = None,
    asset_selection: list[dg.AssetKey] | None = None,
    instance: dg.DagsterInstance | None = None,
    verbose: bool = False,
) -> dg.ExecuteInProcessResult:
    """Run one of the code location's jobs in this process; RunFailed says why it failed."""
    extra = dict(run_config or {})
    config = {
        "resources": {
            "lake": {"config": {"root": lake}},
            "landing": {"config": {"root": landing}},
            **extra.pop("resources", {}),
        },
        # The CLI prints its own summary; Dagster's step log would drown it (verbose shows it).
        "loggers": {"console": {"config": {"log_level": "DEBUG" if verbose else "CRITICAL"}}},
        **extra,
    }
    job = load_definitions().resolve_job_def(name)
    with instance or instance_for_cli() as inst:
        try:
            result = job.execute_in_process(
                run_config=config,
                instance=inst,
                asset_selection=asset_selection,
                raise_on_error=False,
            )
        except dg.DagsterInvalidConfigError as exc:
            errors = "; ".join(e.message for e in exc.errors) or str(exc)
            raise RunFailed(f"invalid config for {name}: {errors}") from None
    if not result.success:
        raise RunFailed(_failure_reason(result), result)
    return result


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """The metadata of each asset materialized by the run, by table name."""
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        out[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return out


def _whole_multi_assets(defs: dg.Definitions, keys: set[dg.AssetKey]) -> set[dg.AssetKey]:
    """Widen a selection to every output of a multi-asset that cannot run in part."""
    wide = set(keys)
    for assets_def in defs.resolve_asset_graph().assets_defs:
        if not assets_def.can_subset and assets_def.keys & keys:
            wide |= set(assets_def.keys)
    return wide


def _failure_reason(result: dg.ExecuteInProcessResult) -> str:
    for check in result.get_asset_check_evaluations():
        if not check.passed:
            meta = {k: v.value for k, v in check.metadata.items()}
            return f"check {check.check_name} on {check.asset_key.to_user_string()} failed: {meta}"
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            message = (error.message or "").strip().splitlines()
            cause = error.cause.message.strip().splitlines() if error.cause else []
            detail = (cause or message or ["unknown error"])[-1]
            # A Failure an op raises is its own message to the user; the class path is noise.
            detail = detail.removeprefix(f"{FAILURE_CLASS_PATH}: ")
            return f"step {event.step_key} failed: {detail}"
    return "run failed"
