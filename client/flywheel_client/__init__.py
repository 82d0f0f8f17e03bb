"""A small client for the Flywheel collector: log from an app without waiting on the network.

    client = FlywheelClient("http://collector:8800", token=os.environ["FLYWHEEL_TOKEN"])
    request_id = client.log_interaction(prompt=..., response=..., model_version="bot-1")
    client.log_feedback(request_id, "thumbs_up", user_id="u-1")
    client.close()  # at shutdown: sends what is buffered; returns the records refused

Records are encoded when they are logged (a record JSON cannot carry raises there, in the app)
and sent in batches from a background thread, every `flush_seconds` or once `batch_size` are
waiting. Each batch carries an idempotency key and is retried with the same key, with
exponential backoff and jitter, honouring Retry-After, so a retried batch is stored once. The
collector answers per record: valid records of a batch are stored even when others are refused,
and only the refused ones come back, in `rejected`, with the reason. A batch over the collector's
size limit is split. Standard library only.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

log = logging.getLogger(__name__)

# Answers worth another try with the same key: the batch may be fine, the collector was not.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# The longest Retry-After honoured; a larger one is cut to this.
MAX_RETRY_AFTER_SECONDS = 60.0


@dataclass(frozen=True)
class Rejected:
    """A record the collector refused: it was not stored and sending it again will not help."""

    endpoint: str
    record: dict
    reason_code: str
    reason: str


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
        backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 10.0,
    ):
        self.url = url.rstrip("/")
        self.token = token
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.retries = retries
        self.timeout = timeout
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.sent = 0
        # Batches not delivered after every retry (collector down, bad token): safe to resend.
        self.failed: list[tuple[str, list[dict], str]] = []  # (endpoint, records, error)
        # Records the collector refused, each with its reason; the rest of their batch is stored.
        self.rejected: list[Rejected] = []
        self._reported = 0
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="flywheel-client", daemon=True)
        self._thread.start()

    def log_interaction(self, *, response: str, model_version: str, **fields) -> str:
        """Queue one interaction (`prompt` or `messages`, plus any contract field); returns its
        request_id (generated unless given). Raises TypeError or ValueError for a record JSON
        cannot carry (an object that is not JSON, NaN, a lone surrogate)."""
        record = {"request_id": fields.pop("request_id", None) or str(uuid.uuid4())}
        record.update(ts=fields.pop("ts", None) or _now(), response=response)
        record.update(model_version=model_version, **fields)
        self._put("interactions", record)
        return record["request_id"]

    def log_feedback(self, request_id: str, kind: str, **fields) -> str:
        """Queue feedback on a request (`thumbs_up`, `rating` with `score`, `edit` with
        `correction`, ...); returns its feedback_id."""
        record = {"feedback_id": fields.pop("feedback_id", None) or str(uuid.uuid4())}
        record.update(request_id=request_id, ts=fields.pop("ts", None) or _now(), kind=kind)
        record.update(fields)
        self._put("feedback", record)
        return record["feedback_id"]

    def log_annotation(self, request_id: str, operator: str, **fields) -> str:
        record = {"annotation_id": fields.pop("annotation_id", None) or str(uuid.uuid4())}
        record.update(request_id=request_id, ts=fields.pop("ts", None) or _now())
        record.update(operator=operator, **fields)
        self._put("annotations", record)
        return record["annotation_id"]

    def flush(self) -> list[Rejected]:
        """Send everything queued so far and wait for it; returns the records refused since the
        previous flush (all of them stay in `rejected`)."""
        done = threading.Event()
        self._queue.put(("flush", done))
        done.wait()
        fresh = self.rejected[self._reported :]
        self._reported += len(fresh)
        return fresh

    def close(self) -> list[Rejected]:
        """Flush and stop; returns what `flush` returns."""
        fresh = self.flush()
        self._queue.put(None)
        self._thread.join()
        return fresh

    def _put(self, endpoint: str, record: dict) -> None:
        data = json.dumps(record, ensure_ascii=False, allow_nan=False).encode("utf-8")
        self._queue.put((endpoint, (record, data)))

    def _run(self) -> None:
        buffers: dict[str, list[tuple[dict, bytes]]] = {}
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

    def _send(self, endpoint: str, items: list[tuple[dict, bytes]]) -> None:
        try:
            self._deliver(endpoint, items)
        except Exception as exc:  # the thread must live on: later records still go out
            log.exception("flywheel: sending %d %s record(s) failed", len(items), endpoint)
            self.failed.append((endpoint, [record for record, _ in items], repr(exc)))

    def _deliver(self, endpoint: str, items: list[tuple[dict, bytes]]) -> None:
        body = b"[" + b",".join(data for _, data in items) + b"]"
        status, answer, error = self._post(endpoint, body)
        if status in (202, 207) and not isinstance(answer, dict):
            self.sent += len(items)  # stored; only the answer's details were lost
            return
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if status in (202, 207) or (status == 422 and errors):
            for e in errors or []:
                refused = Rejected(endpoint, items[e["index"]][0], e["reason_code"], e["reason"])
                log.warning("flywheel: %s record refused: %s", endpoint, refused.reason)
                self.rejected.append(refused)
            self.sent += answer.get("accepted", 0) if status != 422 else 0
            return
        if status == 413 and len(items) > 1:  # over the collector's limits: halve and resend
            half = len(items) // 2
            self._deliver(endpoint, items[:half])
            self._deliver(endpoint, items[half:])
            return
        if status == 413:
            detail = answer.get("detail", error) if isinstance(answer, dict) else error
            self.rejected.append(Rejected(endpoint, items[0][0], "too_large", detail))
            return
        log.error("flywheel: %d %s record(s) not sent: %s", len(items), endpoint, error)
        self.failed.append((endpoint, [record for record, _ in items], error))

    def _post(self, endpoint: str, body: bytes) -> tuple[int | None, object, str]:
        """POST one batch with one idempotency key, retried; (status, JSON answer, error)."""
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
            retry_after = None
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.status, _json(response.read()), ""
            except urllib.error.HTTPError as exc:
                text = exc.read()
                error = f"{exc.code}: {text.decode(errors='replace')[:500]}"
                if exc.code not in RETRY_STATUSES:
                    return exc.code, _json(text), error
                retry_after = _retry_after(exc.headers.get("Retry-After"))
            except OSError as exc:  # connection refused, reset, timeout
                error = str(exc)
            if attempt < self.retries:
                time.sleep(self._delay(attempt, retry_after))
        return None, None, error

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        # Full jitter: clients that failed together do not retry together.
        jitter = random.uniform(0, min(self.max_backoff_seconds, self.backoff_seconds * 2**attempt))
        if retry_after is None:
            return jitter
        return min(retry_after, MAX_RETRY_AFTER_SECONDS) + random.uniform(0, self.backoff_seconds)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _json(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat()
