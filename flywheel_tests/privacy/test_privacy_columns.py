"""PII outside the text fields: ids, model versions, operators, tags and JSON values never reach a
redacted or curated table, a preview or an export, and joins on pseudonymized ids still hold."""

from __future__ import annotations

import json
import re

import dagster as dg
import pyarrow as pa
import pytest

from flywheel_assets import catalog
from flywheel_assets.catalog.governance import TOMBSTONES
from flywheel_assets.catalog.redacted import REDACTED_ANNOTATIONS, REDACTED_FEEDBACK, REDACTED_LOGS
from flywheel_assets.contract.landing import LandingZone
from flywheel_assets.curation.export import ExportFormat, export_table
from flywheel_assets.governance.exclusions import ALL, Exclusions
from flywheel_assets.ingest.pipeline import ingest_landing
from flywheel_assets.privacy.pipeline import drop_excluded
from flywheel_assets.privacy.redact import (
    pseudonymize,
    redact_json,
    residual_pii,
    string_columns,
)
from flywheel_tests.support.privacy import DETECTOR, KEY, build
from flywheel_tests.support.records import TEST_HASH_KEY, feedback, interaction, write_lines
from flywheel_tests.support.runs import materializations, refresh

EMAIL = re.compile(r"[a-z]+@example\.(?:com|org)")
PII_ID = "req-alice@example.com"


def _pii_everywhere(landing):
    """One interaction with an email in every field a producer can fill, plus ordinary traffic so
    the curated sets have rows to build."""
    write_lines(
        landing,
        "interactions/a.jsonl",
        [
            interaction(
                PII_ID,
                prompt="How do I reset my password?",
                response="Open settings and choose reset.",
                model_version="m-bob@example.com",
                user_id="carol@example.com",
                session_id="sess-dave@example.com",
                metadata={"note": "line one\nerin@example.org", "nested": {"who": "x@example.com"}},
                client="frank@example.com",
            ),
            *[interaction(f"r{i}", prompt=f"How do I do task {i}?") for i in range(6)],
        ],
    )
    write_lines(
        landing,
        "feedback/a.jsonl",
        [
            feedback(
                "fb-grace@example.com",
                PII_ID,
                "edit",
                correction="Open settings, choose reset, then mail niaj@example.com.",
                comment="heidi@example.com was here",
                user_id="carol@example.com",
            ),
            *[feedback(f"f{i}", f"r{i}", "thumbs_up") for i in range(6)],
        ],
    )
    write_lines(
        landing,
        "annotations/a.jsonl",
        [
            {
                "annotation_id": "ann-ivan@example.com",
                "request_id": PII_ID,
                "ts": "2026-11-20T11:00:00Z",
                "operator": "judy@example.com",
                "tags": ["billing", "mallory@example.com"],
                "verdict": "bad",
            }
        ],
    )


def _downstream_tables():
    return [
        t.spec.name
        for t in catalog.TABLES
        if t.stage in ("privacy", "curation") and t.spec.name != TOMBSTONES.name
    ]


@pytest.fixture(autouse=True)
def _hash_key(monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HASH_KEY", TEST_HASH_KEY)


def test_an_email_in_any_field_reaches_no_redacted_or_curated_table_preview_or_export(
    tmp_path, landing_dir, lake
):
    _pii_everywhere(landing_dir)
    result = refresh(landing_dir, lake)
    assert result.success

    # The record went all the way: its pseudonymized id is in the curated sets.
    stored = pseudonymize(pa.array([PII_ID]), DETECTOR, TEST_HASH_KEY.encode())[0][0].as_py()
    assert stored != PII_ID and not EMAIL.search(stored)
    tagged = lake.read("tagged_rows")
    assert stored in tagged["request_id"].to_pylist()
    # Joins still hold: feedback and annotations point at the same pseudonym.
    assert stored in lake.read(REDACTED_FEEDBACK.name)["request_id"].to_pylist()
    assert lake.read(REDACTED_ANNOTATIONS.name)["request_id"].to_pylist() == [stored]

    for name in _downstream_tables():
        table = lake.read(name)
        if table is None:
            continue
        text = json.dumps(table.to_pylist(), default=str)
        assert not EMAIL.search(text), (name, EMAIL.findall(text))

    metadata = json.dumps(materializations(result), default=str)
    assert "preview" in metadata and not EMAIL.search(metadata), EMAIL.findall(metadata)

    exported = []
    for name in ("sft_set", "dpo_set", "kto_set", "eval_cases"):
        out = tmp_path / f"{name}.jsonl"
        export_table(lake, name, out, fmt=ExportFormat.TRL)
        exported.append(out.read_text())
    assert "[EMAIL]" in "".join(exported)  # the corrected answer was exported, redacted
    assert not EMAIL.search("".join(exported))


def test_every_check_passes_on_a_record_with_pii_in_every_field(landing_dir, lake):
    _pii_everywhere(landing_dir)
    result = refresh(landing_dir, lake)
    evaluations = {
        (c.asset_key.to_user_string(), c.check_name): c.passed
        for c in result.get_asset_check_evaluations()
        if c.check_name == "no_residual_pii"
    }
    expected = set(_downstream_tables())
    assert {table for table, _ in evaluations} == expected
    assert all(evaluations.values()), evaluations


@pytest.mark.parametrize("spec", [REDACTED_LOGS, REDACTED_FEEDBACK, REDACTED_ANNOTATIONS])
def test_the_residual_check_covers_every_string_column_of_the_schema(tmp_path, spec):
    landing = tmp_path / "landing"
    write_lines(landing, "interactions/a.jsonl", [interaction("r1")])
    write_lines(landing, "feedback/a.jsonl", [feedback("f1", "r1")])
    write_lines(
        landing,
        "annotations/a.jsonl",
        [
            {
                "annotation_id": "a1",
                "request_id": "r1",
                "ts": "2026-11-20T11:00:00Z",
                "operator": "o",
            }
        ],
    )
    from flywheel_assets.lake.tables import Lake

    lake = Lake(str(tmp_path / "lake"))
    ingest_landing(LandingZone(str(landing)), lake)
    build(lake)
    clean = lake.read(spec.name)
    assert clean.num_rows == 1 and residual_pii(clean, DETECTOR) == {}
    columns = string_columns(spec.schema)
    assert {"request_id", "_ingest_batch"} & set(columns) == {"request_id"}
    for column in columns:
        leaked = _with_email(clean, column)
        found = residual_pii(leaked, DETECTOR)
        assert list(found) and all(k.split(".")[0] == column for k in found), (column, found)


def _with_email(table: pa.Table, column: str) -> pa.Table:
    row = table.to_pylist()[0]
    field = table.schema.field(column)
    if pa.types.is_map(field.type):
        row[column] = [("zed@example.com", 1)]
    elif pa.types.is_list(field.type) and pa.types.is_struct(field.type.value_type):
        row[column] = [{"role": "user", "content": "mail zed@example.com"}]
    elif pa.types.is_list(field.type):
        row[column] = ["zed@example.com"]
    elif column in ("metadata", "extra"):
        row[column] = json.dumps({"k": "a\nzed@example.com"})
    else:
        row[column] = "zed@example.com"
    return pa.Table.from_pylist([row], schema=table.schema)


def test_json_values_are_redacted_one_by_one_and_stay_valid_json():
    texts = [
        json.dumps({"note": "line one\njo@example.org"}, ensure_ascii=False),
        json.dumps({"auth": "x\tbearer abcdefghijklmnopqrstuvwx"}, ensure_ascii=False),
        json.dumps({"password": "hunter2!", "n": 1}, ensure_ascii=False),
        json.dumps({"a@example.com": 1, "b@example.com": 2}, ensure_ascii=False),
        json.dumps({"plain": ["ok", {"deep": "call +44 20 7946 0958"}]}, ensure_ascii=False),
        None,
        json.dumps({"nothing": "here"}),
    ]
    redacted, counts = redact_json(pa.array(texts, pa.string()), DETECTOR)
    values = [None if t is None else json.loads(t) for t in redacted.to_pylist()]
    assert values[0] == {"note": "line one\n[EMAIL]"}
    assert values[1] == {"auth": "x\tbearer [SECRET]"}
    assert values[2] == {"password": "[SECRET]", "n": 1}
    assert sorted(values[3].values()) == [1, 2]  # two keys redacted alike are both kept
    assert values[4] == {"plain": ["ok", {"deep": "call [PHONE]"}]}
    assert values[5] is None and redacted[6].as_py() == texts[6]
    assert counts["email"].to_pylist()[:4] == [1, 0, 0, 2]
    assert residual_pii(pa.table({"metadata": redacted}), DETECTOR) == {}
    assert residual_pii(pa.table({"metadata": pa.array(texts)}), DETECTOR) == {"metadata": 5}


def test_an_id_with_pii_becomes_one_keyed_pseudonym_and_a_clean_id_stays():
    ids = pa.array(["r1", "req-alice@example.com", None, "req-alice@example.com"])
    out, hits = pseudonymize(ids, DETECTOR, KEY)
    values = out.to_pylist()
    assert values[0] == "r1" and values[2] is None and values[1] == values[3]
    assert values[1].startswith("pid_") and "alice" not in values[1]
    assert hits.to_pylist() == [0, 1, 0, 1]
    # A pseudonym is a fixed point: an id that came back from the review page stays as it is.
    again, _ = pseudonymize(out, DETECTOR, KEY)
    assert again.to_pylist() == values
    other_key, _ = pseudonymize(ids, DETECTOR, b"another-key-0123456789")
    assert other_key[1].as_py() != values[1]


def test_a_pii_id_written_behind_the_pipeline_fails_the_check(landing_dir, lake):
    write_lines(landing_dir, "interactions/a.jsonl", [interaction("r1")])
    write_lines(landing_dir, "feedback/a.jsonl", [feedback("f1", "r1")])
    assert refresh(landing_dir, lake).success
    from deltalake import write_deltalake

    row = lake.read(REDACTED_FEEDBACK.name).to_pylist()[0] | {"feedback_id": "fb-x@example.com"}
    schema = lake.read(REDACTED_FEEDBACK.name).schema
    leaked = pa.Table.from_pylist([row], schema=schema)
    write_deltalake(lake.uri(REDACTED_FEEDBACK.name), leaked, mode="append")
    result = refresh(landing_dir, lake)
    failed = [
        c
        for c in result.get_asset_check_evaluations()
        if not c.passed and c.check_name == "no_residual_pii"
    ]
    assert [c.asset_key.to_user_string() for c in failed] == [REDACTED_FEEDBACK.name]
    assert failed[0].metadata["rows_with_pii"].value == {"feedback_id": 1}
    assert isinstance(result, dg.ExecuteInProcessResult)


def test_a_rollback_that_names_a_pseudonymized_id_keeps_its_raw_row_out():
    """A rollback records ids as stored; the raw row of such an id must still be left out."""
    stored = pseudonymize(pa.array([PII_ID]), DETECTOR, KEY)[0][0].as_py()
    exclusions = Exclusions(ids={(ALL, "request_id"): {stored, "r2"}})
    raw = pa.table({"request_id": [PII_ID, "r1", "r2"]})
    kept, dropped = drop_excluded(exclusions, raw, "request_id", DETECTOR, KEY)
    assert kept["request_id"].to_pylist() == ["r1"]
    assert dropped == 2
