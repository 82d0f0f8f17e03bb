"""Record builders for the landing streams, and a writer of landing files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

# The hash key tests set in FLYWHEEL_HASH_KEY (see the `hash_key` fixture).
TEST_HASH_KEY = "a-test-secret-of-enough-length"


def write_lines(root: Path, rel: str, lines: list) -> Path:
    """Write landing lines: dicts become JSON, str and bytes are written as they are."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = b"".join(_encode(line) + b"\n" for line in lines)
    path.write_bytes(gzip.compress(raw, mtime=0) if rel.endswith(".gz") else raw)
    return path


def _encode(line) -> bytes:
    if isinstance(line, bytes):
        return line
    if isinstance(line, str):
        return line.encode()
    return json.dumps(line).encode()


def interaction(request_id: str, **over) -> dict:
    record = {
        "request_id": request_id,
        "ts": "2026-11-20T10:00:00+00:00",
        "prompt": f"question {request_id}?",
        "response": f"answer {request_id}.",
        "model_version": "m-2026-11-01",
    }
    record.update(over)
    return record


def drift_event(event_id: str, ts: str, **over) -> dict:
    record = {"event_id": event_id, "ts": ts, "metric": "neg", "value": 0.3, "threshold": 0.2}
    record.update(over)
    return record


def feedback(feedback_id: str, request_id: str, kind: str = "thumbs_up", **over) -> dict:
    record = {
        "feedback_id": feedback_id,
        "request_id": request_id,
        "ts": "2026-11-20T10:05:00Z",
        "kind": kind,
    }
    record.update(over)
    return record
