"""What every console page shares: the session, CSRF, security headers, rendering.

* Every response (page, redirect, error) carries a strict Content-Security-
  Policy -- nothing but the gateway's own files, no inline script or style,
  no framing, forms post only here -- and `Referrer-Policy: no-referrer`
  (the login callback's URL holds a one-time code) and `Cache-Control:
  no-store` (pages hold a user's data and their CSRF token).
* The session cookie is `__Host-`-prefixed when the gateway's public URL is
  https (RFC 6265bis §4.1.3.2: Secure, Path=/, no Domain -- no sibling host
  can set or shadow it), `HttpOnly`, `SameSite=Lax`. Lax, not Strict: the
  issuer's redirect back to the login callback is a cross-site top-level GET
  and must carry the login cookie. Nothing changes state on a GET, and every
  POST carries the session's synchronizer token (OWASP CSRF Prevention Cheat
  Sheet), checked in constant time.
* The REST API never reads a cookie: a console session gives no way into it.
* An error any subsystem raises is turned into the API's problem by the app's
  own exception handlers, then shown as a page: one mapping, two renderings.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel, ValidationError

from gateway.console.login_state import LoginSeal
from gateway.console.oidc import OidcClient
from gateway.console.sessions import ConsoleUser, SessionStore
from gateway.http.auth import admin_principal
from gateway.http.problems import Problem
from gateway.settings import Settings
from policies.scopes import ADMIN_SCOPE

PREFIX = "/ui"
CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
MAX_FORM_FIELDS = 50


@dataclass(frozen=True)
class NavItem:
    title: str
    path: str
    admin: bool = False


# The menu, in order. A new page: a module with a router (`gateway.console.routes`)
# and a line here.
NAV: list[NavItem] = [
    NavItem("Overview", PREFIX),
    NavItem("Agents", PREFIX + "/agents"),
    NavItem("MCP servers", PREFIX + "/mcp"),
    NavItem("Flows", PREFIX + "/flows"),
    NavItem("Runs", PREFIX + "/runs"),
    NavItem("Approvals", PREFIX + "/approvals"),
    NavItem("Connections", PREFIX + "/connections"),
    NavItem("API keys", PREFIX + "/api-keys"),
    NavItem("Try", PREFIX + "/try"),
    NavItem("Holds", PREFIX + "/holds", admin=True),
    NavItem("Audit", PREFIX + "/audit", admin=True),
    NavItem("Policy", PREFIX + "/policy", admin=True),
]


class ConsoleError(Exception):
    def __init__(
        self, status: int, title: str, detail: str = "", errors: list[str] | None = None
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []


class LoginRequired(Exception):
    pass


Model = TypeVar("Model", bound=BaseModel)


def validated(model: type[Model], body: dict[str, Any], title: str, whole: str) -> Model:
    """A form's ``body`` as the API's ``model`` takes it, or a 422 page that
    names each refused field with the API's message (``whole``: the name of
    an error about no one field)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        said = field_errors(exc, whole)
        raise ConsoleError(422, title, "; ".join(said), said) from None


def field_errors(exc: ValidationError, whole: str) -> list[str]:
    """Each refused field of ``exc`` with the API's message (``whole``: the
    name of an error about no one field)."""
    return [
        f"{'.'.join(str(p) for p in error['loc']) or whole}: {error['msg']}"
        for error in exc.errors()
    ]


def error_lines(errors: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """The API's field-by-field refusal (a problem's ``errors``) as lines."""
    return [
        f"{e.get('field') or 'document'}: {e.get('message', '')}"
        + (f" (step {e['step']})" if e.get("step") else "")
        for e in errors or []
    ]


def refusal_lines(problem: Problem) -> list[str]:
    """What a form shows of a problem the API raised: its refused fields, or
    (refused as a whole) its title and detail."""
    return error_lines(problem.errors) or [f"{problem.title}: {problem.detail or ''}"]


class Console:
    """The console's own state: built with the app, its store once the database is up."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.secure = settings.effective_public_url.startswith("https://")
        prefix = "__Host-" if self.secure else ""
        self.session_cookie = prefix + "switchboard-session"
        self.login_cookie = prefix + "switchboard-login"
        self._sessions: SessionStore | None = None
        # Without a secret only in --dev (`Settings.insecurities`): see login_state.
        self.logins = LoginSeal(settings.sealing_secret or settings.effective_resource_id)
        self.oidc: OidcClient | None = None  # built on first use (`gateway.console.login`)
        self.templates = Environment(
            loader=PackageLoader("gateway.console", "templates"),
            autoescape=select_autoescape(["html"], default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True)

    def sessions(self, request: Request) -> SessionStore:
        if self._sessions is None:
            self._sessions = SessionStore(
                request.app.state.switchboard.engine, accept_dev=self.settings.dev
            )
        return self._sessions

    def set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear_cookie(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self.secure, httponly=True, samesite="lax")


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


async def current_user(request: Request) -> ConsoleUser:
    """The session's user; not logged in (or expired): to the login page."""
    console = console_of(request)
    user = await console.sessions(request).get(request.cookies.get(console.session_cookie))
    if user is None:
        raise LoginRequired
    return user


async def require_admin(request: Request, user: ConsoleUser) -> None:
    """403 unless the API's own admin check passes for this user."""
    try:
        await admin_principal(request, user.principal())
    except Problem as refused:
        raise ConsoleError(403, "Admins only", refused.detail or "") from None


async def posted(request: Request, csrf: str) -> dict[str, str]:
    """The form of a POST, once its synchronizer token matches ``csrf``; a POST
    that is no form at all carries no token, and is refused the same way."""
    form: dict[str, str] = {}
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        try:
            form = dict(
                parse_qsl(
                    (await request.body()).decode(),
                    keep_blank_values=True,
                    max_num_fields=MAX_FORM_FIELDS,
                )
            )
        except (UnicodeDecodeError, ValueError):
            raise ConsoleError(400, "The form could not be read") from None
    if not hmac.compare_digest(form.get("csrf", "").encode(), csrf.encode()):
        raise ConsoleError(
            403,
            "Refused: the form's CSRF token is missing or wrong",
            "reload the page and try again",
        )
    return form


def page(
    request: Request,
    user: ConsoleUser | None,
    template: str,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    console = console_of(request)
    is_admin = user is not None and _is_admin(user)
    html = console.templates.get_template(template).render(
        user=user,
        is_admin=is_admin,
        nav=[n for n in NAV if is_admin or not n.admin] if user else [],
        path=request.url.path,
        dev=console.settings.dev,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def redirect(path: str) -> RedirectResponse:
    """303: after a POST the browser GETs the next page (no resubmission)."""
    return RedirectResponse(path, status_code=303)


def _is_admin(user: ConsoleUser) -> bool:
    return ADMIN_SCOPE in user.scopes


class ConsoleRoute(APIRoute):
    """Every console route: security headers on every answer, errors as pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handle(request)
            except LoginRequired:
                response = redirect(f"{PREFIX}/login?next={quote(request.url.path)}")
            except ConsoleError as exc:
                response = await _error_page(request, exc.status, exc.title, exc.detail, exc.errors)
            except Exception as exc:
                response = await _as_page(request, exc)
            response.headers.update(SECURITY_HEADERS)
            return response

        return route


async def _as_page(request: Request, exc: Exception) -> Response:
    """The problem the app's exception handler makes of ``exc``, as a page."""
    handlers: Mapping[Any, Any] = request.app.exception_handlers
    handler = next((handlers[k] for k in type(exc).__mro__ if k in handlers), None)
    if handler is None or type(exc) is Exception:
        raise exc
    problem = await handler(request, exc)
    try:
        body = json.loads(problem.body)
    except (ValueError, AttributeError):
        body = {}
    errors = body.get("errors") if isinstance(body.get("errors"), list) else None
    return await _error_page(
        request,
        problem.status_code,
        str(body.get("title", "Error")),
        str(body.get("detail", "")),
        error_lines(errors),
    )


async def _error_page(
    request: Request, status: int, title: str, detail: str, errors: list[str] | None = None
) -> Response:
    console = console_of(request)
    user = await console.sessions(request).get(request.cookies.get(console.session_cookie))
    return page(
        request,
        user,
        "error.html",
        status,
        title=title,
        detail=detail,
        code=status,
        errors=errors or [],
    )
