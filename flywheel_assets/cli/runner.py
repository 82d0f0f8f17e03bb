"""Run the project's jobs in this process, as every `flywheel` command that changes data does, and
summarize what they wrote."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

import dagster as dg

from .. import catalog
from ..contract.records import STREAMS
from ..lake.tables import TableStats
from ..reports import DriftReport, LandingTotals, LedgerReport, SamplingReport
from ..settings import open_lake
from .options import lake_of, landing_of
from .output import CliError

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
            totals = LandingTotals.from_metadata(self.materializations.get(stream.table, {}))
            if totals is not None:
                rows.append([stream.name, *totals.metadata().values()])
        return rows


def load_definitions() -> dg.Definitions:
    from ..definitions import defs

    return defs


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
    job = defs.resolve_job_def("refresh_job")
    refreshable = set(job.asset_layer.selected_asset_keys)
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

    the_lake = open_lake(lake)
    tables = [t.name for t in catalog.TABLES if dg.AssetKey(t.name) in keys]
    before = {t: the_lake.stats(t) for t in tables}
    # One run of the whole selection; the whole job runs as defined, without building a subset.
    result = execute_job(
        job.name,
        landing=landing,
        lake=lake,
        run_config=run_config,
        asset_selection=None if keys == refreshable else sorted(keys),
        instance=instance,
        verbose=verbose,
    )
    outcome = RunOutcome(tables=[(t, before[t], the_lake.stats(t)) for t in tables])
    outcome.materializations = materializations(result)
    for check in result.get_asset_check_evaluations():
        if not check.passed:
            table = check.asset_key.to_user_string()
            outcome.notes.append(f"warning: check {check.check_name} on {table} failed")
    mats = outcome.materializations
    ledger = LedgerReport.from_metadata(mats.get("ingest_ledger", {}))
    if ledger is not None and not ledger.batches:
        outcome.notes.append("ingest: no new landing files, nothing committed")
    sampling = SamplingReport.from_metadata(mats.get("redacted_logs", {}))
    kept = sampling.kept_by_reason if sampling else {}
    if kept and sum(kept.values()):
        reasons = ", ".join(f"{k} {v}" for k, v in kept.items() if v and k != "unsampled")
        total = sum(kept.values())
        outcome.notes.append(
            f"sampling: kept {total - kept.get('unsampled', 0)} of {total} new interactions "
            f"({reasons}); dropped {kept.get('unsampled', 0)}"
        )
    drift = DriftReport.from_metadata(mats.get("drift_monitor", {}))
    if drift is not None and drift.events_stored:
        rates = ", ".join(f"{m} {r:.1%}" for m, r in drift.breaches.items())
        outcome.notes.append(
            f"drift: negative-feedback rate over the threshold for {rates}; drift_monitor stored "
            f"{drift.events_stored} drift event(s) in drift_events, which the next run tags"
        )
    for path in ledger.changed_files if ledger else []:
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
    """The metadata of each asset materialized by the run, by table name.

    A table materialized twice in one run (drift_events: by ingestion, then by the drift monitor)
    keeps the keys of both, the later value winning.
    """
    out: dict[str, dict] = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta = out.setdefault(mat.asset_key.to_user_string(), {})
        meta.update({k: v.value for k, v in mat.metadata.items()})
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


def run_job_for_cli(
    args: argparse.Namespace, name: str, op: str, op_config: dict
) -> dg.ExecuteInProcessResult:
    """Run an op job in this process with `op_config` for its one op, on the landing zone and lake
    the command names; a failure is the command's one-line error."""
    try:
        return execute_job(
            name,
            landing=landing_of(args),
            lake=lake_of(args).root,
            run_config={"ops": {op: {"config": op_config}}},
        )
    except RunFailed as exc:
        raise CliError(str(exc)) from None
