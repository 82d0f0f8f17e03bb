"""The curated tables' checks name the versions they verified: the build that published them, or,
when nothing was rebuilt, the published versions as they were audited (nothing read again)."""

from __future__ import annotations

import pytest

from flywheel_assets.sample import write_sample_landing
from flywheel_tests.support.runs import refresh

pytestmark = pytest.mark.usefixtures("hash_key")


def _checks(result) -> dict[tuple[str, str], dict]:
    return {
        (c.asset_key.to_user_string(), c.check_name): {k: v.value for k, v in c.metadata.items()}
        for c in result.get_asset_check_evaluations()
    }


def test_a_second_run_reports_the_audited_versions_without_rebuilding(tmp_path, lake):
    write_sample_landing(tmp_path / "landing", n_interactions=300, seed=3)
    first = _checks(refresh(tmp_path / "landing", lake))
    assert first[("tagged_rows", "no_residual_pii")]["re_run"] is True
    # The drift monitor's events of the first run are tagged by the next one; then all is still.
    assert refresh(tmp_path / "landing", lake).success

    second = _checks(refresh(tmp_path / "landing", lake))

    tagged = second[("tagged_rows", "no_residual_pii")]
    assert tagged["re_run"] is False and tagged["rebuilt"] is False
    assert tagged["verified_version"] == lake.stats("tagged_rows").version
    leakage = second[("sft_set", "no_holdout_leakage")]
    assert leakage["re_run"] is False
    assert leakage["input_versions"] == {
        "sft_set": lake.stats("sft_set").version,
        "eval_cases": lake.stats("eval_cases").version,
    }
