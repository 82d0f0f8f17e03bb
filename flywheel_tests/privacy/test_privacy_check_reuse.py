"""no_residual_pii through Dagster: an unchanged redacted table is not scanned again with the
same detector, and is scanned again when the detector's patterns change."""

from __future__ import annotations

import json

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from flywheel_assets.definitions import defs
from flywheel_assets.ingest.assets import ingest_landing_asset
from flywheel_tests.support.records import feedback, interaction, write_lines

pytestmark = pytest.mark.usefixtures("hash_key")
# Every table ingestion writes (its asset cannot be subset), then the redacted tables.
PRIVACY = tuple(key.to_user_string() for key in ingest_landing_asset.keys)
PRIVACY += ("redacted_logs", "redacted_feedback", "redacted_annotations")
BADGE = {"name": "badge", "regex": r"BADGE-\d{5}", "placeholder": "[BADGE]"}


def _run(landing_dir, lake, privacy: dict | None = None):
    resources = {
        "lake": {"config": {"root": lake.root}},
        "landing": {"config": {"root": str(landing_dir)}},
    }
    if privacy:
        resources["privacy"] = {"config": privacy}
    return defs.resolve_job_def("refresh_job").execute_in_process(
        run_config={"resources": resources},
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[dg.AssetKey(a) for a in PRIVACY],
        raise_on_error=False,
    )


def _pii_checks(result) -> dict[str, tuple[bool, dict]]:
    return {
        c.asset_key.to_user_string(): (c.passed, {k: v.value for k, v in c.metadata.items()})
        for c in result.get_asset_check_evaluations()
        if c.check_name == "no_residual_pii"
    }


@pytest.fixture
def landed(landing_dir):
    write_lines(
        landing_dir,
        "interactions/a.jsonl",
        [interaction("r1", response="Your BADGE-48213 opens door C.")],
    )
    write_lines(landing_dir, "feedback/a.jsonl", [feedback("f1", "r1")])
    return landing_dir


def test_the_same_detector_on_an_unchanged_table_reports_the_earlier_pass(landed, lake):
    first = _run(landed, lake)
    assert first.success

    second = _pii_checks(_run(landed, lake))

    passed, meta = second["redacted_logs"]
    assert passed and meta["re_run"] is False
    assert meta["verified_version"] == lake.stats("redacted_logs").version
    assert meta["verified_in_run"] == first.run_id
    assert meta["rows_with_pii"] == {}


def test_a_new_pattern_scans_the_unchanged_table_again(landed, lake):
    assert _run(landed, lake).success
    version = lake.stats("redacted_logs").version

    checks = _pii_checks(_run(landed, lake, {"extra_patterns": [BADGE]}))

    passed, meta = checks["redacted_logs"]
    assert lake.stats("redacted_logs").version == version  # the table did not change
    assert not passed and meta["re_run"] is True
    assert meta["rows_with_pii"] == {"response": 1}


def test_a_patterns_file_that_changes_scans_again(landed, lake, tmp_path):
    patterns = tmp_path / "patterns.json"
    patterns.write_text("[]")
    assert _run(landed, lake, {"patterns_file": str(patterns)}).success
    patterns.write_text(json.dumps([BADGE]))

    passed, meta = _pii_checks(_run(landed, lake, {"patterns_file": str(patterns)}))[
        "redacted_logs"
    ]

    assert not passed and meta["re_run"] is True


def test_pii_written_behind_the_pipeline_is_found_at_the_new_version(landed, lake):
    assert _run(landed, lake).success
    leaked = lake.read("redacted_logs").to_pylist()[0] | {
        "request_id": "r2",
        "response": "call me on +44 20 7946 0958",
    }
    write_deltalake(
        lake.uri("redacted_logs"),
        pa.Table.from_pylist([leaked], schema=lake.read("redacted_logs").schema),
        mode="append",
    )

    checks = _pii_checks(_run(landed, lake))

    passed, meta = checks["redacted_logs"]
    assert not passed and meta["re_run"] is True
    assert meta["verified_version"] == lake.stats("redacted_logs").version
    assert checks["redacted_feedback"][0] and checks["redacted_feedback"][1]["re_run"] is False
