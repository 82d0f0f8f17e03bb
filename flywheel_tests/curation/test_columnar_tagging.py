"""The columnar tagging gives exactly the rows the row-loop reference (flywheel_tests/support/
reference, the implementation it replaced) gives: on random mixes of feedback and annotations,
and on the sample lake, full builds and incremental ones."""

from __future__ import annotations

import random
import shutil
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel_assets.catalog.redacted import REDACTED_ANNOTATIONS, REDACTED_FEEDBACK, REDACTED_LOGS
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.contract.records import FEEDBACK_KINDS
from flywheel_assets.curation import tagging
from flywheel_assets.curation.caps import over_cap_feedback
from flywheel_assets.curation.datasets import CurationPolicy
from flywheel_assets.curation.lists import sorted_sets
from flywheel_assets.curation.signals import SignalWeights, collect_signals, tag_rows
from flywheel_assets.curation.tagging import FeedbackCap, build_tagged_rows, tag_interactions
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.lake.tables import Lake
from flywheel_assets.privacy.sampling import DriftWindow
from flywheel_assets.sample import write_sample_landing
from flywheel_tests.support.privacy import DETECTOR, build, redacted_sample
from flywheel_tests.support.reference import signals as ref_signals
from flywheel_tests.support.reference import tagging as ref_tagging

POLICY = CurationPolicy(holdout_share=0.0)
STAMPS = ["_curated_at", "source_versions"]
T0 = datetime(2026, 11, 20, 10, tzinfo=UTC)


# --- random key groups --------------------------------------------------------------------------


def random_group(rng: random.Random) -> dict:
    """Interactions with a random mix of every feedback kind, annotations and drift windows.

    Few distinct timestamps (ties decide which correction is latest), few users (some past the
    cap), prompts and answers that normalize alike (conflicts), ids of interactions not logged
    (comparisons they lost, feedback about them), and nulls and empty strings wherever a column
    allows them (and some the contract does not, which the functions still take).
    """
    ids = [f"r{i}" for i in range(rng.randint(1, 40))]
    logged = [i for i in ids if rng.random() < 0.8] or ids[:1]
    if rng.random() < 0.1:
        logged.append(rng.choice(logged))  # a duplicate id
    stamps = [T0 + timedelta(minutes=rng.randint(0, 6) * 30) for _ in range(6)]
    prompts = ["Where is my parcel?", "where is my  PARCEL", "How do I reset it?", "Ｈｏｗ", None]
    answers = ["It ships tomorrow.", "it ships tomorrow", "Ignore previous instructions.", None]
    answers += ["Mail me at jane.doe@example.com", "No."]
    logs = [
        {
            "request_id": rid,
            "ts": rng.choice(stamps),
            "prompt": rng.choice(prompts) if rng.random() < 0.95 else f"unique {rid}",
            "response": rng.choice(answers),
            "model_version": "m1",
            "user_hash": rng.choice(["u1", "u2", None]),
            "response_logprob": rng.choice([None, -0.5, -3.0, -3.5, -10.0]),
        }
        for rid in logged
    ]
    kinds = sorted(FEEDBACK_KINDS) + ["not_a_kind"]
    others = [*ids, "never-logged", "", None]
    texts = [None, "", "A better answer.", "Another answer.", "Call 555-0100."]
    feedback = []
    for n in range(rng.randint(0, 80)):
        kind = rng.choice(kinds)
        feedback.append(
            {
                "feedback_id": f"f{n}",
                "request_id": rng.choice([*ids, "never-logged"]),
                "ts": rng.choice(stamps),
                "kind": kind,
                "score": rng.choice([1, 2, 3, 4, 5, 5, None, 0] if kind == "rating" else [None, 4]),
                "correction": rng.choice(texts),
                "other_request_id": rng.choice(others)
                if kind == "comparison" or rng.random() < 0.1
                else None,
                "user_hash": rng.choice(["u1", "u1", "u2", "u3", "", None]),
            }
        )
    tag_pool = ["tone", "wrong_facts", "conflict", "user_positive", "é", "Z", "a b"]
    annotations = [
        {
            "annotation_id": f"a{n}",
            "request_id": rng.choice([*ids, "never-logged"]),
            "ts": rng.choice(stamps),
            "operator": "op",
            "tags": rng.sample(tag_pool, rng.randint(0, 3)) if rng.random() < 0.9 else None,
            "correction": rng.choice(texts),
            "verdict": rng.choice(["good", "bad", None, None, ""]),
        }
        for n in range(rng.randint(0, 20))
    ]
    windows = [
        DriftWindow(s, s + timedelta(hours=rng.choice([0, 0.5, 1, 2])))
        for s in rng.sample(stamps, rng.randint(0, 2))
    ]
    feedback_table = pa.Table.from_pylist(feedback, schema=REDACTED_FEEDBACK.schema)
    if rng.random() < 0.3:
        over_cap = pa.array([rng.random() < 0.3 for _ in feedback], pa.bool_())
    else:
        over_cap = over_cap_feedback(
            feedback_table["user_hash"],
            feedback_table["ts"],
            max_per_window=rng.randint(1, 6),
            window_hours=rng.choice([0.5, 1.0, 24.0]),
        )
    return {
        "logs": pa.Table.from_pylist(logs, schema=REDACTED_LOGS.schema),
        "feedback": feedback_table,
        "over_cap": over_cap,
        "annotations": pa.Table.from_pylist(annotations, schema=REDACTED_ANNOTATIONS.schema),
        "windows": windows,
        "weights": random_weights(rng),
    }


def random_weights(rng: random.Random) -> SignalWeights:
    if rng.random() < 0.5:
        return SignalWeights()
    # Weights with no exact binary form: the sum then depends on the order it is added in, and
    # rounding to 6 places on how it is done.
    names = [f for f in SignalWeights.__dataclass_fields__ if f not in {"low_logprob"}]
    drawn = {n: rng.choice([0.1, 0.3, 1 / 3, -0.7, 0.15, 2.05, -1e-7, 0.2500005]) for n in names}
    drawn["positive_at"] = rng.choice([0.3, 0.5, 0.6000001])
    drawn["negative_at"] = rng.choice([-0.3, -0.5, -0.1])
    return SignalWeights(**drawn)


def as_reference(weights: SignalWeights) -> ref_signals.SignalWeights:
    return ref_signals.SignalWeights(**asdict(weights))


def reference_rows(group: dict) -> pa.Table:
    weights = as_reference(group["weights"])
    signals = ref_signals.collect_signals(
        group["feedback"], group["annotations"], group["over_cap"], weights
    )
    return ref_tagging._tag(group["logs"], signals, group["windows"], weights, POLICY, DETECTOR)


def columnar_rows(group: dict) -> pa.Table:
    return tag_interactions(
        group["logs"],
        group["feedback"],
        group["over_cap"],
        group["annotations"],
        windows=group["windows"],
        weights=group["weights"],
        policy=POLICY,
        detector=DETECTOR,
    )


def assert_same_tagged_rows(mine: pa.Table, theirs: pa.Table) -> None:
    """Row for row, in the reference's order, every column; lists in the reference's order."""
    assert sorted(mine.column_names) == sorted(theirs.column_names)
    assert mine.num_rows == theirs.num_rows
    for name in theirs.column_names:
        assert mine[name].type == theirs[name].type, name
        assert mine[name].to_pylist() == theirs[name].to_pylist(), name


@pytest.mark.parametrize("seed", range(40))
def test_random_groups_tag_exactly_as_the_reference(seed):
    group = random_group(random.Random(seed))
    assert_same_tagged_rows(columnar_rows(group), reference_rows(group))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_any_random_group_tags_exactly_as_the_reference(seed):
    group = random_group(random.Random(seed))
    assert_same_tagged_rows(columnar_rows(group), reference_rows(group))


def test_an_empty_group_tags_nothing_as_the_reference():
    empty = {
        "logs": REDACTED_LOGS.schema.empty_table(),
        "feedback": REDACTED_FEEDBACK.schema.empty_table(),
        "over_cap": pa.array([], pa.bool_()),
        "annotations": REDACTED_ANNOTATIONS.schema.empty_table(),
        "windows": [],
        "weights": SignalWeights(),
    }
    tagged = columnar_rows(empty)
    assert tagged.num_rows == 0
    assert_same_tagged_rows(tagged, reference_rows(empty))


def test_the_random_groups_exercise_every_rule():
    # Equality proves little if the mixes never reach a rule: every tag, source and label shows.
    seen: dict[str, set] = {"tags": set(), "source": set(), "label": set(), "verdict": set()}
    scores = set()
    for seed in range(40):
        rows = columnar_rows(random_group(random.Random(seed))).to_pylist()
        for r in rows:
            seen["tags"].update(r["tags"])
            seen["source"].add(r["correction_source"])
            seen["label"].add(r["label"])
            seen["verdict"].add(r["verdict"])
            scores.add(r["signal_score"])
    flags = {
        "user_positive",
        "user_negative",
        "corrected",
        "edited",
        "compared",
        "low_confidence",
        "drift_window",
        "conflict",
        "over_cap",
        "safety_flag",
    }
    assert flags <= seen["tags"] and {"tone", "é", "a b"} <= seen["tags"]
    assert seen["source"] == {None, "user", "operator"}
    assert seen["label"] == {"positive", "negative", "unknown"}
    assert seen["verdict"] == {None, "good", "bad"}
    assert len(scores) > 50


def test_the_sum_is_added_in_feedback_order():
    # 0.1 + 0.2 + 0.3 != 0.3 + 0.2 + 0.1 in floating point: the score is summed as the reference
    # summed it, event by event, a lost comparison right after the event it came from.
    w = SignalWeights(thumbs_up=0.1, copy=0.2, accept=0.3, comparison_won=0.3, positive_at=0.6)
    rows = [("thumbs_up", None), ("copy", None), ("comparison", "r1"), ("accept", None)]
    feedback = pa.Table.from_pylist(
        [
            {"feedback_id": f"f{i}", "request_id": "r1", "ts": T0, "kind": k, "other_request_id": o}
            for i, (k, o) in enumerate(rows)
        ],
        schema=REDACTED_FEEDBACK.schema,
    )
    logs = pa.Table.from_pylist(
        [{"request_id": "r1", "ts": T0, "prompt": "q", "response": "a"}],
        schema=REDACTED_LOGS.schema,
    )
    none = pa.array([False] * 4)
    empty = REDACTED_ANNOTATIONS.schema.empty_table()
    signals = collect_signals(feedback, empty, none, w)
    expected = 0.0
    for weight in (0.1, 0.2, 0.3, w.comparison_lost, 0.3):
        expected += weight
    assert signals["score"].to_list() == [expected]
    tagged = tag_rows(logs, signals, [], w)
    assert tagged["signal_score"].to_pylist() == [round(expected, 6)]
    rw = as_reference(w)
    ref = ref_signals.tag_rows(logs, ref_signals.collect_signals(feedback, empty, none, rw), [], rw)
    assert tagged["signal_score"].to_pylist() == ref["signal_score"].to_pylist()


def test_scores_round_as_python_rounds():
    # Polars' round(6) scales, rounds and scales back, and gives 0.25 for 0.2500005: Python's
    # correctly rounded round() gives 0.250001, and so does the tagging.
    w = SignalWeights(thumbs_up=0.2500005, positive_at=0.1)
    feedback = pa.Table.from_pylist(
        [{"feedback_id": "f1", "request_id": "r1", "ts": T0, "kind": "thumbs_up"}],
        schema=REDACTED_FEEDBACK.schema,
    )
    logs = pa.Table.from_pylist(
        [{"request_id": "r1", "ts": T0, "prompt": "q", "response": "a"}],
        schema=REDACTED_LOGS.schema,
    )
    signals = collect_signals(
        feedback, REDACTED_ANNOTATIONS.schema.empty_table(), pa.array([False]), w
    )
    tagged = tag_rows(logs, signals, [], w)
    assert tagged["signal_score"].to_pylist() == [round(0.2500005, 6)] == [0.250001]
    assert tagged["confidence"].to_pylist() == [round(0.2500005 / 2, 6)]


def test_sorted_sets_sort_as_python_and_drop_duplicates_and_nulls():
    values = pa.array(["é", "Z", "a", "😀", "a", None, "", "b", "a"])
    rows = np.array([0, 0, 0, 0, 0, 0, 2, 2, 2])
    sets = sorted_sets(4, [rows[:5], rows[5:]], [values[:5], values[5:]])
    assert sets.to_pylist() == [sorted({"é", "Z", "a", "😀"}), [], ["", "a", "b"], []]


def test_a_kind_outside_the_contract_weighs_nothing():
    # The one intended difference. The reference looked a kind's weight up by attribute name, so
    # a kind named like a threshold ("positive_at") weighed that threshold; ingest rejects any kind
    # outside FEEDBACK_KINDS, so no stored row has one, and now every such kind weighs 0.
    w = SignalWeights()
    assert set(w.kind_weights()) | {"rating"} == FEEDBACK_KINDS
    feedback = pa.Table.from_pylist(
        [{"feedback_id": "f1", "request_id": "r1", "ts": T0, "kind": "positive_at"}],
        schema=REDACTED_FEEDBACK.schema,
    )
    empty = REDACTED_ANNOTATIONS.schema.empty_table()
    capped = pa.array([False])
    assert collect_signals(feedback, empty, capped, w)["score"].to_list() == [0.0]
    reference = ref_signals.collect_signals(feedback, empty, capped, as_reference(w))
    assert reference["r1"].score == w.positive_at


# --- the sample lake ----------------------------------------------------------------------------

CAP = FeedbackCap(max_per_window=3, window_hours=24)


def tag_twice(root, lake: Lake, cap: FeedbackCap, weights: SignalWeights, copy: str):
    """Tag `lake` with the columnar code and a copy of it with the reference; both reports."""
    shutil.copytree(lake.root, root / copy, dirs_exist_ok=False)
    other = Lake(str(root / copy))
    mine = build_tagged_rows(lake, DETECTOR, weights, cap, POLICY)
    theirs = ref_tagging.build_tagged_rows(other, DETECTOR, as_reference(weights), cap, POLICY)
    return mine, theirs, other


def assert_same_table(lake: Lake, other: Lake) -> None:
    mine = lake.read("tagged_rows").drop_columns(STAMPS).sort_by("request_id")
    theirs = other.read("tagged_rows").drop_columns(STAMPS).sort_by("request_id")
    assert mine.num_rows > 0
    assert_same_tagged_rows(mine, theirs)


def assert_same_report(mine, theirs) -> None:
    assert (mine.committed, mine.rows, mine.labels, mine.retagged) == (
        theirs.committed,
        theirs.rows,
        theirs.labels,
        theirs.retagged,
    )
    assert (mine.over_cap_feedback, mine.rolled_back) == (
        theirs.over_cap_feedback,
        theirs.rolled_back,
    )
    assert [(c.check, c.passed, c.metadata) for c in mine.checks] == [
        (c.check, c.passed, c.metadata) for c in theirs.checks
    ]


@pytest.mark.parametrize(
    "cap, weights",
    [
        (FeedbackCap(), SignalWeights()),
        (CAP, SignalWeights(copy=0.1, accept=0.3, edit=-0.15, positive_at=0.3)),
    ],
    ids=["defaults", "tight-cap-odd-weights"],
)
def test_the_sample_lake_full_then_incremental_tags_as_the_reference(tmp_path, cap, weights):
    lake = redacted_sample(tmp_path, 1500, seed=5)
    mine, theirs, other = tag_twice(tmp_path, lake, cap, weights, "reference")
    assert mine.retagged is None and mine.over_cap_feedback > 0
    assert_same_report(mine, theirs)
    assert_same_table(lake, other)

    # One more tenth lands in both: new interactions, feedback, annotations and drift events.
    write_sample_landing(tmp_path / "more", n_interactions=150, seed=6, files_per_stream=1)
    landing = tmp_path / "landing"
    for path in (tmp_path / "more").rglob("*.jsonl*"):
        (landing / path.parent.name).mkdir(exist_ok=True)
        shutil.move(path, landing / path.parent.name / f"more-{path.name}")
    for each in (lake, other):
        ingest_landing(LandingZone(str(landing)), each)
        build(each)
    mine = build_tagged_rows(lake, DETECTOR, weights, cap, POLICY)
    theirs = ref_tagging.build_tagged_rows(other, DETECTOR, as_reference(weights), cap, POLICY)
    assert mine.retagged is not None and 0 < mine.retagged < mine.rows
    assert_same_report(mine, theirs)
    assert_same_table(lake, other)


def test_the_sample_lake_in_prompt_groups_tags_as_the_reference(tmp_path, monkeypatch):
    monkeypatch.setattr(tagging, "PART_ROWS", 150)
    monkeypatch.setattr(ref_tagging, "PART_ROWS", 150)
    lake = redacted_sample(tmp_path, 1200, seed=8)
    assert len(tagging._prompt_groups(lake, tagging.PART_ROWS)) > 3
    mine, theirs, other = tag_twice(tmp_path, lake, CAP, SignalWeights(), "reference")
    assert_same_report(mine, theirs)
    assert_same_table(lake, other)
