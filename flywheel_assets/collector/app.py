"""The HTTP collector: apps POST interactions, feedback and annotations; they land as JSON Lines.

Each record is checked on its own against the landing contract (the same validator ingestion
uses) and encoded before it joins a group commit, so one client's bad record never touches
another's request. Every record valid: 202 with the ids. Some invalid: the valid ones are stored
and 207 names each refused record with its reason. None valid: 422, nothing stored. A write that
cannot be made durable (a full disk) answers 503 with Retry-After and stores nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from ..contract.landing import LandingZone
from ..contract.records import STREAMS_BY_NAME, Reason, Rejection, validate_record
from .idempotency import Fingerprint, IdempotencyStore, KeyReused, check
from .writer import LandingWriter, SpoolWriteError, WriterSettings

log = logging.getLogger(__name__)

ENDPOINTS = {"interactions": "interactions", "feedback": "feedback", "annotations": "annotations"}
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Python refuses longer integer literals (sys.int_info.default_max_str_digits).
MAX_INT_DIGITS = 4300
RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True)
class CollectorSettings:
    landing: str
    tokens: Sequence[str]
    spool_dir: Path
    max_body_bytes: int = 1 << 20
    max_records: int = 1000
    # A record nested deeper than this is refused (a chat with metadata needs a handful).
    max_depth: int = 64
    # A client must send its whole body within this many seconds of its headers.
    body_timeout_seconds: float = 30.0
    writer: WriterSettings = field(default_factory=WriterSettings)

    def __post_init__(self):
        if not self.tokens or not all(len(t) >= 16 for t in self.tokens):
            raise ValueError(
                "the collector needs at least one bearer token of 16 or more characters"
            )


class Refused(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        errors: list | None = None,
        *,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status, self.detail, self.errors, self.headers = status, detail, errors, headers


def create_app(settings: CollectorSettings) -> FastAPI:
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state["writer"] = LandingWriter(
            LandingZone(settings.landing), settings.spool_dir, settings.writer
        )
        state["keys"] = IdempotencyStore(settings.spool_dir / "idempotency.jsonl")
        state["pending"] = {}
        yield
        await asyncio.to_thread(state["writer"].close)

    app = FastAPI(
        title="Flywheel collector",
        version="1",
        description="Send interactions, feedback and annotations in the landing contract "
        "(docs/CONTRACT.md): one JSON object or a JSON array of them per request, with "
        "`Authorization: Bearer <token>` and, for safe retries, an `Idempotency-Key` header.",
        lifespan=lifespan,
    )

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused):
        body: dict[str, Any] = {"detail": exc.detail}
        if exc.errors is not None:
            body.update(accepted=0, ids=[], errors=exc.errors)
        headers = dict(exc.headers or {})
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(body, status_code=exc.status, headers=headers or None)

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict:
        return {"status": "ok"}

    for path, stream in ENDPOINTS.items():
        app.add_api_route(
            f"/v1/{path}",
            _endpoint(stream, settings, state),
            methods=["POST"],
            status_code=202,
            summary=f"Accept {stream} records",
            description=f"One `{stream}` record or an array of up to {settings.max_records}. "
            "202: `{accepted, ids}`, every record stored. 207: `{accepted, ids, detail, errors: "
            "[{index, id, reason_code, reason}]}`, the valid records stored and the listed ones "
            "not. 422: `{detail, errors}`, no record valid, nothing stored. 400 for a body that "
            "is not JSON, 401 without a valid token, 408 for a body sent too slowly, 413 over "
            "the size limits, 422 for an Idempotency-Key reused with another body or token, "
            "503 (with Retry-After) when the records could not be made durable.",
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"type": "object"},
                                    {"type": "array", "items": {"type": "object"}},
                                ]
                            }
                        }
                    },
                }
            },
        )
    return app


def _endpoint(stream_name: str, settings: CollectorSettings, state: dict):
    stream = STREAMS_BY_NAME[stream_name]

    async def accept(request: Request) -> JSONResponse:
        token = _authorize(request, settings.tokens)
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None and not 1 <= len(key) <= 200:
            raise Refused(400, f"{IDEMPOTENCY_HEADER} must be 1 to 200 characters")
        body = await _read_body(request, settings)
        if key is None:
            return _answer(*await _store(body, stream, settings, state))
        fingerprint = Fingerprint.of(token, body)
        try:
            seen = state["keys"].lookup(stream_name, key, fingerprint)
            if seen is not None:
                return _answer(seen.status or 202, seen.response)
            pending = state["pending"].get((stream_name, key))
            if pending is not None:  # the same batch is being written right now
                check(key, pending[1], fingerprint)
                return _answer(*await asyncio.shield(pending[0]))
        except KeyReused as exc:
            raise Refused(422, str(exc)) from None
        future = asyncio.get_running_loop().create_future()
        state["pending"][(stream_name, key)] = (future, fingerprint)
        try:
            status, answer = await _store(body, stream, settings, state)
        except BaseException as exc:
            state["pending"].pop((stream_name, key))
            future.set_exception(exc)
            future.exception()  # retrieved: the waiting duplicate gets it, or nobody
            raise
        state["keys"].put(stream_name, key, answer, status=status, fingerprint=fingerprint)
        state["pending"].pop((stream_name, key))
        future.set_result((status, answer))
        return _answer(status, answer)

    accept.__name__ = f"post_{stream_name}"
    return accept


def _answer(status: int, body: dict) -> JSONResponse:
    return JSONResponse(body, status_code=status)


# An oversized body is still read (and dropped) up to this size before the 413 goes out: a client
# that is still sending when the answer comes sees a broken pipe instead of the reason.
DRAIN_BYTES = 16 << 20


async def _store(body: bytes, stream, settings: CollectorSettings, state: dict) -> tuple[int, dict]:
    payload = _parse(body)
    records = payload if isinstance(payload, list) else [payload]
    if not records:
        raise Refused(422, "the batch is empty")
    if len(records) > settings.max_records:
        raise Refused(413, f"{len(records)} records; at most {settings.max_records} per request")
    errors, ids, lines = [], [], []
    for index, record in enumerate(records):
        try:
            lines.append(encode_record(stream, record, max_depth=settings.max_depth))
        except Rejection as rej:
            error = {"index": index, "reason_code": rej.code.value, "reason": rej.detail}
            if isinstance(record, dict) and isinstance(record.get(stream.id_field), str):
                error["id"] = record[stream.id_field]
            errors.append(error)
            continue
        ids.append(record[stream.id_field])
    if not lines:
        raise Refused(
            422, f"{len(errors)} of {len(records)} record(s) invalid; none stored", errors
        )
    try:
        await asyncio.wrap_future(state["writer"].submit(stream.name, lines))
    except SpoolWriteError as exc:
        log.error("%s: %d record(s) refused with 503: %s", stream.name, len(lines), exc)
        raise Refused(
            503,
            f"{exc}; nothing from this request was stored, retry after {RETRY_AFTER_SECONDS} s",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
    answer: dict[str, Any] = {"accepted": len(ids), "ids": ids}
    if not errors:
        return 202, answer
    answer["detail"] = (
        f"{len(errors)} of {len(records)} record(s) invalid and not stored; "
        f"the other {len(ids)} stored"
    )
    answer["errors"] = errors
    return 207, answer


class _NotJson:
    """A value json.loads would take but the contract does not: refused per record."""

    def __init__(self, reason: str):
        self.reason = reason


def _big_int(text: str) -> int | _NotJson:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        return _NotJson(f"an integer of {len(text.lstrip('-'))} digits; at most {MAX_INT_DIGITS}")
    return int(text)


def _constant(name: str) -> _NotJson:
    return _NotJson(f"{name} is not a JSON number")


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body, parse_int=_big_int, parse_constant=_constant)
    except RecursionError:
        raise Refused(400, "the body is nested too deeply to parse") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Refused(400, f"the body is not JSON: {exc}") from None


def encode_record(stream, record: Any, *, max_depth: int) -> bytes:
    """The record as the landing line ingestion will read, or a Rejection saying why not."""
    if not isinstance(record, dict):
        raise Rejection(Reason.NOT_OBJECT, f"expected a JSON object, got {_json_type(record)}")
    _screen(record, max_depth)
    try:
        validate_record(stream, dict(record))
    except Rejection:
        raise
    except (ArithmeticError, ValueError, TypeError) as exc:  # a value past what Python can hold
        raise Rejection(Reason.BAD_VALUE, f"a value is out of range: {exc}") from None
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    try:
        return line.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Rejection(
            Reason.NOT_UTF8,
            f"a string holds the unpaired surrogate {line[exc.start]!r}, which UTF-8 cannot encode",
        ) from None


def _screen(record: dict, max_depth: int) -> None:
    stack: list[tuple[Any, int]] = [(record, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                raise Rejection(Reason.BAD_VALUE, f"nested more than {max_depth} levels deep")
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
        elif isinstance(value, _NotJson):
            raise Rejection(Reason.BAD_VALUE, value.reason)


def _json_type(value: Any) -> str:
    names = {str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), "array" if isinstance(value, list) else type(value).__name__)


async def _read_body(request: Request, settings: CollectorSettings) -> bytes:
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    refusal = None
    if declared is not None and declared.isdigit() and int(declared) > limit:
        refusal = f"the body is {declared} bytes; at most {limit}"
    chunks, size = [], 0
    try:
        async with asyncio.timeout(settings.body_timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if refusal is None and size > limit:
                    refusal = f"the body is over {limit} bytes"
                if refusal is None:
                    chunks.append(chunk)
                elif size > DRAIN_BYTES:
                    break
    except TimeoutError:
        raise Refused(
            408,
            f"the body did not arrive within {settings.body_timeout_seconds:g} s",
            headers={"Connection": "close"},
        ) from None
    except ClientDisconnect:
        raise Refused(400, "the client disconnected before the body was complete") from None
    if refusal is not None:
        raise Refused(413, refusal)
    return b"".join(chunks)


def _authorize(request: Request, tokens: Sequence[str]) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Refused(401, "missing bearer token")
    if not any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
        raise Refused(401, "invalid bearer token")
    return token
