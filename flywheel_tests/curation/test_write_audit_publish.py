"""Write-audit-publish: a curated table is committed only after its blocking checks pass.

A new in-house PII pattern (badge numbers) is configured after badge numbers were already redacted
past: the next build of tagged_rows finds them, fails its check, and leaves the table as it was.
"""

from __future__ import annotations

import dagster as dg
import pytest

from flywheel_assets.curation.datasets import CurationPolicy
from flywheel_assets.curation.pipeline import CURATED, build_curated_sets
from flywheel_assets.definitions import defs
from flywheel_assets.ingest.assets import ingest_landing_asset
from flywheel_assets.privacy.pii import Detector, PatternSpec
from flywheel_tests.support.records import TEST_HASH_KEY
from flywheel_tests.support.rollback import QUESTIONS, write_week
from flywheel_tests.support.runs import run_job

KEY = TEST_HASH_KEY.encode()
pytestmark = pytest.mark.usefixtures("hash_key")
BADGE = {"name": "badge", "regex": r"BADGE-\d{5}", "placeholder": "[BADGE]"}
BADGE_WEEK = [
    ("My BADGE-48213 does not open the lab door.", "Ask the front desk to re-enable it."),
    ("Who replaces a lost BADGE-99120?", "Security, in building C."),
]


# Every table ingestion writes (its asset cannot be subset), then the redacted tables.
UPSTREAM = (
    *(key.to_user_string() for key in ingest_landing_asset.keys),
    "redacted_logs",
    "redacted_feedback",
    "redacted_annotations",
)


def _build_only(landing_dir, lake, *assets: str, privacy: dict | None = None):
    """Materialize some of refresh_job's assets (with their checks)."""
    resources = {
        "lake": {"config": {"root": lake.root}},
        "landing": {"config": {"root": str(landing_dir)}},
    }
    if privacy:
        resources["privacy"] = {"config": privacy}
    return defs.resolve_job_def("refresh_job").execute_in_process(
        run_config={"resources": resources},
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[dg.AssetKey(a) for a in assets],
        raise_on_error=False,
    )


def _check_evaluations(result) -> dict[str, bool]:
    out = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            out[f"{data.asset_key.to_user_string()}:{data.check_name}"] = data.passed
    return out


def test_a_failing_blocking_check_leaves_tagged_rows_as_published(landing_dir, lake):
    write_week(landing_dir, "good", QUESTIONS, 10)
    assert run_job("refresh_job", landing_dir, lake).success
    published = {t: lake.stats(t).version for t in ("tagged_rows", "sft_set", "dpo_set")}
    content = lake.read("tagged_rows").to_pylist()

    write_week(landing_dir, "badges", BADGE_WEEK, 17)
    assert _build_only(landing_dir, lake, *UPSTREAM).success
    # The in-house badge pattern is configured after those rows were redacted.
    result = _build_only(landing_dir, lake, "tagged_rows", privacy={"extra_patterns": [BADGE]})

    assert not result.success
    assert _check_evaluations(result)["tagged_rows:no_residual_pii"] is False
    failure = result.get_step_failure_events()[0]
    assert failure.step_key == "tagged_rows"
    assert "no_residual_pii" in failure.step_failure_data.error.message
    # Nothing was published: the table and everything downstream of it are as they were.
    assert {t: lake.stats(t).version for t in published} == published
    assert lake.read("tagged_rows").to_pylist() == content


def test_the_redacted_tables_own_checks_fail_on_the_new_pattern_too(landing_dir, lake):
    write_week(landing_dir, "badges", BADGE_WEEK, 17)
    assert _build_only(landing_dir, lake, *UPSTREAM).success
    result = run_job(
        "refresh_job",
        landing_dir,
        lake,
        {"resources": {"privacy": {"config": {"extra_patterns": [BADGE]}}}},
    )
    assert not result.success
    assert _check_evaluations(result)["redacted_logs:no_residual_pii"] is False
    # A blocking check upstream keeps the curated tables from being built on that data.
    assert lake.stats("tagged_rows") is None


def test_without_the_pattern_the_same_data_publishes(landing_dir, lake):
    write_week(landing_dir, "good", QUESTIONS, 10)
    write_week(landing_dir, "badges", BADGE_WEEK, 17)
    result = run_job("refresh_job", landing_dir, lake)
    assert result.success
    evaluations = _check_evaluations(result)
    assert evaluations["tagged_rows:no_residual_pii"] is True
    assert all(evaluations.values()), evaluations


def test_a_failing_curated_check_publishes_none_of_the_sets(landing_dir, lake):
    write_week(landing_dir, "good", QUESTIONS, 10)
    assert run_job("refresh_job", landing_dir, lake).success
    versions = {spec.name: lake.stats(spec.name).version for spec in CURATED}
    write_week(landing_dir, "badges", BADGE_WEEK, 17)
    assert _build_only(landing_dir, lake, *UPSTREAM, "tagged_rows").success

    detector = Detector([PatternSpec(BADGE["name"], BADGE["regex"], BADGE["placeholder"])])
    report = build_curated_sets(lake, detector, KEY, CurationPolicy())
    assert not report.committed
    failed = {(c.table, c.check) for c in report.checks if not c.passed}
    # Training sets divert rows with PII to the review queue, whose check then blocks every set.
    assert failed == {("review_queue", "no_residual_pii")}
    assert {spec.name: lake.stats(spec.name).version for spec in CURATED} == versions

    # The same staged data with the default detector passes and is published.
    report = build_curated_sets(lake, Detector(), KEY, CurationPolicy())
    assert report.committed and all(c.passed for c in report.checks)
    assert all(lake.stats(spec.name).version == versions[spec.name] + 1 for spec in CURATED)
