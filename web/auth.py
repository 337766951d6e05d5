"""Flask glue for sign-in (the rules and the tables are billing/signin.py's; this only reads the
request and writes the cookie).

- The API sends `Authorization: Bearer <token>`; `api_subscriber(core)` is the signed-in line.
- The pages keep the page session's secret in the `PAGE_COOKIE` cookie: `set_page_cookie(response,
  issued)` after `signin.verify_code(..., kind="page")`, `page_subscriber(core)` on every request
  (it restarts the idle timer at most once a minute), `clear_page_cookie(response)` on sign-out.
  The cookie is HttpOnly, SameSite=Lax and Secure unless $SELFCARE_WEB_INSECURE_COOKIES=1 (plain
  http on 127.0.0.1 for tests and demos). CSRF protection for forms is the pages' own (Flask-WTF).
- `client_address()` is what the per-address code limit counts.
Both raise `billing.errors.NotSignedIn`; each side turns it into its answer (401 JSON, a redirect).
"""
from __future__ import annotations

import os

from flask import Response, request

from billing import signin
from billing.errors import NotSignedIn

PAGE_COOKIE = "selfcare_session"
INSECURE_COOKIES_ENV = "SELFCARE_WEB_INSECURE_COOKIES"


def client_address() -> str:
    # The direct peer. Behind a reverse proxy every client would share its address: the proxy must
    # then set REMOTE_ADDR itself (e.g. werkzeug's ProxyFix), never trust a client's header here.
    return request.remote_addr or "unknown"


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def api_subscriber(core) -> signin.Signed:
    with core.reader() as uow:
        return signin.authenticate(uow, bearer_token(), "api")


def page_subscriber(core) -> signin.Signed:
    with core.reader() as uow:
        signed = signin.authenticate(uow, request.cookies.get(PAGE_COOKIE), "page")
    if signed.needs_touch:
        with core.uow() as uow:
            signin.touch(uow, signed)
    return signed


def _secure() -> bool:
    return os.environ.get(INSECURE_COOKIES_ENV) != "1"


def set_page_cookie(response: Response, issued: signin.Issued) -> Response:
    response.set_cookie(PAGE_COOKIE, issued.secret, max_age=int(signin.PAGE_TTL.total_seconds()),
                        httponly=True, secure=_secure(), samesite="Lax", path="/")
    return response


def clear_page_cookie(response: Response) -> Response:
    response.delete_cookie(PAGE_COOKIE, path="/", httponly=True, secure=_secure(), samesite="Lax")
    return response


__all__ = ["PAGE_COOKIE", "NotSignedIn", "api_subscriber", "bearer_token", "clear_page_cookie",
           "client_address", "page_subscriber", "set_page_cookie"]
