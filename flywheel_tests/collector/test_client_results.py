"""FlywheelClient against a real collector: per-record results, batches split to fit, retries
with one key. Retry timing is checked against a plain HTTP server that answers from a script."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flywheel_client import FlywheelClient, Rejected

from flywheel_assets.collector.server import free_port, landed_records, start_collector
from flywheel_tests.support.collector import TOKEN


def test_valid_records_of_a_mixed_batch_are_stored_and_only_the_bad_ones_come_back(
    serve, landing_dir
):
    collector = serve()
    client = FlywheelClient(collector.url, TOKEN, flush_seconds=60)
    good = [
        client.log_interaction(prompt=f"q{i}?", response="a", model_version="m") for i in range(3)
    ]
    bad = client.log_interaction(prompt="q?", response="", model_version="m")
    refused = client.close()
    assert (client.sent, client.failed) == (3, [])
    [rejected] = refused
    assert isinstance(rejected, Rejected) and client.rejected == [rejected]
    assert (rejected.endpoint, rejected.record["request_id"]) == ("interactions", bad)
    assert (rejected.reason_code, rejected.reason) == ("bad_value", "field 'response' is empty")
    collector.stop()
    assert sorted(r["request_id"] for r in landed_records(landing_dir, "interactions")) == sorted(
        good
    )


def test_a_batch_over_the_size_limit_is_split_until_it_fits(serve, landing_dir):
    collector = serve(max_body_bytes=8 << 10)
    client = FlywheelClient(collector.url, TOKEN, batch_size=40, flush_seconds=60)
    ids = [
        client.log_interaction(prompt="q?", response="x" * 1000, model_version="m")
        for _ in range(40)
    ]
    too_big = client.log_interaction(prompt="q?", response="y" * (10 << 10), model_version="m")
    refused = client.close()
    assert (client.sent, client.failed) == (40, [])
    assert [(r.record["request_id"], r.reason_code) for r in refused] == [(too_big, "too_large")]
    collector.stop()
    landed = [r["request_id"] for r in landed_records(landing_dir, "interactions")]
    assert sorted(landed) == sorted(ids)


def test_a_record_json_cannot_carry_raises_in_the_app_and_the_client_goes_on(serve, landing_dir):
    collector = serve()
    client = FlywheelClient(collector.url, TOKEN, flush_seconds=60)
    with pytest.raises(TypeError):
        client.log_interaction(prompt="q?", response="a", model_version="m", at=datetime.now(UTC))
    with pytest.raises(ValueError):
        client.log_interaction(prompt="q?", response="a", model_version="m", score=float("nan"))
    rid = client.log_interaction(prompt="q?", response="a", model_version="m")
    assert client.close() == []
    assert (client.sent, client.failed) == (1, [])
    collector.stop()
    assert [r["request_id"] for r in landed_records(landing_dir, "interactions")] == [rid]


@pytest.mark.slow
def test_records_logged_before_the_collector_is_up_land_once_it_is(landing_dir):
    port = free_port()
    client = FlywheelClient(f"http://127.0.0.1:{port}", TOKEN, flush_seconds=0.1, retries=8)
    ids = [client.log_interaction(prompt="q?", response="a", model_version="m") for _ in range(5)]
    time.sleep(0.5)  # the first batch is refused a connection and waits to retry
    collector = start_collector(landing_dir, TOKEN, port=port)
    try:
        assert client.close() == []
        assert (client.sent, client.failed) == (5, [])
    finally:
        collector.stop()
    assert sorted(r["request_id"] for r in landed_records(landing_dir, "interactions")) == sorted(
        ids
    )


class _Scripted(BaseHTTPRequestHandler):
    """Answers each POST with the next (status, headers) of `script`; records what it got."""

    script: list[tuple[int, dict]] = []
    seen: list[tuple[float, str, bytes]] = []

    def do_POST(self):  # noqa: N802 - the http.server hook
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((time.monotonic(), self.headers["Idempotency-Key"], body))
        status, headers = self.script.pop(0)
        records = json.loads(body)
        answer = {"accepted": len(records), "ids": [r["request_id"] for r in records]}
        data = json.dumps(answer if status == 202 else {"detail": "busy"}).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_a_batch_is_retried_with_one_key_and_retry_after_is_honoured():
    _Scripted.script = [
        (503, {"Retry-After": "1"}),
        (429, {"Retry-After": "0"}),
        (500, {}),
        (202, {}),
    ]
    _Scripted.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        client = FlywheelClient(url, TOKEN, flush_seconds=60, backoff_seconds=0.05)
        client.log_interaction(prompt="q?", response="a", model_version="m")
        assert client.close() == []
    finally:
        server.shutdown()
    assert (client.sent, client.failed) == (1, [])
    times, keys, bodies = zip(*_Scripted.seen, strict=True)
    assert len(times) == 4 and len(set(keys)) == 1 and len(set(bodies)) == 1
    assert times[1] - times[0] >= 1.0  # Retry-After: 1
    assert times[2] - times[1] < 0.5  # Retry-After: 0, then a jittered backoff of at most 0.1 s
