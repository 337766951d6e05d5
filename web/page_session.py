"""Who is signed in on the pages, and the sign-in steps, over the sign-in foundation.

Two cookies, each with one job:
- `web.auth.PAGE_COOKIE`: the page session's secret (billing/signin.py keeps only its digest, with
  the idle timeout and the revocation); it alone says who is signed in.
- Flask's own signed session cookie: what a browser needs before and around that — the CSRF token
  of its forms (Flask-WTF), the sign-in challenge in progress, a language chosen before signing in,
  and the one-shot notices a redirect carries. It never names a signed-in subscriber. Its key is
  $SELFCARE_WEB_SECRET, the same in every serving process (a form made by one is checked by another).

Both are HttpOnly, SameSite=Lax and Secure unless $SELFCARE_WEB_INSECURE_COOKIES=1 (web.auth's rule).
"""
from __future__ import annotations

import logging
import os

from flask import current_app, g, request, session

import texts
from billing import lines, signin
from billing.errors import (CodeExpired, InvalidCode, InvalidMsisdn, NotSignedIn, TooManyCodes,
                            TooManyWrongCodes, UnknownSubscriber, WrongCode)
from billing.msisdn import mask, normalize

from . import auth

log = logging.getLogger("web.pages")

SECRET_ENV = "SELFCARE_WEB_SECRET"
DEFAULT_SECRET = "selfcare-demo-web-secret"  # demos and tests only: an operator sets its own
PENDING = "signin"  # Flask session: {"request_id", "number"} of the challenge in progress
LANGUAGE = "lang"
REFUSALS = ("number-invalid", "code-too-many", "code-wrong")  # texts/web.toml keys this module answers with


def configure(app, core, settings) -> None:
    app.secret_key = os.environ.get(SECRET_ENV) or DEFAULT_SECRET
    secure = os.environ.get(auth.INSECURE_COOKIES_ENV) != "1"
    app.config.update(SESSION_COOKIE_NAME="selfcare_forms", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SECURE=secure, SESSION_COOKIE_SAMESITE="Lax",
                      PERMANENT_SESSION_LIFETIME=signin.PAGE_TTL)


def _core():
    return current_app.extensions["web.pages"]


def load_signed_in() -> None:
    """`g.msisdn` and `g.language` for a live page session; nothing for anyone else."""
    g.msisdn = None
    if not request.cookies.get(auth.PAGE_COOKIE):
        return
    try:
        signed = auth.page_subscriber(_core())
        with _core().reader() as uow:
            g.language = lines.snapshot(uow, signed.msisdn).language
    except (NotSignedIn, UnknownSubscriber):
        return
    g.msisdn = signed.msisdn


def had_session() -> bool:
    """The browser still carries a page session that is no longer valid (idle, revoked, ended)."""
    return bool(request.cookies.get(auth.PAGE_COOKIE)) and not g.get("msisdn")


def anonymous_language() -> str:
    chosen = session.get(LANGUAGE)
    if chosen in texts.LANGUAGES:
        return chosen
    return request.accept_languages.best_match(texts.LANGUAGES) or texts.DEFAULT_LANGUAGE


def set_anonymous_language(language: str) -> None:
    session[LANGUAGE] = language


def code_minutes() -> int:
    return int(signin.CODE_TTL.total_seconds() // 60)


def send_code(number: str) -> str | None:
    """Ask for a code for `number`; the refusal's text key, or None when asked. The same for a number
    we do not serve (billing.signin sends it no SMS and tells nobody)."""
    try:
        with _core().uow() as uow:
            request_id = signin.request_code(uow, number, auth.client_address())
    except InvalidMsisdn:
        return "number-invalid"
    except TooManyCodes:
        return "code-too-many"
    session[PENDING] = {"request_id": request_id, "number": normalize(number)}
    return None


def pending_number() -> str | None:
    pending = session.get(PENDING)
    return pending["number"] if isinstance(pending, dict) else None


def verify(code: str):
    """(issued page session, None) for a right code, else (None, the refusal's text key)."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict):
        return None, "code-wrong"
    try:
        with _core().uow() as uow:
            issued = signin.verify_code(uow, pending["request_id"], pending["number"], code.strip(), "page")
    except (InvalidCode, WrongCode):
        return None, "code-wrong"
    except (CodeExpired, TooManyWrongCodes) as ended:
        session.pop(PENDING, None)
        return None, "code-too-many" if isinstance(ended, TooManyWrongCodes) else "code-wrong"
    # A new browser state for the signed-in subscriber: no CSRF token or notice from before carries over.
    language = session.get(LANGUAGE)
    session.clear()
    if language:
        session[LANGUAGE] = language
    log.info("page session opened for %s", mask(issued.msisdn))
    return issued, None


def signed_in_response(response, issued):
    return auth.set_page_cookie(response, issued)


def sign_out(response):
    with _core().uow() as uow:
        signin.sign_out(uow, request.cookies.get(auth.PAGE_COOKIE))
    session.clear()
    return auth.clear_page_cookie(response)
