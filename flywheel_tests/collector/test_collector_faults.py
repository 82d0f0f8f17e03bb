"""The collector under faults, as a real `flywheel collect` process: a full disk, a write torn
by a crash, a client that stalls. Every record answered 202 lands exactly once; nothing that was
not acknowledged lands half-written."""

from __future__ import annotations

import json
import socket
import time

import pytest

from flywheel_assets.collector.server import landed_records, post_json, start_collector
from flywheel_tests.support.collector import TOKEN
from flywheel_tests.support.records import interaction

pytestmark = pytest.mark.slow


def _record(i: int) -> dict:
    # Two-byte characters throughout, so a cut write splits one.
    return interaction(f"r-{i:04d}", response="é" * 700 + f" {i}")


def test_a_full_disk_answers_503_and_every_acknowledged_record_lands(landing_dir, tmp_path):
    # RLIMIT_FSIZE: no file the collector writes may pass 9 kB, so its spool fills up every few
    # records, a write is cut short mid-character, and the next write must still work.
    full = start_collector(landing_dir, TOKEN, "--max-file-seconds", "3600", max_file_bytes=9_000)
    answers = {}
    try:
        for i in range(40):
            status, body, headers = post_json(f"{full.url}/v1/interactions", _record(i), TOKEN)
            answers[i] = status
            if status == 503:
                assert headers.get("Retry-After") == "1"
                assert "nothing from this request was stored" in body["detail"]
    finally:
        full.stop(kill=True)  # a crash with records still in the spool
    assert set(answers.values()) == {202, 503}, answers
    first_refused = min(i for i, s in answers.items() if s == 503)
    assert any(s == 202 for i, s in answers.items() if i > first_refused)

    restarted = start_collector(landing_dir, TOKEN)  # publishes what the crash left
    restarted.stop()
    landed = [r["request_id"] for r in landed_records(landing_dir, "interactions")]
    acknowledged = [f"r-{i:04d}" for i, s in answers.items() if s == 202]
    assert sorted(landed) == acknowledged  # each exactly once, nothing refused, nothing torn
    assert not list(landing_dir.rglob(".*"))


def test_a_write_torn_by_a_crash_is_dropped_and_the_collector_starts(landing_dir, tmp_path):
    crashed = start_collector(landing_dir, TOKEN, "--max-file-seconds", "3600")
    assert crashed.post("/v1/interactions", [_record(1), _record(2)])[0] == 202
    crashed.stop(kill=True)
    [spool] = [p for p in (landing_dir / "_collector" / "interactions").iterdir()]
    with open(spool, "ab") as f:  # a write the crash cut off inside a two-byte character
        f.write(json.dumps(_record(3), ensure_ascii=False).encode()[:200] + "é".encode()[:1])

    restarted = start_collector(landing_dir, TOKEN, log=tmp_path / "collector.log")
    try:
        assert restarted.post("/v1/interactions", _record(4))[0] == 202
    finally:
        restarted.stop()
    landed = [r["request_id"] for r in landed_records(landing_dir, "interactions")]
    assert sorted(landed) == ["r-0001", "r-0002", "r-0004"]


def test_a_client_that_stalls_mid_body_is_answered_408_and_cut_off(landing_dir):
    collector = start_collector(landing_dir, TOKEN, "--body-timeout", "1")
    host, port = collector.url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/interactions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n".encode()
                + b'[{"request_id": '
            )
            started = time.monotonic()
            received = b""
            while chunk := sock.recv(4096):  # until the collector closes the connection
                received += chunk
            waited = time.monotonic() - started
        assert received.startswith(b"HTTP/1.1 408 ")
        assert b"the body did not arrive within 1 s" in received
        assert waited < 5
        # The collector still serves everyone else.
        assert collector.post("/v1/interactions", interaction("r1"))[0] == 202
    finally:
        collector.stop()
    assert [r["request_id"] for r in landed_records(landing_dir, "interactions")] == ["r1"]
