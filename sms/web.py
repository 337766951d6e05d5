"""The SMS endpoints: Twilio's signed webhook, Kannel's sms-service get-url and Kannel's
delivery reports.

The first two are thin: check who is calling, pull (sender, short number, text, message id) out of
the request, call `handle_sms`, and wrap the reply the way that gateway wants it. Kannel's is a
plain WSGI app in front of Flask (`KannelSmsService`: every SMS through Kannel passes there). The
third records what Kannel reports about a message we sent (`dlr-url`, see sms/dispatch.py).
"""
from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import time
import uuid
from http import HTTPStatus
from urllib.parse import parse_qsl

from flask import Response, request
from twilio.twiml.messaging_response import MessagingResponse

from billing import outbox
from billing.msisdn import mask, mask_numbers
from selfcare import logs, metrics
from selfcare.twilio_signature import twilio_signature_ok

from .commands import SHORT_NUMBERS, parse, short_number_of
from .dispatch import DLR_STATUS
from .service import Reply, handle_sms, sms_service

log = logging.getLogger("sms.web")

PLAIN_UTF8 = "text/plain; charset=utf-8"


# -- Twilio -----------------------------------------------------------------------------------

def _twilio_short_number(req) -> str:
    """Twilio numbers are full phone numbers: the webhook URL names the service (`?service=2112`)
    unless the number itself is one of the short numbers."""
    to = short_number_of(req.form.get("To", ""))
    if to in SHORT_NUMBERS:
        return to
    return short_number_of(req.args.get("service", to))


def twiml(reply_text: str) -> Response:
    answer = MessagingResponse()
    answer.message(reply_text)
    return Response(str(answer), status=200, content_type="application/xml; charset=utf-8")


def twilio_webhook(core, settings):
    if not twilio_signature_ok(settings, request):
        log.warning("twilio webhook from %s refused: signature missing or wrong", request.remote_addr)
        return Response("forbidden\n", status=403, content_type=PLAIN_UTF8)
    sid = request.form.get("MessageSid") or request.form.get("SmsSid")
    sender = request.form.get("From")
    if not sid or not sender:
        return Response("MessageSid and From are required\n", status=400, content_type=PLAIN_UTF8)
    reply = _handle(core, "twilio", sender, _twilio_short_number(request), request.form.get("Body", ""), sid)
    # Twilio has no flash (class 0) SMS: balance replies arrive as ordinary messages (docs/rules.md).
    return twiml(reply.text)


# -- Kannel -----------------------------------------------------------------------------------

def _allowed(settings, address: str | None) -> bool:
    if not settings.kannel_allow:
        return True
    return _address_allowed(settings.kannel_allow, address)


@functools.lru_cache(maxsize=256)
def _address_allowed(allow: tuple[str, ...], address: str | None) -> bool:
    # Remembered: Kannel calls from its box's one or two addresses, and parsing the address and
    # every allowed network again was 2% of a serving process's CPU an SMS (py-spy, bench/README.md).
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    for entry in allow:
        try:
            if ip in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:
            log.error("SELFCARE_KANNEL_ALLOW entry %r is not an address or network", entry)
    return False


def kannel_caller_ok(settings, values, remote_addr: str | None) -> bool:
    # No secret configured means nobody is trusted: an open endpoint would let anyone charge anyone.
    if not settings.kannel_secret:
        return False
    given = values.get("secret", "")
    if not hmac.compare_digest(given.encode(), settings.kannel_secret.encode()):
        return False
    return _allowed(settings, remote_addr)


def kannel_answer(core, settings, values, remote_addr: str | None) -> tuple[int, list[tuple[str, str]], str]:
    """Kannel's sms-service request (its get-url's parameters, or the same as a form) answered:
    (status, headers, body); the body is the MT text smsbox sends back."""
    if not kannel_caller_ok(settings, values, remote_addr):
        log.warning("kannel request from %s refused: secret or address not allowed", remote_addr)
        return 403, [], "forbidden\n"
    sender, to = values.get("from", "").strip(), values.get("to", "").strip()
    if not sender or not to:
        return 400, [], "from and to are required\n"
    message_id = values.get("id", "").strip()
    if not message_id:
        # Without Kannel's %I nothing tells a retry from a new SMS: never charge it twice by mistake
        # is impossible then, so say so in the log (the get-url should carry id=%I).
        message_id = f"noid-{uuid.uuid4()}"
        log.warning("kannel request from %s without id: cannot de-duplicate", mask(sender))
    reply = _handle(core, "kannel", sender, to, values.get("text", ""), message_id)
    headers = []
    if reply.ucs2:
        headers.append(("X-Kannel-Coding", "2"))
    if reply.flash:
        headers.append(("X-Kannel-MClass", "0"))
    return 200, headers, reply.text


class KannelSmsService:
    """`GET|POST /sms/kannel` as a plain WSGI app in front of Flask, which serves every other path.

    It is the busiest endpoint (every SMS through Kannel), and Flask's machinery around a request —
    the request and app contexts, the cookie session opened for every request, werkzeug's
    request and response objects — cost more of a serving process's CPU than the answer itself
    (py-spy under load: Flask and werkzeug 29% of the time the GIL was held; bench/README.md).
    Here a request is its query string or form and the answer three headers."""

    def __init__(self, flask_wsgi_app, core, settings, max_body: int):
        self.next = flask_wsgi_app
        self.core, self.settings, self.max_body = core, settings, max_body

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != "/sms/kannel":
            return self.next(environ, start_response)
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "POST"):
            return _plain(start_response, 405, "method not allowed\n", [("Allow", "GET, POST")])
        try:
            values = _values(environ, self.max_body)
        except _BodyTooLarge:
            return _plain(start_response, 413, "request body too large\n")
        try:
            status, headers, body = kannel_answer(self.core, self.settings, values, environ.get("REMOTE_ADDR"))
        except Exception:  # noqa: BLE001 - a 500, as Flask would answer, with the traceback logged
            log.exception("kannel request failed")
            return _plain(start_response, 500, "internal error\n")
        return _plain(start_response, status, body, headers)


class _BodyTooLarge(Exception):
    pass


def _plain(start_response, status: int, text: str, headers=()) -> list[bytes]:
    body = text.encode("utf-8")
    start_response(f"{status} {HTTPStatus(status).phrase}", [("Content-Type", PLAIN_UTF8), ("Content-Length", str(len(body))),
                                          *headers])
    return [body]


def _values(environ, max_body: int) -> dict[str, str]:
    """The query string's parameters, then a urlencoded form's (the first of a name wins, as in
    werkzeug's `request.values`); percent-escapes read as UTF-8, a bad byte replaced."""
    pairs = _pairs(environ.get("QUERY_STRING", ""))
    if environ.get("REQUEST_METHOD") == "POST":
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > max_body:
            raise _BodyTooLarge()
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded") and length:
            pairs += _pairs(environ["wsgi.input"].read(length).decode("latin-1"))
    values: dict[str, str] = {}
    for name, value in pairs:
        values.setdefault(name, value)
    return values


def _pairs(wsgi_text: str) -> list[tuple[str, str]]:
    # WSGI hands bytes over as latin-1 text; the parameters themselves are UTF-8.
    return parse_qsl(wsgi_text.encode("latin-1").decode("utf-8", "replace"), keep_blank_values=True,
                     encoding="utf-8", errors="replace")


def kannel_delivery_report(core, settings):
    """`GET /sms/kannel/dlr?ref=<ref>&status=<bit>&secret=...`: smsbox reports on a message we sent."""
    if not kannel_caller_ok(settings, request.values, request.remote_addr):
        log.warning("kannel delivery report from %s refused: secret or address not allowed", request.remote_addr)
        return Response("forbidden\n", status=403, content_type=PLAIN_UTF8)
    ref = request.values.get("ref", "").strip()
    try:
        status = DLR_STATUS[int(request.values.get("status", ""))]
    except (KeyError, ValueError):
        return Response("status must be 1, 2, 4, 8 or 16\n", status=400, content_type=PLAIN_UTF8)
    if not ref:
        return Response("ref is required\n", status=400, content_type=PLAIN_UTF8)
    with core.uow() as uow:
        known = outbox.record_delivery(uow, ref, status)
    if not known:
        log.warning("kannel delivery report for unknown message %s", mask_numbers(ref[:40]))
        return Response("unknown message\n", status=404, content_type=PLAIN_UTF8)
    log.info("kannel delivery report for %s: %s", ref, status)
    if status in FAILED_DELIVERY:
        metrics.labelled(metrics.DELIVERY_FAILURES, transport="kannel", reason=status).inc()
    return Response("ok\n", status=200, content_type=PLAIN_UTF8)


# -- shared -----------------------------------------------------------------------------------

FAILED_DELIVERY = ("undelivered", "rejected")
# Replies that refuse what was asked, and why (the rest answer it).
REFUSAL_OUTCOMES = ("insufficient-balance", "balance-expired", "line-suspended", "line-closed", "unknown-sender",
                    "use-2112", "use-650")


def _handle(core, gateway: str, sender: str, to: str, text: str, message_id: str) -> Reply:
    key = f"{gateway}:{message_id}"
    started = time.perf_counter()
    with logs.bound(request_id=key, number=sender):
        try:
            reply = handle_sms(core, sender, to, text, key)
        except Exception:
            # Nothing remembered, so the gateway's retry (same key) is handled afresh and charged once.
            log.exception("sms from %s to %s failed (%s)", mask(sender), to, key)
            reply = sms_service(core).unavailable(parse(to, text))
            reply = Reply(reply.text, reply.command, outcome="error")
    _count(gateway, reply, time.perf_counter() - started)
    return reply


def _count(gateway: str, reply: Reply, seconds: float) -> None:
    """What this SMS did, for /metrics; the service label only ever takes a known short number."""
    service = reply.command.short_number if reply.command.short_number in SHORT_NUMBERS else "other"
    outcome = "retry" if reply.duplicate else reply.outcome or "unknown"
    metrics.labelled(metrics.REQUESTS, channel="sms", service=service, outcome=outcome).inc()
    metrics.labelled(metrics.SMS_REQUEST_SECONDS, gateway=gateway).observe(seconds)
    if reply.charged:
        metrics.labelled(metrics.CHARGES, channel="sms", service=service).inc()
        metrics.labelled(metrics.CHARGED_AZN, channel="sms", service=service).inc(float(reply.charged))
    if outcome in REFUSAL_OUTCOMES:
        metrics.labelled(metrics.REFUSALS, channel="sms", service=service, reason=outcome).inc()


def register(app, core, settings) -> None:
    sms_service(core)
    app.add_url_rule("/sms/twilio", "sms_twilio", lambda: twilio_webhook(core, settings), methods=["POST"])
    app.wsgi_app = KannelSmsService(app.wsgi_app, core, settings, app.config["MAX_CONTENT_LENGTH"])
    app.add_url_rule("/sms/kannel/dlr", "sms_kannel_dlr", lambda: kannel_delivery_report(core, settings),
                     methods=["GET", "POST"])
