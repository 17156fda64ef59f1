"""The auditors' page at ``/audit``: search the log, follow a packet's journey, see the
checkpoints and whether the log verifies, download exports and evidence bundles.

Server-rendered HTML in Vietnamese or English, no scripts and no outside assets (a strict
Content-Security-Policy says so to the browser). Auditors sign in with their API token once; the
page then keeps a session cookie (HttpOnly, SameSite=Strict) for ``SESSION_S``, held in memory:
a restarted daemon asks them to sign in again.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from lgsp_adapter.audit import AuditEvent
from lgsp_adapter.audit.query import MAX_PAGE, BadQuery
from lgsp_adapter.errors import LgspError
from lgsp_adapter.http.app import DIRECTORY
from lgsp_adapter.http.audit import (
    AUDIT,
    FILTERS,
    bundle_response,
    entry_json,
    query_of,
    stream_export,
)
from lgsp_adapter.registry.agencies import Role

SESSION_S = 8 * 3600
COOKIE = "lgsp_audit"
LANG_COOKIE = "lgsp_lang"
PAGE = 50
PAGE_WAIT_S = 3.0  # how long the page waits for a verification before showing the last one
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

TEXT: dict[str, dict[str, str]] = {
    "vi": {
        "title": "Nhật ký trao đổi",
        "sign_in": "Đăng nhập",
        "sign_out": "Đăng xuất",
        "token": "Mã truy cập của kiểm toán viên",
        "bad_token": "Mã truy cập không hợp lệ hoặc không thuộc vai trò kiểm toán.",
        "search": "Tìm kiếm",
        "since": "Từ",
        "until": "Đến",
        "agency": "Cơ quan (gửi hoặc nhận)",
        "kind": "Loại gói tin",
        "document_id": "Số hiệu văn bản",
        "outcome": "Kết quả",
        "event": "Sự kiện",
        "packet_id": "Mã gói tin",
        "any": "(tất cả)",
        "index": "STT",
        "at": "Thời điểm (UTC)",
        "parties": "Gửi → Nhận",
        "detail": "Chi tiết",
        "none": "Không có mục nào khớp.",
        "next": "Trang sau",
        "export_csv": "Tải về CSV",
        "export_jsonl": "Tải về JSON Lines",
        "journey": "Hành trình của gói tin",
        "bundle": "Tải gói bằng chứng (kiểm tra ngoại tuyến)",
        "checkpoints": "Điểm kiểm tra đã ký",
        "size": "Số mục",
        "root": "Mã băm gốc",
        "verify": "Kiểm tra toàn bộ nhật ký",
        "verified_ok": "Nhật ký toàn vẹn",
        "verified_bad": "Nhật ký KHÔNG toàn vẹn",
        "checked_at": "Kiểm tra lúc",
        "public_key": "Khóa công khai (dấu vân tay SHA-256)",
        "log": "Nhật ký",
        "error": "Yêu cầu không hợp lệ",
        "by": "bởi",
        "running": "Đang kiểm tra lại toàn bộ nhật ký; tải lại trang sau ít phút.",
        "never": "Nhật ký chưa được kiểm tra lần nào.",
    },
    "en": {
        "title": "Exchange audit log",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "token": "Auditor's access token",
        "bad_token": "The token is not valid, or not an auditor's.",
        "search": "Search",
        "since": "From",
        "until": "To",
        "agency": "Agency (sender or recipient)",
        "kind": "Packet kind",
        "document_id": "Document id",
        "outcome": "Outcome",
        "event": "Event",
        "packet_id": "Packet id",
        "any": "(any)",
        "index": "No.",
        "at": "Time (UTC)",
        "parties": "From → To",
        "detail": "Detail",
        "none": "No entries match.",
        "next": "Next page",
        "export_csv": "Download CSV",
        "export_jsonl": "Download JSON Lines",
        "journey": "Packet journey",
        "bundle": "Download evidence bundle (checks offline)",
        "checkpoints": "Signed checkpoints",
        "size": "Entries",
        "root": "Root hash",
        "verify": "Verify the whole log",
        "verified_ok": "The log verifies",
        "verified_bad": "The log does NOT verify",
        "checked_at": "Checked at",
        "public_key": "Public key (SHA-256 fingerprint)",
        "log": "Log",
        "error": "Bad request",
        "by": "by",
        "running": "The whole log is being verified again; reload this page in a while.",
        "never": "The log has not been verified yet.",
    },
}
EVENTS: dict[str, dict[str, str]] = {
    "vi": {
        "received": "Đã tiếp nhận",
        "rejected": "Bị từ chối khi tiếp nhận",
        "published": "Đã chuyển lên trục",
        "forwarded": "Đã chuyển sang trục khác",
        "arrived": "Đến từ trục khác",
        "returned": "Trục không định tuyến được",
        "delivered": "Đã giao",
        "retried": "Giao lại",
        "refused": "Bên nhận từ chối",
        "dead_lettered": "Chuyển hàng đợi lỗi",
        "receipt": "Đã báo kết quả cho bên gửi",
        "held": "Chờ bên nhận lấy về (hộp thư)",
        "signature": "Kiểm tra chữ ký số",
        "config_changed": "Cấu hình thay đổi",
        "admin": "Thao tác quản trị",
    },
    "en": {event.value: event.value.replace("_", " ") for event in AuditEvent},
}


@dataclass
class Sessions:
    """Signed-in auditors, by random cookie value."""

    _open: dict[str, tuple[str, float]] = field(default_factory=dict)

    def start(self, client: str) -> str:
        """A new session for ``client``; its cookie value."""
        now = time.monotonic()
        self._open = {k: v for k, v in self._open.items() if v[1] > now}  # forget expired
        token = secrets.token_urlsafe(32)
        self._open[token] = (client, now + SESSION_S)
        return token

    def client(self, token: str | None) -> str | None:
        """Who holds the session, while it lasts."""
        found = self._open.get(token or "")
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]

    def end(self, token: str | None) -> None:
        """Sign out."""
        self._open.pop(token or "", None)


SESSIONS: web.AppKey[Sessions] = web.AppKey("audit_sessions", Sessions)
TEMPLATES: web.AppKey[Environment] = web.AppKey("audit_templates", Environment)


def _language(request: web.Request) -> str:
    chosen = request.query.get("lang") or request.cookies.get(LANG_COOKIE)
    if chosen in TEXT:
        return chosen
    accepted = request.headers.get("Accept-Language", "")
    return "en" if accepted.lower().startswith("en") else "vi"


def _render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    lang = _language(request)
    page = (
        request.app[TEMPLATES]
        .get_template(template)
        .render(
            lang=lang,
            t=TEXT[lang],
            events=EVENTS[lang],
            path=request.path,
            signed_in=_client(request) is not None,
            **values,
        )
    )
    response = web.Response(text=page, content_type="text/html", status=status, headers=HEADERS)
    if request.query.get("lang") in TEXT:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="Strict")
    return response


def _client(request: web.Request) -> str | None:
    return request.app[SESSIONS].client(request.cookies.get(COOKIE))


def _signed_in(request: web.Request) -> None:
    if _client(request) is None:
        raise web.HTTPSeeOther(f"/audit/login?{urlencode({'next': request.path_qs})}")


async def login_form(request: web.Request) -> web.Response:
    """The sign-in form."""
    return _render(request, "audit/login.html", failed=False, next=_next(request.query))


def _next(params: Mapping[str, str]) -> str:
    target = params.get("next", "/audit")
    # Only our own pages: never an open redirect to another site.
    return target if target.startswith("/audit") and "//" not in target else "/audit"


async def login(request: web.Request) -> web.Response:
    """Check the token; an auditor's starts a session."""
    form = await request.post()
    token = str(form.get("token", "")).strip()
    client = request.app[DIRECTORY].client_for(token) if token else None
    target = _next({"next": str(form.get("next", "/audit"))})
    if client is None or client.role is not Role.AUDITOR:
        return _render(request, "audit/login.html", status=401, failed=True, next=target)
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        COOKIE,
        request.app[SESSIONS].start(client.name),
        max_age=SESSION_S,
        httponly=True,
        samesite="Strict",
        # Behind a TLS-terminating proxy the daemon sees plain HTTP; the proxy says otherwise.
        secure=request.secure or request.headers.get("X-Forwarded-Proto") == "https",
        path="/audit",
    )
    raise response


async def logout(request: web.Request) -> web.Response:
    """End the session."""
    request.app[SESSIONS].end(request.cookies.get(COOKIE))
    response = web.HTTPSeeOther("/audit/login")
    response.del_cookie(COOKIE, path="/audit")
    raise response


async def search(request: web.Request) -> web.Response:
    """Search form and one page of results."""
    _signed_in(request)
    params = {k: v for k, v in request.query.items() if k != "lang" and v}
    params.setdefault("limit", str(PAGE))
    params.setdefault("newest_first", "true")
    try:
        query = query_of(params)
    except BadQuery as exc:
        return _render(
            request,
            "audit/search.html",
            status=400,
            error=exc.message,
            entries=[],
            form=params,
            next_url=None,
            export_qs="",
        )
    found = await request.app[AUDIT].log.query(query)
    next_url = None
    if len(found) == query.limit and query.limit < MAX_PAGE + 1:
        following = {k: v for k, v in params.items() if k not in ("after", "before")}
        following["before" if query.newest_first else "after"] = str(found[-1].index)
        next_url = f"/audit?{urlencode(following)}"
    filters = {k: v for k, v in params.items() if k in FILTERS}
    return _render(
        request,
        "audit/search.html",
        error=None,
        entries=[entry_json(e) for e in found],
        form=params,
        next_url=next_url,
        export_qs=urlencode(filters),
    )


async def packet(request: web.Request) -> web.Response:
    """One packet's journey as a timeline."""
    _signed_in(request)
    try:
        packet_id = UUID(request.match_info["packet_id"])
    except ValueError as exc:
        raise web.HTTPNotFound from exc
    found = await request.app[AUDIT].log.history(packet_id)
    if not found:
        raise web.HTTPNotFound
    return _render(
        request,
        "audit/packet.html",
        packet_id=str(packet_id),
        entries=[entry_json(e) for e in found],
        first=found[0],
    )


async def packet_bundle(request: web.Request) -> web.Response:
    """The packet's evidence bundle, as a download."""
    _signed_in(request)
    return await bundle_response(request)


async def export(request: web.Request) -> web.StreamResponse:
    """An export of the matching entries, as a download."""
    _signed_in(request)
    return await stream_export(request)


async def checkpoints(request: web.Request) -> web.Response:
    """Checkpoints, the public key and the log's verification."""
    _signed_in(request)
    access = request.app[AUDIT]
    report, at, running = await access.verification(wait_s=PAGE_WAIT_S)
    return _render(
        request,
        "audit/checkpoints.html",
        report=report,
        running=running,
        checked_at=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)),
        checkpoints=list(reversed(await access.log.checkpoints()))[:200],
        key=access.key.verifier,
    )


@web.middleware
async def page_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Our errors on the page as a page, not JSON."""
    try:
        return await handler(request)
    except LgspError as exc:
        if not request.path.startswith("/audit"):
            raise
        return _render(request, "audit/error.html", status=400, message=exc.message)


def add_audit_page(app: web.Application) -> None:
    """Mount ``/audit`` (needs the audit routes' ``AUDIT`` on the app)."""
    app[SESSIONS] = Sessions()
    app[TEMPLATES] = Environment(
        loader=PackageLoader("lgsp_adapter.http", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
    )
    app.middlewares.append(page_errors)
    router = app.router
    router.add_get("/audit", search)
    router.add_get("/audit/login", login_form)
    router.add_post("/audit/login", login)
    router.add_post("/audit/logout", logout)
    router.add_get("/audit/packets/{packet_id}", packet)
    router.add_get("/audit/bundle", packet_bundle)
    router.add_get("/audit/export", export)
    router.add_get("/audit/checkpoints", checkpoints)
