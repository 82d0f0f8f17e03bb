"""The code location's jobs run in-process over a test landing zone and lake, and the metadata of
the materializations a run recorded."""

from __future__ import annotations

import dagster as dg

from flywheel_assets.definitions import defs


def run_job(name, landing_dir, lake, run_config=None):
    """Run one of the code location's jobs in-process over a test landing zone and lake."""
    run_config = dict(run_config or {})
    resources = {
        "lake": {"config": {"root": lake.root}},
        "landing": {"config": {"root": str(landing_dir)}},
        **run_config.pop("resources", {}),  # e.g. privacy config; never the test's lake
    }
    return defs.resolve_job_def(name).execute_in_process(
        run_config={"resources": resources, **run_config},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def run_ingest(landing_dir, lake):
    return run_job("ingest_job", landing_dir, lake)


def refresh(landing_dir, lake, run_config=None):
    return run_job("refresh_job", landing_dir, lake, run_config)


def materializations(result) -> dict[str, dict]:
    """Each materialized asset's metadata values, by asset key."""
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        out[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return out
