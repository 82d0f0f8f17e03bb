"""What the collector answers per record, against the real app, writer and landing files: line
separators inside records, bad values refused one by one, a poison record isolated from other
requests, and idempotency keys bound to their token and body."""

from __future__ import annotations

import json
import threading

import pytest

from flywheel_assets.collector.server import landed_records
from flywheel_assets.contract.records import Reason
from flywheel_tests.support.collector import OTHER_TOKEN
from flywheel_tests.support.records import interaction

SEPARATORS = ["\u2028", "\u2029", "\x85", "\x1c", "\x0b", "\r"]
REASONS = {r.value for r in Reason} - {"unexpected_error"}


def test_line_separators_inside_records_land_as_one_record_each(serve, landing_dir):
    collector = serve()
    batch = [
        interaction(f"sep-{ord(c):04x}", prompt=f"one{c}two", response=f"a{c}b") for c in SEPARATORS
    ]
    status, body = collector.post("/v1/interactions", batch)
    assert (status, body["accepted"]) == (202, len(SEPARATORS))
    collector.stop()

    [landed_file] = (landing_dir / "interactions").glob("*.jsonl")
    lines = landed_file.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == len(SEPARATORS) + 1
    landed = {r["request_id"]: r for r in landed_records(landing_dir, "interactions")}
    for c in SEPARATORS:
        assert landed[f"sep-{ord(c):04x}"]["prompt"] == f"one{c}two"


def test_an_idempotency_key_whose_answer_holds_a_separator_survives_a_restart(serve, landing_dir):
    batch = [interaction("id\u2028with-a-separator")]
    key = {"Idempotency-Key": "batch-\u2029".encode().hex()}
    first = serve()
    assert first.post("/v1/interactions", batch, headers=key)[0] == 202
    first.stop()
    second = serve()  # the key log is read back at start
    assert second.post("/v1/interactions", batch, headers=key) == (
        202,
        {"accepted": 1, "ids": ["id\u2028with-a-separator"]},
    )
    second.stop()
    assert len(landed_records(landing_dir, "interactions")) == 1


BAD_RECORDS = {
    "nested_too_deep": interaction("bad", metadata=json.loads('{"a":' * 100 + "1" + "}" * 100)),
    "huge_integer": b'"extra_count":' + b"9" * 5000,
    "float_past_range": interaction("bad", response_logprob=10**400),
    "ts_out_of_range": interaction("bad", ts="0001-01-01T00:00:00+01:00"),
    "ts_not_iso": interaction("bad", ts="yesterday"),
    "nan": b'"extra_score":NaN',
    "lone_surrogate": b'"prompt":"\\ud800"',
    "not_an_object": "a string",
}


def _batch_body(bad) -> bytes:
    """A JSON array: a valid record, then `bad` (a value, or raw fields spliced into a record)."""
    good = json.dumps(interaction("good")).encode()
    if isinstance(bad, bytes):
        bad = json.dumps(interaction("bad")).encode()[:-1] + b"," + bad + b"}"
    else:
        bad = json.dumps(bad).encode()
    return b"[" + good + b"," + bad + b"]"


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_a_bad_record_is_refused_with_its_reason_and_its_batch_neighbour_is_stored(
    serve, landing_dir, case
):
    collector = serve()
    status, body = collector.post("/v1/interactions", _batch_body(BAD_RECORDS[case]))
    assert status == 207, body
    assert (body["accepted"], body["ids"]) == (1, ["good"])
    [error] = body["errors"]
    assert error["index"] == 1 and error["reason_code"] in REASONS and error["reason"]
    assert body["detail"] == "1 of 2 record(s) invalid and not stored; the other 1 stored"
    collector.stop()
    assert [r["request_id"] for r in landed_records(landing_dir, "interactions")] == ["good"]


def test_bodies_past_what_json_can_parse_get_400(serve, landing_dir):
    collector = serve()
    deep = b"[" * 100_000 + b"]" * 100_000
    status, body = collector.post("/v1/interactions", deep)
    assert (status, body["detail"]) == (400, "the body is nested too deeply to parse")
    status, body = collector.post("/v1/interactions", b"\xff\xfe{")
    assert status == 400 and body["detail"].startswith("the body is not JSON")


def test_a_batch_with_no_valid_record_is_refused_whole(serve, landing_dir):
    collector = serve()
    status, body = collector.post(
        "/v1/interactions", [interaction("a", ts="yesterday"), interaction("b", response="")]
    )
    assert status == 422
    assert body["detail"] == "2 of 2 record(s) invalid; none stored"
    assert [(e["index"], e["id"], e["reason_code"]) for e in body["errors"]] == [
        (0, "a", "bad_ts"),
        (1, "b", "bad_value"),
    ]
    collector.stop()
    assert landed_records(landing_dir, "interactions") == []


def test_one_clients_poison_record_does_not_fail_other_requests(serve, landing_dir):
    collector = serve()
    answers: dict[str, tuple] = {}
    poison = _batch_body(BAD_RECORDS["lone_surrogate"]).replace(b'"good"', b'"poisoned-batch"')

    def send(name: str, body) -> None:
        answers[name] = collector.post("/v1/interactions", body)

    threads = [
        threading.Thread(target=send, args=(f"c{i}", [interaction(f"c{i}")])) for i in range(12)
    ]
    threads.insert(6, threading.Thread(target=send, args=("poison", poison)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(answers[f"c{i}"][0] == 202 for i in range(12)), answers
    status, body = answers["poison"]
    assert (status, body["ids"]) == (207, ["poisoned-batch"])
    assert body["errors"][0]["reason_code"] in {"not_utf8", "bad_unicode"}
    collector.stop()
    landed = sorted(r["request_id"] for r in landed_records(landing_dir, "interactions"))
    assert landed == sorted([f"c{i}" for i in range(12)] + ["poisoned-batch"])


def test_a_reused_idempotency_key_is_bound_to_its_token_and_body(serve, landing_dir):
    key = {"Idempotency-Key": "batch-0001"}
    first_batch, other_batch = [interaction("r1")], [interaction("r2")]
    collector = serve()
    assert collector.post("/v1/interactions", first_batch, headers=key) == (
        202,
        {"accepted": 1, "ids": ["r1"]},
    )
    status, body = collector.post("/v1/interactions", other_batch, headers=key)
    assert status == 422
    assert body["detail"].startswith("Idempotency-Key 'batch-0001' was first used with a different")
    status, body = collector.post("/v1/interactions", first_batch, headers=key, token=OTHER_TOKEN)
    assert (status, body["detail"]) == (
        422,
        "Idempotency-Key 'batch-0001' was first used by another token; use a key of your own",
    )
    collector.stop()

    again = serve()  # the binding survives a restart
    assert again.post("/v1/interactions", other_batch, headers=key)[0] == 422
    assert again.post("/v1/interactions", first_batch, headers=key) == (
        202,
        {"accepted": 1, "ids": ["r1"]},
    )
    # The same key on another endpoint is another key.
    assert again.post("/v1/feedback", [], headers=key)[1]["detail"] == "the batch is empty"
    again.stop()
    assert [r["request_id"] for r in landed_records(landing_dir, "interactions")] == ["r1"]


def test_a_partial_answer_is_replayed_for_its_key(serve, landing_dir):
    key = {"Idempotency-Key": "mixed-0001"}
    body = _batch_body(BAD_RECORDS["ts_not_iso"])
    collector = serve()
    first = collector.post("/v1/interactions", body, headers=key)
    assert first[0] == 207
    assert collector.post("/v1/interactions", body, headers=key) == first
    collector.stop()
    assert [r["request_id"] for r in landed_records(landing_dir, "interactions")] == ["good"]
