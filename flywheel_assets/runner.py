"""Materialize the project's assets in this process, as `flywheel run` does, and summarize."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import dagster as dg

from .ingest.contract import STREAMS
from .lake.tables import Lake, TableStats


class RunFailed(Exception):
    """The run failed; the message says which step and why, in one line."""


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
                + [meta.get(k, 0) for k in ("quarantined", "duplicates")]
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
) -> RunOutcome:
    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    try:
        keys = (
            dg.AssetSelection.from_string(select).resolve(graph)
            if select
            else graph.materializable_asset_keys
        )
    except Exception as exc:  # the selection parser raises several error types
        raise RunFailed(f"invalid --select {select!r}: {exc}") from None
    if not keys:
        raise RunFailed(f"--select {select!r} matches no asset")
    keys = _whole_multi_assets(defs, keys)

    the_lake = Lake(lake)
    tables = [t for t in dataset_tables(defs) if dg.AssetKey(t) in keys]
    before = {t: the_lake.stats(t) for t in tables}
    config = {
        "resources": {
            "lake": {"config": {"root": lake}},
            "landing": {"config": {"root": landing}},
        },
        # The summary is the output; Dagster's per-step debug log would drown it.
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        **(run_config or {}),
    }
    job = defs.resolve_job_def("refresh_job")
    with instance or instance_for_cli() as inst:
        result = job.execute_in_process(
            run_config=config, instance=inst, asset_selection=sorted(keys), raise_on_error=False
        )
        if not result.success:
            raise RunFailed(_failure_reason(result))
        outcome = RunOutcome(tables=[(t, before[t], the_lake.stats(t)) for t in tables])
        for event in result.get_asset_materialization_events():
            mat = event.event_specific_data.materialization
            outcome.materializations[mat.asset_key.to_user_string()] = {
                k: v.value for k, v in mat.metadata.items()
            }
        for check in result.get_asset_check_evaluations():
            if not check.passed:
                table = check.asset_key.to_user_string()
                outcome.notes.append(f"warning: check {check.check_name} on {table} failed")
    ledger = outcome.materializations.get("ingest_ledger", {})
    if ledger and not ledger.get("batches"):
        outcome.notes.append("ingest: no new landing files, nothing committed")
    for path in ledger.get("changed_files") or []:
        outcome.notes.append(f"warning: {path} changed after it was ingested; not re-read")
    return outcome


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
            return f"step {event.step_key} failed: {detail}"
    return "run failed"
