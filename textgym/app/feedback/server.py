"""The feedback web app: server-rendered pages for people, a JSON API for scripts (FastAPI).

Pages (a login cookie; every form post carries a CSRF token)::

    GET  /                      login form (or a redirect to the queue / the admin page)
    GET  /login?token=T         the login link `textgym feedback add-annotator` prints
    POST /login                 the login form (token, csrf)
    POST /logout
    GET  /annotate              the next item of the annotator's queue, with progress
    POST /annotate              submit a judgment (form fields, see judgments.parse_form)
    GET  /admin                 admin: progress, agreement, export links
    GET  /admin/export/pairs.jsonl, /admin/export/sft.jsonl   admin: the exports as files

JSON API (``Authorization: Bearer TOKEN``; no cookie, so no CSRF token)::

    GET  /api/next              {"item": {...} | null, "progress": {...}}
    POST /api/judgments         a judgment (judgments.parse_judgment) -> 201 {"judgment_id", "created"}
                                (200 with created=false for a retried idempotency key)
    GET  /api/progress
    GET  /api/status            admin: counts, per-annotator counts, agreement
    GET  /api/export/pairs, /api/export/sft     admin: the export rows as JSON

Errors: 400 bad JSON, 401 no or unknown token, 403 wrong role or bad CSRF token, 404 unknown
item, 409 a conflict with a stored judgment, 413 a body over 1 MB, 422 an invalid judgment; the
message says what was wrong.  A judgment is acknowledged only after its transaction committed.
Model text is rendered by Jinja2 with autoescaping, and the Content-Security-Policy allows only
the page's own inline script (by nonce), so HTML in a completion is shown as text.  No request
path is mapped to a file: templates come from the package, there is no static-file route.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from textgym.app.feedback.agreement import agreement_report
from textgym.app.feedback.db import Annotator, Conflict, Item, Project
from textgym.app.feedback.export import AGGREGATIONS, preference_pairs, sft_rows
from textgym.app.feedback.judgments import VOTES, JudgmentError, parse_form, parse_judgment

__all__ = ["create_app", "HTTPError", "MAX_BODY", "COOKIE"]

COOKIE = "textgym_feedback"
LOGIN_CSRF_COOKIE = "textgym_login_csrf"
MAX_BODY = 1 << 20
_TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("textgym.app.feedback", "templates"),
                                autoescape=True, undefined=jinja2.StrictUndefined)


class HTTPError(StarletteHTTPException):
    """An error with a status and a one-line message (JSON for /api, an HTML page otherwise)."""


def _item_json(item: Item) -> dict[str, Any]:
    return {"id": item.id, "prompt": item.prompt,
            "completions": [{"id": c["id"], "text": c["text"]} for c in item.completions]}


def create_app(project: str | Path | Project, *, secure_cookies: bool = False) -> FastAPI:
    """The app serving ``project`` (a project file or an open :class:`Project`).

    Args:
        project: the feedback project.
        secure_cookies: mark the login cookie ``Secure`` (behind an HTTPS proxy).
    """
    proj = project if isinstance(project, Project) else Project(project)
    secret = proj.meta("csrf_secret").encode()
    app = FastAPI(title="textgym feedback", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.project = proj

    def csrf_for(who: Annotator) -> str:
        return hmac.new(secret, f"csrf:{who.id}:{who.name}".encode(), hashlib.sha256).hexdigest()

    def render(request: Request, name: str, http_status: int = 200, **ctx: Any) -> HTMLResponse:
        html = _TEMPLATES.get_template(name).render(nonce=request.state.nonce, votes=VOTES, **ctx)
        return HTMLResponse(html, status_code=http_status)

    # ----------------------------------------------------------------------------- middleware, errors
    @app.middleware("http")
    async def security(request: Request, call_next: Callable[..., Any]) -> Response:
        request.state.nonce = secrets.token_urlsafe(16)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            response: Response = PlainTextResponse(f"request body over {MAX_BODY} bytes", status_code=413)
        else:
            response = await call_next(request)
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'nonce-{request.state.nonce}'; style-src 'unsafe-inline'; "
            "img-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'; connect-src 'self'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return render(request, "error.html", exc.status_code, status=exc.status_code, message=exc.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
        msg = first.get("msg", "invalid request")
        status = 400 if first.get("type") == "json_invalid" else 422
        return JSONResponse({"detail": f"{where}: {msg}"}, status_code=status)

    # ----------------------------------------------------------------------------- auth
    def bearer(request: Request) -> Annotator:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        if not token:
            raise HTTPError(401, "no token: send `Authorization: Bearer TOKEN` (from `textgym feedback add-annotator`)")
        who = proj.authenticate(token)
        if who is None:
            raise HTTPError(401, "unknown token; ask the project admin for your login link")
        return who

    def cookie_user(request: Request) -> Annotator | None:
        return proj.authenticate(request.cookies.get(COOKIE))

    def need(who: Annotator | None, role: str) -> Annotator:
        if who is None:
            raise HTTPError(401, "not logged in: open your login link, or enter your token at /")
        if who.role != role:
            raise HTTPError(403, "this page is for the project admin" if role == "admin" else
                            "the admin token has no annotation queue; log in with an annotator's token")
        return who

    # ----------------------------------------------------------------------------- pages
    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        who = cookie_user(request)
        if who is not None:
            return RedirectResponse("/admin" if who.role == "admin" else "/annotate", status_code=303)
        token = secrets.token_urlsafe(24)
        resp = render(request, "login.html", csrf=token, message=None)
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies)
        return resp

    def login_response(token: str | None) -> Response:
        who = proj.authenticate(token)
        if who is None:
            raise HTTPError(401, "unknown token; check your login link or ask the project admin")
        resp = RedirectResponse("/admin" if who.role == "admin" else "/annotate", status_code=303)
        resp.set_cookie(COOKIE, token or "", httponly=True, samesite="strict", secure=secure_cookies)
        resp.delete_cookie(LOGIN_CSRF_COOKIE)
        return resp

    @app.get("/login")
    def login_link(token: str = "") -> Response:
        return login_response(token)

    @app.post("/login")
    async def login_form(request: Request) -> Response:
        form = await request.form()
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(str(form.get("csrf", "")), expected):
            raise HTTPError(403, "CSRF check failed: reload the login page and try again")
        return await run_in_threadpool(login_response, str(form.get("token", "")))

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        who = await run_in_threadpool(cookie_user, request)
        form = await request.form()
        if who is None or not hmac.compare_digest(str(form.get("csrf", "")), csrf_for(who)):
            raise HTTPError(403, "CSRF check failed: reload the page and try again")
        resp = RedirectResponse("/", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    def annotate_page(request: Request, who: Annotator, *, http_status: int = 200, error: str | None = None,
                      item: Item | None = None, form: dict[str, Any] | None = None, saved: str | None = None
                      ) -> HTMLResponse:
        item = item if item is not None else proj.next_item(who.id)
        return render(request, "annotate.html", http_status, who=who, item=item, progress=proj.progress(who.id),
                      csrf=csrf_for(who), key=secrets.token_urlsafe(18), error=error, form=form or {},
                      saved=saved, complete=proj.counts())

    @app.get("/annotate", response_class=HTMLResponse)
    def annotate(request: Request, saved: str | None = None) -> Response:
        who = need(cookie_user(request), "annotator")
        return annotate_page(request, who, saved=saved if saved and saved.isdigit() else None)

    @app.post("/annotate")
    async def annotate_post(request: Request) -> Response:
        form = dict(await request.form())
        return await run_in_threadpool(_annotate_post, request, form)

    def _annotate_post(request: Request, form: dict[str, Any]) -> Response:
        who = need(cookie_user(request), "annotator")
        if not hmac.compare_digest(str(form.get("csrf", "")), csrf_for(who)):
            raise HTTPError(403, "CSRF check failed: reload the page and submit again")
        item = _lookup(form.get("item_id"))
        try:
            judgment = parse_form(form, item)
            jid, _ = proj.submit(who.id, judgment)
        except JudgmentError as exc:
            return annotate_page(request, who, http_status=422, error=str(exc), item=item, form=form)
        except Conflict as exc:
            raise HTTPError(409, str(exc)) from None
        return RedirectResponse(f"/annotate?saved={jid}", status_code=303)

    def _lookup(item_id: Any) -> Item:
        try:
            iid = int(str(item_id))
        except ValueError:
            raise HTTPError(422, f"item_id: expected an integer, got {item_id!r}") from None
        item = proj.item(iid)
        if item is None:
            raise HTTPError(404, f"no item {iid} in this project")
        return item

    @app.get("/admin", response_class=HTMLResponse)
    def admin(request: Request) -> Response:
        who = need(cookie_user(request), "admin")
        return render(request, "admin.html", who=who, status=status_of(), csrf=csrf_for(who))

    def export_rows(kind: str, aggregate: str, margin: int) -> list[dict[str, Any]]:
        if aggregate not in AGGREGATIONS:
            raise HTTPError(422, f"aggregate: one of {', '.join(AGGREGATIONS)}, got {aggregate!r}")
        if not 1 <= margin <= 6:
            raise HTTPError(422, f"margin: a rating difference from 1 to 6, got {margin}")
        items, judgments = proj.items(), proj.judgments()
        if kind == "pairs":
            return preference_pairs(items, judgments, margin=margin, aggregate=aggregate)
        return sft_rows(items, judgments)

    def jsonl(rows: list[dict[str, Any]], name: str) -> Response:
        import json

        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        return Response(body, media_type="application/x-ndjson",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/admin/export/pairs.jsonl")
    def admin_pairs(request: Request, aggregate: str = "majority", margin: int = 2) -> Response:
        need(cookie_user(request), "admin")
        return jsonl(export_rows("pairs", aggregate, margin), "pairs.jsonl")

    @app.get("/admin/export/sft.jsonl")
    def admin_sft(request: Request) -> Response:
        need(cookie_user(request), "admin")
        return jsonl(export_rows("sft", "majority", 2), "sft.jsonl")

    # ----------------------------------------------------------------------------- JSON API
    def status_of() -> dict[str, Any]:
        return {"counts": proj.counts(), "annotators": proj.per_annotator(),
                "agreement": agreement_report(proj.judgments())}

    @app.get("/api/next")
    def api_next(request: Request) -> dict[str, Any]:
        who = need(bearer(request), "annotator")
        item = proj.next_item(who.id)
        return {"item": _item_json(item) if item else None, "progress": proj.progress(who.id)}

    @app.get("/api/progress")
    def api_progress(request: Request) -> dict[str, Any]:
        who = need(bearer(request), "annotator")
        return proj.progress(who.id)

    @app.post("/api/judgments")
    def api_submit(request: Request, payload: dict[str, Any] = Body(...)) -> Response:
        who = need(bearer(request), "annotator")
        item = _lookup(payload.get("item_id"))
        try:
            jid, created = proj.submit(who.id, parse_judgment(payload, item))
        except JudgmentError as exc:
            raise HTTPError(422, str(exc)) from None
        except Conflict as exc:
            raise HTTPError(409, str(exc)) from None
        return JSONResponse({"judgment_id": jid, "created": created}, status_code=201 if created else 200)

    @app.get("/api/status")
    def api_status(request: Request) -> dict[str, Any]:
        need(bearer(request), "admin")
        return status_of()

    @app.get("/api/export/{kind}")
    def api_export(request: Request, kind: str, aggregate: str = "majority", margin: int = 2) -> Any:
        need(bearer(request), "admin")
        if kind not in ("pairs", "sft"):
            raise HTTPError(404, f"no export {kind!r}; there are `pairs` and `sft`")
        return export_rows(kind, aggregate, margin)

    return app
