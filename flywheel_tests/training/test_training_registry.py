"""The model registry on a real Delta table: registration, promotion, rollback, audit."""

from __future__ import annotations

import pytest

from flywheel_assets.training.registry import Registry, RegistryError
from flywheel_tests.support.training import record


@pytest.fixture
def registry(lake):
    return Registry(lake)


def statuses(registry):
    return {m["model_id"]: m["status"] for m in registry.models()}


def test_a_registered_model_keeps_its_data_versions_and_metrics(registry):
    registry.register(
        record("m1", dataset_versions={"sft_set": 3, "eval_cases": 2}, metrics={"a": 1}),
        status="candidate",
        reason="passed",
        actor="run-1",
    )
    (model,) = registry.models()
    assert model["dataset_versions"] == {"sft_set": 3, "eval_cases": 2}
    assert model["metrics"] == {"a": 1}
    assert (model["status"], model["status_reason"]) == ("candidate", "passed")
    assert [(a["model_id"], a["from_status"], a["to_status"]) for a in registry.audit()] == [
        ("m1", None, "candidate")
    ]


def test_promotion_retires_the_previous_model_in_one_commit(registry, lake):
    registry.register(record("m1"), status="candidate", reason="", actor="r")
    registry.promote("m1", reason="first", actor="r")
    registry.register(record("m2"), status="candidate", reason="", actor="r")
    version = lake.stats("model_registry").version

    changes = registry.promote("m2", reason="better", actor="cli")

    assert changes == [("m1", "promoted", "retired"), ("m2", "candidate", "promoted")]
    assert statuses(registry) == {"m1": "retired", "m2": "promoted"}
    assert lake.stats("model_registry").version == version + 1
    assert registry.production()["model_id"] == "m2"
    last = registry.audit()[-2:]
    assert [(a["model_id"], a["to_status"], a["reason"], a["actor"]) for a in last] == [
        ("m1", "retired", "better", "cli"),
        ("m2", "promoted", "better", "cli"),
    ]


def test_rollback_re_promotes_the_model_promoted_before(registry):
    for model_id in ("m1", "m2", "m3"):
        registry.register(record(model_id), status="candidate", reason="", actor="r")
        registry.promote(model_id, reason="", actor="r")
    assert registry.rollback(reason="bad week", actor="cli") == [
        ("m3", "promoted", "retired"),
        ("m2", "retired", "promoted"),
    ]
    assert registry.rollback(reason="again", actor="cli")[-1] == ("m1", "retired", "promoted")
    assert statuses(registry) == {"m1": "promoted", "m2": "retired", "m3": "retired"}


def test_a_rejected_model_can_be_promoted_by_hand(registry):
    registry.register(record("m1"), status="rejected", reason="golden broken", actor="r")
    registry.promote("m1", reason="operator override", actor="cli")
    assert statuses(registry) == {"m1": "promoted"}


@pytest.mark.parametrize(
    ("setup", "action", "message"),
    [
        ([], lambda r: r.promote("nope", reason="", actor="cli"), "no model 'nope'"),
        ([], lambda r: r.rollback(reason="", actor="cli"), "no model is promoted"),
        (["m1"], lambda r: r.promote("m1", reason="", actor="cli"), "already promoted"),
        (["m1"], lambda r: r.rollback(reason="", actor="cli"), "only model promoted"),
        (
            ["m1"],
            lambda r: r.register(record("m1"), status="candidate", reason="", actor="r"),
            "already registered",
        ),
        (
            [],
            lambda r: r.register(record("m9"), status="promoted", reason="", actor="r"),
            "registered as candidate or rejected",
        ),
        (
            [],
            lambda r: r.register(
                record("m9", trigger="cron"), status="candidate", reason="", actor="r"
            ),
            "unknown trigger 'cron'",
        ),
    ],
)
def test_impossible_changes_are_refused_and_change_nothing(registry, lake, setup, action, message):
    for model_id in setup:
        registry.register(record(model_id), status="candidate", reason="", actor="r")
        registry.promote(model_id, reason="", actor="r")
    before = registry.models()
    with pytest.raises(RegistryError, match=message):
        action(registry)
    assert registry.models() == before
