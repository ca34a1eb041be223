"""Logging in and out of the console.

* OIDC (`console.oidc`): `GET /ui/login/oidc` sends the browser to the issuer
  with a fresh `state` and PKCE challenge; the issuer sends it back to
  `GET /ui/login/callback` with a one-time code, which is exchanged (with the
  verifier) for an access token. That token is verified exactly as a bearer
  token on the API is (`RequestAuth.verifier`, pinned to that issuer), its
  identity and scopes become a session, and the token is dropped. The callback
  then redirects to a clean URL, so the code leaves the address bar.
* Dev login (`--dev` only, like the dev token issuer): a subject and scopes
  typed in, for the gateway's own issuer, marked with the dev client id.
* Logout deletes the session row: the cookie is worthless from then on, even
  if a copy of it survives somewhere.

No token is ever put in a URL: the code in the callback's query is not one
(it is single-use and bound to the PKCE verifier, RFC 7636 §1).
"""

from __future__ import annotations

import hmac
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from gateway.console.login_state import LOGIN_SECONDS, Login
from gateway.console.oidc import LoginFailed, OidcClient, pkce_pair
from gateway.console.sessions import new_secret
from gateway.console.web import (
    PREFIX,
    ConsoleError,
    ConsoleRoute,
    console_of,
    current_user,
    page,
    posted,
    redirect,
)
from gateway.http.auth import request_auth
from policies.scopes import ScopeSyntaxError, parse_scopes
from policies.tokens import DEV_CLIENT_ID, Principal, TokenInvalid

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)
CALLBACK = PREFIX + "/login/callback"


def _return_to(value: str | None) -> str:
    """Only a console path: never an open redirect to another site."""
    if value and value.startswith(PREFIX) and "//" not in value and "\\" not in value:
        return value
    return PREFIX


def oidc_client(request: Request) -> OidcClient | None:
    console = console_of(request)
    config = console.settings.console.oidc
    if config is None:
        return None
    if console.oidc is None:
        settings = console.settings
        console.oidc = OidcClient(
            config,
            resource=settings.effective_resource_id,
            redirect_uri=settings.effective_public_url + CALLBACK,
        )
    return console.oidc


@router.get("/login")
async def login_page(request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    console = console_of(request)
    sessions = console.sessions(request)
    if await sessions.get(request.cookies.get(console.session_cookie)) is not None:
        return redirect(_return_to(next))
    login = Login(csrf=new_secret(), state=None, code_verifier=None, return_to=_return_to(next))
    response = page(
        request,
        None,
        "login.html",
        csrf=login.csrf,
        oidc=console.settings.console.oidc,
    )
    console.set_cookie(response, console.login_cookie, console.logins.seal(login), LOGIN_SECONDS)
    return response


@router.get("/login/oidc")
async def login_oidc(request: Request) -> Response:
    """To the issuer. A GET (a link, not a form): CSP `form-action 'self'`
    would stop a form's redirect to another origin. Nothing but this
    browser's login row changes."""
    console = console_of(request)
    client = oidc_client(request)
    if client is None:
        raise ConsoleError(404, "No OpenID Connect issuer is configured for the console")
    login = console.logins.open(request.cookies.get(console.login_cookie))
    if login is None:
        return redirect(PREFIX + "/login")
    state = new_secret()
    verifier, challenge = pkce_pair()
    try:
        target = await client.authorization_url(state, challenge)
    except LoginFailed as exc:
        raise ConsoleError(502, "Login failed", str(exc)) from None
    # What the callback must match travels sealed in this browser's cookie.
    authorizing = Login(login.csrf, state, verifier, login.return_to)
    response = redirect(target)
    console.set_cookie(
        response, console.login_cookie, console.logins.seal(authorizing), LOGIN_SECONDS
    )
    return response


@router.get("/login/callback")
async def login_callback(
    request: Request,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    console = console_of(request)
    login = console.logins.open(request.cookies.get(console.login_cookie))
    if login is None or login.state is None or login.code_verifier is None:
        raise ConsoleError(
            400, "Login failed", "no login is under way in this browser; start again"
        )
    # RFC 6749 §10.12: the state must be the one this browser was sent with.
    if state is None or not hmac.compare_digest(state.encode(), login.state.encode()):
        raise ConsoleError(400, "Login failed", "the issuer's answer does not match this login")
    if error is not None or not code:
        raise ConsoleError(401, "Login failed", f"the issuer said: {(error or 'no code')[:100]}")
    client = oidc_client(request)
    assert client is not None
    try:
        token = await client.exchange(code, login.code_verifier)
        auth = request_auth(request)
        principal = await auth.verifier.verify(token, issuer=client.config.issuer)
    except LoginFailed as exc:
        raise ConsoleError(502, "Login failed", str(exc)) from None
    except TokenInvalid as exc:
        raise ConsoleError(401, "Login failed", f"the issuer's access token: {exc}") from None
    return await _start_session(request, principal, login.return_to)


@router.post("/login/dev")
async def login_dev(request: Request) -> Response:
    console = console_of(request)
    settings = console.settings
    if not settings.dev:
        raise ConsoleError(404, "Not found")
    login = console.logins.open(request.cookies.get(console.login_cookie))
    if login is None:
        raise ConsoleError(403, "Refused: the login form expired", "reload the login page")
    form = await posted(request, login.csrf)
    subject = form.get("subject", "").strip()
    if not subject or len(subject) > 200:
        raise ConsoleError(422, "Give a subject (a user name)")
    try:
        scopes = parse_scopes(form.get("scopes", ""))
    except ScopeSyntaxError as exc:
        raise ConsoleError(422, "Invalid scopes", str(exc)) from None
    principal = Principal(
        subject=subject,
        issuer=settings.effective_public_url,
        scopes=scopes,
        client_id=DEV_CLIENT_ID,
    )
    return await _start_session(request, principal, login.return_to)


async def _start_session(request: Request, principal: Principal, return_to: str | None) -> Response:
    console = console_of(request)
    seconds = console.settings.console.session_seconds
    cookie, user = await console.sessions(request).create(principal, seconds)
    response = redirect(_return_to(return_to))
    console.clear_cookie(response, console.login_cookie)
    max_age = max(1, int(user.expires_at.timestamp() - time.time()))
    console.set_cookie(response, console.session_cookie, cookie, max_age)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    console = console_of(request)
    user = await current_user(request)
    await posted(request, user.csrf)
    cookie = request.cookies.get(console.session_cookie)
    if cookie:
        await console.sessions(request).delete(cookie)
    response = redirect(PREFIX + "/login")
    console.clear_cookie(response, console.session_cookie)
    return response
