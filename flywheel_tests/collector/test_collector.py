"""The HTTP collector as apps use it: a real `flywheel collect` server on loopback, real requests,
real landing files, then a real ingest of what it wrote."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid

import pytest
import uvicorn
from fastapi import FastAPI, Request
from flywheel_client import FlywheelClient

from flywheel_assets.collector.server import free_port, landed_records, start_collector
from flywheel_tests.support.cli import flywheel
from flywheel_tests.support.records import feedback, interaction
from flywheel_tests.support.runs import run_job

TOKEN = "collector-test-token-0123456789"
pytestmark = pytest.mark.slow


@pytest.fixture
def collector(landing_dir, tmp_path):
    running = start_collector(landing_dir, TOKEN, log=tmp_path / "collector.log")
    yield running
    running.stop(kill=True)


def test_records_are_acknowledged_landed_and_ingested(collector, landing_dir, lake):
    status, body = collector.post("/v1/interactions", interaction("r1"))
    assert (status, body) == (202, {"accepted": 1, "ids": ["r1"]})
    batch = [feedback("f1", "r1"), feedback("f2", "r1", "rating", score=5)]
    assert collector.post("/v1/feedback", batch) == (202, {"accepted": 2, "ids": ["f1", "f2"]})
    note = {"annotation_id": "a1", "request_id": "r1", "ts": "2026-11-20T11:00:00Z"}
    note["operator"] = "ops@example.com"
    assert collector.post("/v1/annotations", note)[0] == 202

    collector.stop()  # a graceful stop publishes every open file
    assert [r["request_id"] for r in landed_records(landing_dir, "interactions")] == ["r1"]
    assert [r["feedback_id"] for r in landed_records(landing_dir, "feedback")] == ["f1", "f2"]
    assert not list(landing_dir.rglob(".*"))  # nothing half-written left visible to ingestion
    assert run_job("ingest_job", landing_dir, lake).success
    assert lake.read("raw_logs")["request_id"].to_pylist() == ["r1"]
    assert sorted(lake.read("raw_feedback")["feedback_id"].to_pylist()) == ["f1", "f2"]
    assert lake.read("annotations").num_rows == 1


def test_invalid_records_are_refused_with_a_reason_each_and_the_valid_ones_stored(
    collector, landing_dir
):
    batch = [
        interaction("ok-1"),
        interaction("bad-1", response=None),
        interaction("bad-2", ts="yesterday"),
        "not an object",
    ]
    status, body = collector.post("/v1/interactions", batch)
    assert status == 207
    assert (body["accepted"], body["ids"]) == (1, ["ok-1"])
    assert body["detail"] == "3 of 4 record(s) invalid and not stored; the other 1 stored"
    assert [(e["index"], e["reason_code"]) for e in body["errors"]] == [
        (1, "missing_field"),
        (2, "bad_ts"),
        (3, "not_object"),
    ]
    collector.stop()
    assert [r["request_id"] for r in landed_records(landing_dir, "interactions")] == ["ok-1"]


@pytest.mark.parametrize(
    ("headers", "token", "reason"),
    [
        ({}, "", "missing bearer token"),
        ({}, "wrong-token-of-enough-length", "invalid bearer token"),
    ],
)
def test_requests_without_a_valid_token_are_refused(collector, headers, token, reason):
    status, body = collector.post("/v1/interactions", interaction("r1"), token=token)
    assert (status, body["detail"]) == (401, reason)


def test_bad_bodies_get_specific_errors(collector, landing_dir):
    assert collector.post("/v1/interactions", b"{not json")[0] == 400
    assert collector.post("/v1/interactions", [])[1]["detail"] == "the batch is empty"
    status, body = collector.post("/v1/interactions", [interaction(f"r{i}") for i in range(1001)])
    assert (status, body["detail"]) == (413, "1001 records; at most 1000 per request")
    huge = interaction("big", response="x" * (2 << 20))
    status, body = collector.post("/v1/interactions", huge)
    assert status == 413 and "at most 1048576" in body["detail"]
    key = {"Idempotency-Key": "k" * 201}
    assert collector.post("/v1/interactions", interaction("r1"), headers=key)[0] == 400
    collector.stop()
    assert landed_records(landing_dir, "interactions") == []


def test_a_retried_batch_is_stored_once_even_across_a_restart(landing_dir, tmp_path):
    key = {"Idempotency-Key": "batch-0001"}
    batch = [interaction("r1"), interaction("r2")]
    first = start_collector(landing_dir, TOKEN)
    try:
        assert first.post("/v1/interactions", batch, headers=key) == (
            202,
            {"accepted": 2, "ids": ["r1", "r2"]},
        )
        assert first.post("/v1/interactions", batch, headers=key)[0] == 202
    finally:
        first.stop()
    second = start_collector(landing_dir, TOKEN)
    try:
        assert second.post("/v1/interactions", batch, headers=key) == (
            202,
            {"accepted": 2, "ids": ["r1", "r2"]},
        )
    finally:
        second.stop()
    assert [r["request_id"] for r in landed_records(landing_dir, "interactions")] == ["r1", "r2"]


def test_files_rotate_while_running_and_a_crash_loses_no_acknowledged_record(landing_dir):
    running = start_collector(landing_dir, TOKEN, "--max-file-seconds", "0.5")
    try:
        assert running.post("/v1/interactions", interaction("r1"))[0] == 202
        deadline = time.monotonic() + 10
        while not landed_records(landing_dir, "interactions") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [r["request_id"] for r in landed_records(landing_dir, "interactions")] == ["r1"]
    finally:
        running.stop()

    crashing = start_collector(landing_dir, TOKEN, "--max-file-seconds", "3600")
    assert crashing.post("/v1/interactions", interaction("r2"))[0] == 202
    crashing.stop(kill=True)  # acknowledged, still in the spool file
    assert [r["request_id"] for r in landed_records(landing_dir, "interactions")] == ["r1"]
    recovered = start_collector(landing_dir, TOKEN)  # publishes what the crash left
    recovered.stop()
    ids = sorted(r["request_id"] for r in landed_records(landing_dir, "interactions"))
    assert ids == ["r1", "r2"]


def test_the_openapi_spec_is_served(collector):
    with urllib.request.urlopen(f"{collector.url}/openapi.json") as response:
        spec = response.read().decode()
    for path in ("/v1/interactions", "/v1/feedback", "/v1/annotations"):
        assert f'"{path}"' in spec


def test_the_client_batches_in_the_background_and_loses_nothing(collector, landing_dir, lake):
    client = FlywheelClient(collector.url, TOKEN, batch_size=40, flush_seconds=0.2)
    ids = [
        client.log_interaction(prompt=f"question {i}?", response=f"answer {i}", model_version="m1")
        for i in range(250)
    ]
    for rid in ids[:100]:
        client.log_feedback(rid, "thumbs_up", user_id="u-1")
    client.close()
    assert (client.sent, client.failed) == (350, [])
    collector.stop()
    assert run_job("ingest_job", landing_dir, lake).success
    assert sorted(lake.read("raw_logs")["request_id"].to_pylist()) == sorted(ids)
    assert lake.read("raw_feedback").num_rows == 100


def test_the_client_reports_batches_it_could_not_send(collector):
    client = FlywheelClient(collector.url, "wrong-token-of-enough-length", retries=1)
    client.log_interaction(prompt="q?", response="a", model_version="m1")
    client.close()
    assert client.sent == 0
    [(endpoint, records, error)] = client.failed
    assert endpoint == "interactions" and len(records) == 1 and error.startswith("401")


def test_the_command_refuses_to_start_without_a_token(tmp_path):
    out = flywheel("collect", "--landing", str(tmp_path))
    assert out.returncode != 0
    assert "FLYWHEEL_COLLECTOR_TOKENS" in out.stderr


def test_the_load_test_lands_every_acknowledged_record(tmp_path):
    from benchmarks.collector_load import run_load

    result = run_load(tmp_path / "landing", seconds=2.0, threads=4, batch=20)
    assert result.acknowledged > 0
    assert (result.lost, result.duplicates, result.errors) == (0, 0, 0)
    assert result.landed == result.acknowledged


def test_an_app_logs_from_its_fastapi_middleware(collector, landing_dir):
    flywheel_client = FlywheelClient(collector.url, TOKEN, flush_seconds=0.1)
    app = FastAPI()

    @app.middleware("http")
    async def log_to_flywheel(request: Request, call_next):
        response = await call_next(request)
        chat = getattr(request.state, "chat", None)
        if chat is not None:
            flywheel_client.log_interaction(model_version="bot-1", **chat)
        return response

    @app.post("/chat")
    async def chat(request: Request) -> dict:
        prompt = (await request.json())["prompt"]
        answer = f"You asked: {prompt}" if prompt else ""  # an empty answer breaks the contract
        request.state.chat = {"request_id": str(uuid.uuid4()), "prompt": prompt}
        request.state.chat["response"] = answer
        return {"answer": answer, "request_id": request.state.chat["request_id"]}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        answers = []
        for i in range(6):
            prompt = f"question {i}?" if i != 3 else ""
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/chat",
                data=json.dumps({"prompt": prompt}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(req) as response:
                answers.append(json.loads(response.read()))
    finally:
        server.should_exit = True
        thread.join()
    [refused] = flywheel_client.close()  # the turn with the empty answer, and only it
    assert (refused.record["request_id"], refused.reason_code) == (
        answers[3]["request_id"],
        "bad_value",
    )
    collector.stop()
    landed = {r["request_id"]: r for r in landed_records(landing_dir, "interactions")}
    kept = [a for i, a in enumerate(answers) if i != 3]
    assert set(landed) == {a["request_id"] for a in kept}
    assert sorted(r["response"] for r in landed.values()) == sorted(a["answer"] for a in kept)


def test_a_landing_zone_that_cannot_be_written_delays_publishing_but_loses_nothing(landing_dir):
    blocker = landing_dir / "interactions"
    blocker.write_text("a file where the stream folder should be")
    running = start_collector(landing_dir, TOKEN, "--max-file-seconds", "0.3")
    try:
        assert running.post("/v1/interactions", interaction("r1"))[0] == 202
        time.sleep(1.5)  # several rotations that cannot publish
        # The collector still answers and still stores.
        assert running.post("/v1/interactions", interaction("r2"))[0] == 202
        blocker.unlink()
        deadline = time.monotonic() + 10
        while len(landed_records(landing_dir, "interactions")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        ids = sorted(r["request_id"] for r in landed_records(landing_dir, "interactions"))
        assert ids == ["r1", "r2"]
    finally:
        running.stop()
