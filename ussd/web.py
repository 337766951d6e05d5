"""`POST /ussd` in the common gateway form: sessionId, serviceCode, phoneNumber, text.

The answer is text/plain `CON …` (the session continues) or `END …` (it ends), at most 182
characters. The idempotency key is the sessionId plus the step (how many inputs `text` holds),
so a gateway retrying a request gets the same answer and is charged once.
"""
from __future__ import annotations

import re

from flask import Flask, Response, request

from selfcare import logs, metrics

from .codes import parse
from .menus import check_screens
from .service import answer

SESSION_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")
MAX_FIELD = 200


def _plain(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain", content_type="text/plain; charset=utf-8")


def register(app: Flask, core, settings) -> None:
    check_screens(core.offers)  # menu screens are not paged: a pack list too long stops start-up
    @app.post("/ussd")
    def ussd():
        form = request.form
        session_id = form.get("sessionId", "")
        phone = form.get("phoneNumber", "")
        service_code = form.get("serviceCode", "")
        text = form.get("text", "")
        if not SESSION_ID.match(session_id) or not phone or not service_code \
                or any(len(v) > MAX_FIELD for v in (phone, service_code, text)):
            metrics.labelled(metrics.REQUESTS, channel="ussd", service="invalid", outcome="bad-request").inc()
            return _plain("END bad request", 400)
        # the parsed action (a short fixed list), never the code as dialled, names the service
        service = parse(service_code).action
        with logs.bound(request_id=f"ussd:{session_id}", number=phone):
            reply = answer(core, phone, service_code, text, f"ussd:{session_id}")  # a failure is an answer too
        outcome = "error" if reply.failed else "end" if reply.final else "continue"
        metrics.labelled(metrics.REQUESTS, channel="ussd", service=service, outcome=outcome).inc()
        return _plain(reply.wire)
