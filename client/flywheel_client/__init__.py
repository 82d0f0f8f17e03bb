"""A small client for the Flywheel collector: log from an app without waiting on the network.

    client = FlywheelClient("http://collector:8800", token=os.environ["FLYWHEEL_TOKEN"])
    request_id = client.log_interaction(prompt=..., response=..., model_version="bot-1")
    client.log_feedback(request_id, "thumbs_up", user_id="u-1")
    client.close()  # at shutdown: sends what is buffered

Records are buffered per endpoint and sent in batches from a background thread, every
`flush_seconds` or once `batch_size` are waiting. Each batch carries an idempotency key and is
retried with the same key, so a retried batch is stored once. Standard library only.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime

log = logging.getLogger(__name__)


class FlywheelClient:
    def __init__(
        self,
        url: str,
        token: str,
        *,
        batch_size: int = 100,
        flush_seconds: float = 1.0,
        retries: int = 5,
        timeout: float = 10.0,
    ):
        self.url = url.rstrip("/")
        self.token = token
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.retries = retries
        self.timeout = timeout
        self.sent = 0
        self.failed: list[tuple[str, list[dict], str]] = []  # (endpoint, records, error)
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="flywheel-client", daemon=True)
        self._thread.start()

    def log_interaction(self, *, response: str, model_version: str, **fields) -> str:
        """Queue one interaction (`prompt` or `messages`, plus any contract field); returns its
        request_id (generated unless given)."""
        record = {"request_id": fields.pop("request_id", None) or str(uuid.uuid4())}
        record.update(ts=fields.pop("ts", None) or _now(), response=response)
        record.update(model_version=model_version, **fields)
        self._queue.put(("interactions", record))
        return record["request_id"]

    def log_feedback(self, request_id: str, kind: str, **fields) -> str:
        """Queue feedback on a request (`thumbs_up`, `rating` with `score`, `edit` with
        `correction`, ...); returns its feedback_id."""
        record = {"feedback_id": fields.pop("feedback_id", None) or str(uuid.uuid4())}
        record.update(request_id=request_id, ts=fields.pop("ts", None) or _now(), kind=kind)
        record.update(fields)
        self._queue.put(("feedback", record))
        return record["feedback_id"]

    def log_annotation(self, request_id: str, operator: str, **fields) -> str:
        record = {"annotation_id": fields.pop("annotation_id", None) or str(uuid.uuid4())}
        record.update(request_id=request_id, ts=fields.pop("ts", None) or _now())
        record.update(operator=operator, **fields)
        self._queue.put(("annotations", record))
        return record["annotation_id"]

    def flush(self) -> None:
        """Send everything queued so far and wait for it."""
        done = threading.Event()
        self._queue.put(("flush", done))
        done.wait()

    def close(self) -> None:
        self.flush()
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        buffers: dict[str, list[dict]] = {}
        deadline = time.monotonic() + self.flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = ("tick", None)
            if item is None:
                return
            kind, payload = item
            if kind in ("flush", "tick"):
                for endpoint in list(buffers):
                    self._send(endpoint, buffers.pop(endpoint))
                deadline = time.monotonic() + self.flush_seconds
                if kind == "flush":
                    payload.set()
                continue
            batch = buffers.setdefault(kind, [])
            batch.append(payload)
            if len(batch) >= self.batch_size:
                self._send(kind, buffers.pop(kind))

    def _send(self, endpoint: str, records: list[dict]) -> None:
        body = json.dumps(records).encode()
        key = str(uuid.uuid4())
        error = ""
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(
                f"{self.url}/v1/{endpoint}",
                data=body,
                method="POST",
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": key,
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout):
                    self.sent += len(records)
                    return
            except urllib.error.HTTPError as exc:
                error = f"{exc.code}: {exc.read().decode(errors='replace')[:500]}"
                if exc.code < 500:  # the batch itself is wrong: retrying will not help
                    break
            except OSError as exc:  # connection refused, reset, timeout
                error = str(exc)
            time.sleep(min(0.2 * 2**attempt, 5.0))
        log.error("flywheel: %d %s record(s) not sent: %s", len(records), endpoint, error)
        self.failed.append((endpoint, records, error))


def _now() -> str:
    return datetime.now(UTC).isoformat()
