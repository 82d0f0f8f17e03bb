"""The review web app: sign in with an operator token, work through the queue, see the dashboard.

Pages are rendered on the server (Jinja2, autoescaped) and work without JavaScript; a small script
adds keyboard shortcuts. Producer tokens are recognised and refused (403); unknown ones get 401.
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from ..collector.writer import LandingWriter, WriterSettings
from ..contract.landing import LandingZone
from ..settings import open_lake
from .annotations import Review, ReviewError, ReviewStore
from .auth import Sessions
from .dashboard import render_dashboard
from .queue import REASONS, SORTS, ReviewQueue

COOKIE = "flywheel_review"


@dataclass(frozen=True)
class ReviewSettings:
    lake: str
    landing: str
    operators: dict[str, str]  # token -> operator name
    spool_dir: Path
    producer_tokens: tuple[str, ...] = ()
    dagster_url: str = "http://127.0.0.1:3000"
    writer: WriterSettings = field(default_factory=lambda: WriterSettings(max_file_seconds=5.0))


class Denied(Exception):
    def __init__(self, status: int, detail: str, *, sign_in: bool = False):
        super().__init__(detail)
        self.status, self.detail = status, detail
        self.sign_in = sign_in  # no credentials at all: a browser is sent to the sign-in form


def create_app(settings: ReviewSettings) -> FastAPI:
    templates = Environment(
        loader=PackageLoader("flywheel_assets.review", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    sessions = Sessions(settings.operators, settings.producer_tokens)
    lake = open_lake(settings.lake)
    queue = ReviewQueue(lake)
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        writer = LandingWriter(
            LandingZone(settings.landing), settings.spool_dir, settings.writer, prefix="review"
        )
        state["store"] = ReviewStore(writer, settings.spool_dir)
        yield
        await asyncio.to_thread(writer.close)

    app = FastAPI(title="Flywheel review", docs_url=None, redoc_url=None, lifespan=lifespan)

    def page(name: str, request: Request, status: int = 200, **context) -> HTMLResponse:
        html = templates.get_template(name).render(request=request, **context)
        return HTMLResponse(html, status_code=status)

    @app.exception_handler(Denied)
    async def denied(request: Request, exc: Denied):
        if exc.sign_in and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/login?" + urlencode({"next": request.url.path}), 303)
        return page("denied.html", request, exc.status, detail=exc.detail, operator=None)

    def operator_of(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token:
            role = sessions.role_of_token(token)
            if role.producer:
                raise Denied(403, "a producer token cannot open the review page")
            if role.operator is None:
                raise Denied(401, "unknown token")
            return role.operator
        operator = sessions.operator_of_cookie(request.cookies.get(COOKIE))
        if operator is None:
            raise Denied(401, "sign in with your operator token", sign_in=True)
        return operator

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/queue", 303)

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: str = "/queue"):
        return page("login.html", request, next=_local(next), error=None, operator=None)

    @app.post("/login")
    async def login(request: Request, token: str = Form(""), next: str = Form("/queue")):
        role = sessions.role_of_token(token.strip())
        if role.producer:
            error, status = "That is a producer token: it cannot open the review page.", 403
        elif role.operator is None:
            error, status = "Unknown token.", 401
        else:
            response = RedirectResponse(_local(next), 303)
            response.set_cookie(
                COOKIE, sessions.cookie_for(role.operator), httponly=True, samesite="strict"
            )
            return response
        return page("login.html", request, status, next=_local(next), error=error, operator=None)

    @app.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/queue", response_class=HTMLResponse)
    async def queue_list(
        request: Request, reason: str | None = None, sort: str = "age", page_no: int = 1
    ):
        operator = operator_of(request)
        reason = reason or None
        try:
            listing = await asyncio.to_thread(
                queue.page, reason=reason, sort=sort, page=page_no, hidden=state["store"].reviewed
            )
        except ValueError as exc:
            raise Denied(400, str(exc)) from None
        return page(
            "queue.html",
            request,
            operator=operator,
            listing=listing,
            reasons=REASONS,
            sorts=SORTS,
            reason=reason,
            sort=sort,
            query=lambda **changes: _query(
                {"reason": reason, "sort": sort, "page_no": page_no, **changes}
            ),
        )

    async def item_page(
        request: Request,
        operator: str,
        request_id: str,
        *,
        status: int = 200,
        error: str | None = None,
        saved: str | None = None,
    ) -> HTMLResponse:
        reviewed = state["store"].reviewed
        item = await asyncio.to_thread(queue.item, request_id, hidden=reviewed)
        if item is None:
            raise Denied(404, f"{request_id} is not in the review queue")
        return page(
            "item.html",
            request,
            status,
            operator=operator,
            item=item,
            # After a refused submit the notice would describe a review that was not stored.
            reviewed=error is None and request_id in reviewed,
            reasons=REASONS,
            nonce=secrets.token_urlsafe(16),
            error=error,
            saved=saved,
        )

    @app.get("/queue/{request_id}", response_class=HTMLResponse)
    async def queue_item(request: Request, request_id: str, saved: str | None = None):
        return await item_page(request, operator_of(request), request_id, saved=saved)

    @app.post("/queue/{request_id}")
    async def submit(
        request: Request,
        request_id: str,
        nonce: str = Form(""),
        verdict: str = Form(""),
        correction: str = Form(""),
        tags: str = Form(""),
        next_id: str = Form(""),
    ):
        operator = operator_of(request)
        review = Review(
            request_id=request_id,
            operator=operator,
            verdict=verdict or None,
            correction=correction.strip() or None,
            tags=sorted({t.strip() for t in tags.split(",") if t.strip()}),
            nonce=nonce,
        )
        try:
            answer = await asyncio.to_thread(state["store"].submit, review)
        except ReviewError as exc:
            return await item_page(request, operator, request_id, status=422, error=str(exc))
        target = f"/queue/{next_id}" if next_id and next_id != request_id else "/queue"
        return RedirectResponse(f"{target}?saved={answer['annotation_id']}", 303)

    @app.get("/dashboard", response_class=HTMLResponse)
    async def dashboard(request: Request):
        operator = operator_of(request)
        body = await asyncio.to_thread(render_dashboard, lake, settings.dagster_url)
        return page("dashboard.html", request, operator=operator, body=body)

    return app


def _local(path: str) -> str:
    """Only same-site paths are followed after sign-in."""
    return path if path.startswith("/") and not path.startswith("//") else "/queue"


def _query(values: dict) -> str:
    """The queue's query string with the given values; empty ones are left out."""
    return "?" + urlencode({k: v for k, v in values.items() if v not in ("", None)})
