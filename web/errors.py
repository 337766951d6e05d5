"""Domain errors as the API answers them: a 4xx status and `{"error": {"code", "message", ...}}`,
the code stable (billing.errors' own), the message from the `api` section of the texts catalogue
in the subscriber's language: the signed-in line's, else the best of the request's
Accept-Language, else az."""
from __future__ import annotations

import logging

from flask import g, jsonify, request
from werkzeug.exceptions import HTTPException

import texts
from billing import errors as e
from billing import services
from billing.msisdn import mask

log = logging.getLogger("web.errors")

# The first class in an error's MRO found here gives its status.
STATUS = {
    e.NotSignedIn: 401,
    e.AccessDenied: 403,
    e.UnknownSubscriber: 404,
    e.UnknownPack: 404,
    e.UnknownCard: 404,
    e.InsufficientBalance: 402,
    e.TooManyCodes: 429,
    e.TooManyWrongCodes: 429,
    e.TooManyWrongPins: 429,
    e.CardAlreadyUsed: 409,
    e.CreditRefused: 409,
    e.WrongPlan: 409,
    e.LineNotActive: 409,
    e.NoPacks: 409,
    e.BillingError: 400,
}


def status_of(error: e.BillingError) -> int:
    return next(STATUS[cls] for cls in type(error).__mro__ if cls in STATUS)


def _language() -> str:
    signed, core = g.get("signed"), g.get("core")
    if signed is not None and core is not None:
        try:
            with core.reader() as uow:
                return services.balance_report(uow, signed.msisdn).language
        except e.BillingError:
            pass
    return request.accept_languages.best_match(texts.LANGUAGES) or texts.DEFAULT_LANGUAGE


def error_response(error: e.BillingError, *, fields: list[str] | None = None):
    section = texts.current()["api"]
    code = error.code if error.code in section else "invalid-input"
    values = {"tries_left": getattr(error, "tries_left", None)}
    detail = {"code": error.code, "message": section.render_from(code, _language(), values)}
    if getattr(error, "tries_left", None) is not None:  # a wrong code or a wrong PIN
        detail["tries_left"] = error.tries_left
    if isinstance(error, e.CreditRefused):
        detail["reason"] = error.reason
    until = getattr(error, "until", None)
    if until is not None:
        detail["retry_after"] = until.isoformat()
    if fields:
        detail["fields"] = fields
    status = status_of(error)
    signed = g.get("signed")
    log.info("api %s %s -> %d %s%s", request.method, request.path, status, error.code,
             f" for {mask(signed.msisdn)}" if signed is not None else "")
    response = jsonify(error=detail)
    response.status_code = status
    return response


# The API's answer to an HTTP error no view raised (werkzeug's): its stable code, by status. A
# status not named here is worded as the nearest: any other 4xx as bad input, any 5xx as "error".
HTTP_CODES = {
    400: "invalid-input",
    404: "not-found",
    405: "method-not-allowed",
    413: "body-too-large",
    415: "invalid-input",
}


def http_code(status: int) -> str:
    return HTTP_CODES.get(status, "invalid-input" if status < 500 else "error")


def http_error(error: HTTPException):
    """Under the API every HTTP error answers like a domain error, in JSON: a path that names no
    endpoint (404), a method the path does not take (405, its Allow header kept), a body over the
    limit (413), a crash (500). Any other path keeps Flask's page (the subscriber pages and the
    webhooks are not the API's)."""
    from .api import PREFIX  # the API imports this module

    if request.path != PREFIX and not request.path.startswith(PREFIX + "/"):
        return error
    status = error.code or 500
    code = http_code(status)
    message = texts.current()["api"].render_from(code, _language(), {})
    log.info("api %s %s -> %d %s", request.method, request.path, status, code)
    response = jsonify(error={"code": code, "message": message})
    response.status_code = status
    allow = dict(error.get_headers()).get("Allow")
    if allow:
        response.headers["Allow"] = allow
    return response
