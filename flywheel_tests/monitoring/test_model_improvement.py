"""What each promotion improved: one row per promoted model from a real registry, and the
model_improvement asset and its target check through real Dagster runs on Delta tables."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest

from flywheel_assets.catalog.models import MODEL_IMPROVEMENT
from flywheel_assets.monitoring.assets import IMPROVEMENT_CHECK, model_improvement
from flywheel_assets.monitoring.improvement import improvement_rows, meets_target
from flywheel_assets.resources import LakeResource
from flywheel_assets.training.registry import Registry
from flywheel_tests.support.training import record


def rates(cases: int, passed: int) -> dict:
    split = {"cases": cases, "passed": passed, "pass_rate": passed / cases if cases else 0.0}
    return {"holdout": split, "golden": split, "regression": split, "all": split}


def metrics(before: tuple[int, int], after: tuple[int, int], production: str, **gate) -> dict:
    """Registry metrics as candidate_eval stores them: pass rates and the gate's record."""
    interval = {"mean": 0.4, "low": 0.3, "high": 0.5, "confidence": 0.95, "resamples": 100}
    return {
        "before": rates(*before),
        "after": rates(*after),
        "production_model": production,
        "gate": {"metric": "margin", "interval": {**interval, "n": after[0]}, **gate},
    }


def promote(registry: Registry, model_id: str, m: dict) -> None:
    registry.register(record(model_id, metrics=m), status="candidate", reason="", actor="r")
    registry.promote(model_id, reason="passed the gate", actor="r")


@pytest.fixture
def registry(lake):
    return Registry(lake)


def rows(registry: Registry) -> list[dict]:
    return improvement_rows(registry.models(), audit=registry.audit()).to_pylist()


def test_one_row_per_promoted_model_with_its_gain_and_what_it_replaced(registry):
    promote(registry, "m1", metrics((40, 10), (40, 20), "base"))
    registry.register(
        record("m2", metrics=metrics((40, 20), (40, 18), "m1")),
        status="rejected",
        reason="worse",
        actor="r",
    )
    promote(registry, "m3", metrics((40, 20), (40, 22), "m1"))

    out = rows(registry)

    assert [r["model_id"] for r in out] == ["m1", "m3"]  # the rejected model is no promotion
    m1, m3 = out
    assert (m1["replaced_model_id"], m3["replaced_model_id"]) == ("base", "m1")
    assert m1["holdout_pass_rate_before"] == 0.25 and m1["holdout_pass_rate_after"] == 0.5
    assert m1["pass_rate_gain"] == pytest.approx(0.25)
    assert m1["relative_gain"] == pytest.approx(1.0)
    assert m3["pass_rate_gain"] == pytest.approx(0.05)
    assert m3["relative_gain"] == pytest.approx(0.1)
    assert (m3["mean_gain"], m3["gain_low"], m3["gain_high"]) == (0.4, 0.3, 0.5)
    assert (m3["metric"], m3["holdout_cases"]) == ("margin", 40)
    audit = {a["model_id"]: a["at"] for a in registry.audit() if a["to_status"] == "promoted"}
    assert m3["promoted_at"] == audit["m3"] and m1["promoted_at"] < m3["promoted_at"]


def test_a_model_promoted_again_by_a_rollback_keeps_its_first_promotion(registry):
    promote(registry, "m1", metrics((40, 10), (40, 20), "base"))
    first = rows(registry)[0]["promoted_at"]
    promote(registry, "m2", metrics((40, 20), (40, 30), "m1"))
    registry.rollback(reason="bad week", actor="cli")  # m1 is production again

    out = {r["model_id"]: r for r in rows(registry)}

    assert set(out) == {"m1", "m2"}
    assert out["m1"]["promoted_at"] == first


def test_the_replaced_model_comes_from_the_audit_when_the_metrics_lack_it(registry):
    promote(registry, "m1", {})
    promote(registry, "m2", {"before": rates(10, 5), "after": rates(10, 6)})
    out = {r["model_id"]: r for r in rows(registry)}
    assert out["m2"]["replaced_model_id"] == "m1" and out["m1"]["replaced_model_id"] == "base"
    # No pass rates and no gate record: the row is there with nulls, not invented figures.
    assert out["m1"]["holdout_pass_rate_before"] is None and out["m1"]["mean_gain"] is None
    assert out["m2"]["metric"] is None and out["m2"]["relative_gain"] == pytest.approx(0.2)


def test_a_production_that_passed_nothing_has_no_relative_gain(registry):
    promote(registry, "m1", metrics((20, 0), (20, 3), "base"))
    (row,) = rows(registry)
    assert row["relative_gain"] is None and row["pass_rate_gain"] == pytest.approx(0.15)
    verdict = meets_target(improvement_rows(registry.models(), audit=registry.audit()))
    assert verdict.passed and verdict.measure == "pass_rate_gain"
    assert "+15.0 points (production passed none)" in verdict.message


def test_raw_registry_rows_with_json_metrics_and_no_audit(registry, lake):
    promote(registry, "m1", metrics((40, 10), (40, 20), "base"))
    promote(registry, "m2", metrics((40, 20), (40, 21), "m1"))
    raw = lake.read("model_registry").to_pylist()  # metrics as JSON text
    out = {r["model_id"]: r for r in improvement_rows(raw).to_pylist()}
    assert set(out) == {"m1", "m2"}
    assert out["m2"]["relative_gain"] == pytest.approx(0.05)
    assert out["m1"]["promoted_at"] is None  # retired: when it was promoted needs the audit


@pytest.mark.parametrize(
    ("after", "target", "passed", "shown"),
    [
        ((40, 22), 0.03, True, "+10.0% relative; target +3.0%: met"),
        ((40, 20), 0.03, False, "+0.0% relative; target +3.0%: not met"),
        ((40, 22), 0.10, True, "target +10.0%: met"),  # exactly the target meets it
        ((40, 22), 0.15, False, "target +15.0%: not met"),
    ],
)
def test_the_target_is_held_to_the_latest_promotion(registry, after, target, passed, shown):
    promote(registry, "m1", metrics((40, 10), (40, 40), "base"))  # an old, large gain
    promote(registry, "m2", metrics((40, 20), after, "m1"))
    verdict = meets_target(improvement_rows(registry.models(), audit=registry.audit()), target)
    assert (verdict.passed, verdict.model_id) == (passed, "m2")
    assert shown in verdict.message
    assert "m2 (replacing m1): held-out pass rate 0.500 -> " in verdict.message
    assert "gate: mean held-out margin gain +0.400 (CI +0.300 to +0.500)" in verdict.message


def test_no_promoted_model_passes_the_target():
    verdict = meets_target(MODEL_IMPROVEMENT.schema.empty_table())
    assert verdict.passed and verdict.message == "no promoted model yet"


def materialize(lake, target: float | None = None):
    config = {"ops": {"model_improvement": {"config": {"target": target}}}} if target else None
    # Held while the result is read: the result keeps only a weak reference to its instance.
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [model_improvement],
        resources={"lake": LakeResource(root=lake.root)},
        run_config=config,
        instance=instance,
        raise_on_error=False,
    )
    assert result.success
    (mat,) = [
        e.event_specific_data.materialization for e in result.get_asset_materialization_events()
    ]
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == IMPROVEMENT_CHECK
    return mat.metadata, check


def test_with_no_promoted_model_the_asset_writes_an_empty_table_and_the_check_passes(lake):
    metadata, check = materialize(lake)
    assert check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["summary"].value == "no promoted model yet"
    assert metadata["dagster/row_count"].value == 0
    assert lake.read("model_improvement").num_rows == 0


def test_the_asset_rebuilds_from_the_registry_and_plots_the_latest_gain(lake, registry):
    promote(registry, "m1", metrics((40, 10), (40, 20), "base"))
    promote(registry, "m2", metrics((40, 20), (40, 22), "m1"))

    metadata, check = materialize(lake)

    table = lake.read("model_improvement").sort_by("promoted_at").to_pylist()
    assert [r["model_id"] for r in table] == ["m1", "m2"]
    assert table[1]["relative_gain"] == pytest.approx(0.1)
    assert isinstance(metadata["latest_relative_gain"], dg.FloatMetadataValue)
    assert metadata["latest_relative_gain"].value == pytest.approx(0.1)
    assert metadata["latest_gain_low"].value == 0.3
    assert metadata["latest_model"].value == "m2" and metadata["rebuilt"].value is True
    assert check.passed and "target +3.0%: met" in check.metadata["summary"].value
    assert check.metadata["gain"].value == pytest.approx(0.1)

    # Nothing changed in the registry: no new version; a new promotion rebuilds the table.
    version = lake.stats("model_improvement").version
    metadata, _ = materialize(lake)
    assert metadata["rebuilt"].value is False
    assert lake.stats("model_improvement").version == version
    promote(registry, "m3", metrics((40, 22), (40, 22), "m2"))
    metadata, check = materialize(lake)
    assert metadata["rebuilt"].value is True
    assert lake.read("model_improvement").num_rows == 3


def test_a_gain_below_the_target_warns_without_failing_the_run(lake, registry):
    promote(registry, "m1", metrics((40, 20), (40, 21), "base"))  # +5% relative
    _, check = materialize(lake, target=0.10)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "+5.0% relative; target +10.0%: not met" in check.metadata["summary"].value
    assert check.metadata["target"].value == 0.10


def test_promoted_at_is_a_real_time(registry):
    promote(registry, "m1", metrics((40, 10), (40, 20), "base"))
    (row,) = rows(registry)
    assert isinstance(row["promoted_at"], datetime) and row["promoted_at"] <= datetime.now(UTC)


@pytest.mark.parametrize(
    "metrics_",
    [{"before": [1, 2], "after": "x", "gate": None}, {"gate": {"interval": {"mean": "?"}}}],
)
def test_metrics_in_another_shape_give_nulls_not_an_error(registry, metrics_):
    promote(registry, "m1", metrics_)
    (row,) = rows(registry)
    assert row["holdout_pass_rate_before"] is None and row["mean_gain"] is None
    assert not meets_target(improvement_rows(registry.models(), audit=registry.audit())).passed


def test_a_likelihood_gate_is_held_to_target_by_how_much_likelier_the_answers_became(registry):
    m = metrics((84, 75), (84, 74), "base")  # the pass rate fell a little
    m["gate"]["metric"] = "loglik"
    m["gate"]["interval"]["mean"] = 0.772
    promote(registry, "m1", m)
    (row,) = rows(registry)
    assert row["likelihood_gain"] == pytest.approx(1.1641, abs=1e-4)  # exp(0.772) - 1
    verdict = meets_target(improvement_rows(registry.models(), audit=registry.audit()))
    assert verdict.passed and verdict.measure == "likelihood_gain"
    assert "held-out answers +116.4% likelier per token" in verdict.message
    m2 = metrics((84, 74), (84, 80), "m1")
    m2["gate"]["metric"] = "loglik"
    m2["gate"]["interval"]["mean"] = 0.01  # 1% likelier: below the 3% target
    promote(registry, "m2", m2)
    verdict = meets_target(improvement_rows(registry.models(), audit=registry.audit()))
    assert not verdict.passed and verdict.model_id == "m2"
