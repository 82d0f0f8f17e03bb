"""The HTTP collector: apps POST interactions, feedback and annotations; they land as JSON Lines.

Each record is checked against the landing contract (the same validator ingestion uses). A request
is all or nothing: every record valid gives 202 with the ids, any invalid record gives 422 with a
reason per record and stores nothing, so a client can fix and resend the batch as a whole.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..contract.landing import LandingZone
from ..contract.records import STREAMS_BY_NAME, Rejection, validate_record
from .idempotency import IdempotencyStore
from .writer import LandingWriter, WriterSettings

ENDPOINTS = {"interactions": "interactions", "feedback": "feedback", "annotations": "annotations"}
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class CollectorSettings:
    landing: str
    tokens: Sequence[str]
    spool_dir: Path
    max_body_bytes: int = 1 << 20
    max_records: int = 1000
    writer: WriterSettings = field(default_factory=WriterSettings)

    def __post_init__(self):
        if not self.tokens or not all(len(t) >= 16 for t in self.tokens):
            raise ValueError(
                "the collector needs at least one bearer token of 16 or more characters"
            )


class Refused(Exception):
    def __init__(self, status: int, detail: str, errors: list | None = None):
        super().__init__(detail)
        self.status, self.detail, self.errors = status, detail, errors


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
        body = {"detail": exc.detail}
        if exc.errors is not None:
            body["errors"] = exc.errors
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(body, status_code=exc.status, headers=headers)

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
            "202: `{accepted, ids}`. 422: `{detail, errors: [{index, reason_code, reason}]}`, "
            "nothing stored. 401 without a valid token, 413 over the size limits.",
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

    async def accept(request: Request) -> dict:
        _authorize(request, settings.tokens)
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is not None:
            if not 1 <= len(key) <= 200:
                raise Refused(400, f"{IDEMPOTENCY_HEADER} must be 1 to 200 characters")
            seen = state["keys"].get(stream_name, key)
            if seen is not None:
                return seen
            pending = state["pending"].get((stream_name, key))
            if pending is not None:  # the same batch is being written right now
                return await asyncio.shield(pending)
            state["pending"][(stream_name, key)] = asyncio.get_running_loop().create_future()
        try:
            response = await _store(request, stream, settings, state)
        except BaseException as exc:
            if key is not None:
                future = state["pending"].pop((stream_name, key))
                future.set_exception(exc)
                future.exception()  # retrieved: the waiting duplicate gets it, or nobody
            raise
        if key is not None:
            state["keys"].put(stream_name, key, response)
            state["pending"].pop((stream_name, key)).set_result(response)
        return response

    accept.__name__ = f"post_{stream_name}"
    return accept


# An oversized body is still read (and dropped) up to this size before the 413 goes out: a client
# that is still sending when the answer comes sees a broken pipe instead of the reason.
DRAIN_BYTES = 16 << 20


async def _store(request: Request, stream, settings: CollectorSettings, state: dict) -> dict:
    body = await _read_body(request, settings.max_body_bytes)
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Refused(400, f"the body is not JSON: {exc}") from None
    records = payload if isinstance(payload, list) else [payload]
    if not records:
        raise Refused(422, "the batch is empty")
    if len(records) > settings.max_records:
        raise Refused(413, f"{len(records)} records; at most {settings.max_records} per request")
    errors, ids = [], []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            errors.append({"index": index, "reason_code": "not_object", "reason": "not an object"})
            continue
        try:
            validate_record(stream, dict(record))
        except Rejection as rej:
            errors.append({"index": index, "reason_code": rej.code.value, "reason": rej.detail})
            continue
        ids.append(record[stream.id_field])
    if errors:
        raise Refused(
            422, f"{len(errors)} of {len(records)} record(s) invalid; none stored", errors
        )
    lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in records]
    await asyncio.wrap_future(state["writer"].submit(stream.name, lines))
    return {"accepted": len(ids), "ids": ids}


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    refusal = None
    if declared is not None and declared.isdigit() and int(declared) > limit:
        refusal = f"the body is {declared} bytes; at most {limit}"
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if refusal is None and size > limit:
            refusal = f"the body is over {limit} bytes"
        if refusal is None:
            chunks.append(chunk)
        elif size > DRAIN_BYTES:
            break
    if refusal is not None:
        raise Refused(413, refusal)
    return b"".join(chunks)


def _authorize(request: Request, tokens: Sequence[str]) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Refused(401, "missing bearer token")
    if not any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
        raise Refused(401, "invalid bearer token")
