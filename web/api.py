"""The app's JSON API, /api/v1, described by an OpenAPI document generated from this code (spectree
over the pydantic bodies of web/schemas.py) and served at /api/v1/openapi.json.

Thin like every channel: authenticate the bearer token (billing/signin.py), call one billing
service for the signed-in line, answer JSON. Every figure comes from the functions SMS, USSD and
the IVR use (`balance_report`, `pack_status`, `credit_debt`, ...). Nothing here takes a line from
the request: the line is always the token's, and the one read of another line's figures is
`shared_report`, which checks the owner's grant. A domain error becomes
`{"error": {"code", "message", ...}}` with a 4xx status (web/errors.py); a body that does not fit
its schema is a 400 `invalid-input` before anything runs, so bad input changes nothing.

Changes (a pack, credit, a card) take an optional `Idempotency-Key` header: a retried request with
the same key changes nothing twice. The key is kept per line, so one subscriber's key never meets
another's.
"""
from __future__ import annotations

import re
import uuid
from decimal import Decimal

from flask import Blueprint, abort, g, jsonify, request
from werkzeug.exceptions import HTTPException
from spectree import Response, SecurityScheme, SpecTree, Tag
from spectree.models import SecuritySchemeData

from billing import services, signin
from billing.errors import BillingError, CreditRefused, InvalidInput
from billing.money import fmt_exact
from billing.msisdn import normalize

from . import schemas as s
from .auth import bearer_token, client_address
from .errors import error_response, http_error

PREFIX = "/api/v1"
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")

_SIGNIN, _FIGURES, _PACKS, _CREDIT, _SHARING, _SETTINGS, _TOPUP = (
    Tag(name=n) for n in ("sign-in", "figures", "packs", "credit", "sharing", "settings", "top-up"))
_BEARER = {"bearer": []}


# spectree leaves out of the document every route under its own `path`, so it cannot be told to
# serve the document at /api/v1/openapi.json beside the routes it describes: its own routes go
# unregistered (`_serve_document`), `path` names nothing, and the document is served here.
_SPECTREE_OWN_PATH = "_spectree-unused"
DOCUMENT = f"{PREFIX}/openapi.json"


def _serve_document(app, spec: SpecTree) -> None:
    spec.app = app  # what SpecTree.register sets, without its documentation routes

    @app.get(DOCUMENT)
    def openapi_document():
        return jsonify(spec.spec)


def _spec() -> SpecTree:
    return SpecTree(
        "flask", title="selfcare app API", version="1", path=_SPECTREE_OWN_PATH, filename="openapi.json",
        mode="strict", page_templates={}, before=_refuse_invalid_body, validation_error_status=400,
        annotations=False,
        # spectree 3.0 leaves a plain dict here unconverted (its spec then fails): build the data class.
        security_schemes=[SecurityScheme(name="bearer", data=SecuritySchemeData(type="http", scheme="bearer"))])


def _refuse_invalid_body(_req, _resp, error, _instance, _adapter) -> None:
    """spectree's hook: a body or query that does not fit its schema gets our error shape."""
    if error is None:
        return
    fields = sorted({".".join(str(p) for p in e.get("loc", ())) for e in error.errors()})
    abort(error_response(InvalidInput("the request does not fit its schema"), fields=fields))


def _errors(*statuses: int) -> dict:
    return {f"HTTP_{status}": s.Error for status in statuses}


def _json():
    """The validated JSON body. spectree validates a body only when it is sent as JSON: a form or
    multipart body reaches the view unvalidated, as None, and is refused here."""
    body = getattr(request.context, "json", None)
    if body is None:
        raise InvalidInput("the body must be JSON (Content-Type: application/json)")
    return body


def _key(signed: signin.Signed, what: str) -> str:
    given = request.headers.get("Idempotency-Key")
    if given is not None and not IDEMPOTENCY_KEY.match(given):
        raise InvalidInput("Idempotency-Key: 1 to 80 letters, digits or . _ : -")
    return f"web:{signed.subscriber_id}:{what}:{given or uuid.uuid4().hex}"


def _money(value):
    return None if value is None else fmt_exact(value)


def balance_body(report) -> s.Balance:
    """The same fields as `selfcare subscriber show --json`."""
    body = dict(msisdn=report.msisdn, plan=report.plan, status=report.status, language=report.language,
                tariff=report.tariff.name, roaming=report.roaming, notify_balance=report.notify_balance,
                activated=report.activated_on)
    if report.plan == "prepaid":
        body.update(balance=_money(report.balance), balance_expires=report.balance_expires,
                    subscription_ends=report.subscription_ends, balance_expired=report.balance_expired,
                    nar_debt=_money(report.nar_debt), sos_debt=_money(report.sos_debt))
    else:
        body.update(billed=_money(report.billed), current=_money(report.current),
                    advance=_money(report.advance), bill_day=report.bill_day)
    return s.Balance(**body)


def register(app, core, settings) -> None:
    spec = _spec()
    api = Blueprint("api_v1", __name__, url_prefix=PREFIX)

    @api.before_request
    def remember_core():
        g.core = core  # web/errors.py words an error in the signed-in line's language

    @api.errorhandler(BillingError)
    def domain_error(error: BillingError):
        return error_response(error)

    # A blueprint never sees a path that matched none of its routes, nor a 405 or a 413 refused
    # before its views: the app's handler of every HTTP error does, and answers JSON under /api/v1.
    app.register_error_handler(HTTPException, http_error)

    def signed_in(uow) -> signin.Signed:
        signed = g.signed = signin.authenticate(uow, bearer_token(), "api")
        return signed

    def reading(fn):
        """fn(uow, signed) on a reader (no write lock, no row lock)."""
        with core.reader() as uow:
            return fn(uow, signed_in(uow))

    def writing(fn):
        """fn(uow, signed) in one writer transaction, the token checked first."""
        with core.reader() as uow:
            signed = signed_in(uow)
        with core.uow() as uow:
            return fn(uow, signed)

    # -- sign-in ------------------------------------------------------------------------------

    @api.post("/signin/code")
    @spec.validate(json=s.CodeRequest, resp=Response(HTTP_202=s.CodeRequested, **_errors(400, 429)),
                   tags=[_SIGNIN])
    def request_code():
        """Send a sign-in code by SMS. The same answer for every well-formed number, ours or not."""
        with core.uow() as uow:
            request_id = signin.request_code(uow, _json().msisdn, client_address())
        return s.CodeRequested(request_id=request_id, expires_in_s=int(signin.CODE_TTL.total_seconds())), 202

    @api.post("/signin/verify")
    @spec.validate(json=s.CodeVerification, resp=Response(HTTP_200=s.Token, **_errors(400, 429)), tags=[_SIGNIN])
    def verify_code():
        """Trade the code for a bearer token (5 wrong codes per request at most)."""
        body = _json()
        with core.uow() as uow:
            issued = signin.verify_code(uow, body.request_id, body.msisdn, body.code, "api")
        return s.Token(token=issued.secret, msisdn=issued.msisdn, expires_at=issued.expires_at)

    @api.post("/signout")
    @spec.validate(resp=Response(HTTP_200=s.SignedOut, **_errors(401)), tags=[_SIGNIN], security=_BEARER)
    def sign_out():
        """Revoke this token."""
        def out(uow, _signed):
            return s.SignedOut(signed_out=signin.sign_out(uow, bearer_token()))
        return writing(out)

    # -- figures ------------------------------------------------------------------------------

    @api.get("/balance")
    @spec.validate(resp=Response(HTTP_200=s.Balance, **_errors(401)), tags=[_FIGURES], security=_BEARER)
    def balance():
        """Balance and dates (prepaid) or bill figures (postpaid): the figures 2112 and 650 give."""
        return reading(lambda uow, signed: balance_body(services.balance_report(uow, signed.msisdn)))

    @api.get("/tariff")
    @spec.validate(resp=Response(HTTP_200=s.Tariff, **_errors(401)), tags=[_FIGURES], security=_BEARER)
    def tariff():
        """The line's tariff (titled in its language), plan, status and roaming."""
        def answer(uow, signed):
            report = services.balance_report(uow, signed.msisdn)
            title = report.tariff.title.get(report.language, report.tariff.name)
            return s.Tariff(name=report.tariff.name, title=title, plan=report.plan, roaming=report.roaming,
                            status=report.status)
        return reading(answer)

    @api.get("/history")
    @spec.validate(query=s.HistoryQuery, resp=Response(HTTP_200=s.History, **_errors(400, 401)),
                   tags=[_FIGURES], security=_BEARER)
    def history():
        """Every change to the line's money, newest first, named by what it was."""
        query = request.context.query

        def answer(uow, signed):
            found = services.history(uow, signed.msisdn, query.page, query.per_page)
            return s.History(page=found.page, per_page=query.per_page, has_more=found.has_more, entries=[
                s.HistoryEntry(at=e.when, account=e.account, amount=fmt_exact(e.amount), what=e.what)
                for e in found.entries])
        return reading(answer)

    # -- packs --------------------------------------------------------------------------------

    @api.get("/packs")
    @spec.validate(resp=Response(HTTP_200=s.Packs, **_errors(401)), tags=[_PACKS], security=_BEARER)
    def packs():
        """The line's live packs and the packs it may order."""
        def answer(uow, signed):
            language = services.balance_report(uow, signed.msisdn).language
            states = services.pack_status(uow, signed.msisdn)
            return s.Packs(
                packs=[s.PackState(code=p.pack.code, title=p.pack.title.get(language, p.pack.code), status=p.status,
                                   remaining_mb=f"{p.remaining_mb:.3f}", expires=p.expires, auto_renew=p.auto_renew,
                                   usable=p.usable, throttled=p.throttled, paused=p.paused) for p in states],
                offers=[s.PackOffer(number=p.number, code=p.code, title=p.title.get(language, p.code),
                                    volume_mb=p.volume_mb, price=fmt_exact(p.price))
                        for p in uow.offers.packs.catalogue])
        return reading(answer)

    @api.post("/packs")
    @spec.validate(json=s.PackOrderRequest, resp=Response(HTTP_201=s.PackOrdered, **_errors(400, 401, 402, 404, 409)),
                   tags=[_PACKS], security=_BEARER)
    def order_pack():
        """Order a pack by its number (charged now, renewed every 30 days)."""
        number = _json().number

        def order(uow, signed):
            done = services.order_pack(uow, signed.msisdn, number, _key(signed, "pack"))
            language = services.balance_report(uow, signed.msisdn).language
            return s.PackOrdered(code=done.pack.code, title=done.pack.title.get(language, done.pack.code),
                                 expires=done.expires, duplicate=done.duplicate), 201
        return writing(order)

    def _change_packs(change, what):
        def run(uow, signed):
            return s.PacksChanged(packs=change(uow, signed.msisdn, _key(signed, what)))
        return writing(run)

    @api.post("/packs/deactivate")
    @spec.validate(resp=Response(HTTP_200=s.PacksChanged, **_errors(401, 409)), tags=[_PACKS], security=_BEARER)
    def deactivate_packs():
        """End every live pack now (*100*0#); the remaining MB are annulled."""
        return _change_packs(services.deactivate_packs, "pack-deactivate")

    @api.post("/packs/stop-renewal")
    @spec.validate(resp=Response(HTTP_200=s.PacksChanged, **_errors(401, 409)), tags=[_PACKS], security=_BEARER)
    def stop_renewal():
        """Let the packs run to the end of their period without renewing (*100*00#)."""
        return _change_packs(services.stop_pack_renewal, "pack-stop-renewal")

    # -- Nar / SOS credit ---------------------------------------------------------------------

    @api.get("/credit")
    @spec.validate(resp=Response(HTTP_200=s.Credit, **_errors(401)), tags=[_CREDIT], security=_BEARER)
    def credit():
        """The Nar Credit available now and what is owed."""
        def answer(uow, signed):
            debt = services.credit_debt(uow, signed.msisdn)
            try:
                available, refused = services.available_nar_credit(uow, signed.msisdn), None
            except CreditRefused as no:
                available, refused = Decimal(0), no.reason
            return s.Credit(available=fmt_exact(available), nar_debt=fmt_exact(debt.nar),
                            sos_debt=fmt_exact(debt.sos), refused=refused)
        return reading(answer)

    @api.post("/credit")
    @spec.validate(json=s.CreditRequest, resp=Response(HTTP_201=s.CreditTaken, **_errors(400, 401, 409)),
                   tags=[_CREDIT], security=_BEARER)
    def take_credit():
        """Take Nar Credit (the largest available, or the amount of `code`) or SOS Credit."""
        body = _json()

        def take(uow, signed):
            key = _key(signed, f"credit-{body.kind}")
            if body.kind == "sos":
                done = services.take_sos_credit(uow, signed.msisdn, key)
            else:
                done = services.take_nar_credit(uow, signed.msisdn, key, body.code)
            return s.CreditTaken(kind=done.kind, amount=fmt_exact(done.amount), fee=fmt_exact(done.fee),
                                 debt=fmt_exact(done.debt), duplicate=done.duplicate), 201
        return writing(take)

    # -- 650 balance access -------------------------------------------------------------------

    @api.get("/grants")
    @spec.validate(resp=Response(HTTP_200=s.Grants, **_errors(401)), tags=[_SHARING], security=_BEARER)
    def grants():
        """The numbers this line lets see its figures."""
        return reading(lambda uow, signed: s.Grants(grantees=services.grantees(uow, signed.msisdn)))

    @api.post("/grants")
    @spec.validate(json=s.GrantRequest, resp=Response(HTTP_200=s.GrantChanged, **_errors(400, 401, 409)),
                   tags=[_SHARING], security=_BEARER)
    def grant():
        """Let a number see this (postpaid) line's figures, like `+<number>` to 650."""
        number = _json().msisdn

        def run(uow, signed):
            changed = services.grant_access(uow, signed.msisdn, number)
            return s.GrantChanged(msisdn=_e164(number), changed=changed)
        return writing(run)

    @api.delete("/grants/<grantee>")
    @spec.validate(resp=Response(HTTP_200=s.GrantChanged, **_errors(400, 401)), tags=[_SHARING], security=_BEARER)
    def revoke(grantee: str):
        """Take a number's access away, like `-<number>` to 650."""
        def run(uow, signed):
            return s.GrantChanged(msisdn=_e164(grantee), changed=services.revoke_access(uow, signed.msisdn, grantee))
        return writing(run)

    @api.get("/shared/<owner>")
    @spec.validate(resp=Response(HTTP_200=s.SharedFigures, **_errors(401, 403)), tags=[_SHARING], security=_BEARER)
    def shared(owner: str):
        """The figures of an owner who granted this line access (read-only, figures only)."""
        def answer(uow, signed):
            report = services.shared_report(uow, signed.msisdn, owner)
            return s.SharedFigures(msisdn=report.msisdn, plan=report.plan, balance=_money(report.balance),
                                   billed=_money(report.billed), current=_money(report.current),
                                   advance=_money(report.advance), bill_day=report.bill_day)
        return reading(answer)

    # -- settings -----------------------------------------------------------------------------

    def settings_body(report) -> s.Settings:
        return s.Settings(language=report.language, balance_sms=report.notify_balance)

    @api.get("/settings")
    @spec.validate(resp=Response(HTTP_200=s.Settings, **_errors(401)), tags=[_SETTINGS], security=_BEARER)
    def get_settings():
        """The line's language and whether balance-change SMS go out."""
        return reading(lambda uow, signed: settings_body(services.balance_report(uow, signed.msisdn)))

    @api.patch("/settings")
    @spec.validate(json=s.SettingsChange, resp=Response(HTTP_200=s.Settings, **_errors(400, 401)),
                   tags=[_SETTINGS], security=_BEARER)
    def change_settings():
        """Change the language (of SMS, USSD, the IVR and the pages) and the balance-change SMS switch."""
        change = _json()

        def run(uow, signed):
            with uow.atomic():
                if change.language is not None:
                    services.set_language(uow, signed.msisdn, change.language)
                if change.balance_sms is not None:
                    services.set_balance_notifications(uow, signed.msisdn, change.balance_sms)
            return settings_body(services.balance_report(uow, signed.msisdn))
        return writing(run)

    # -- scratch-card top-up ------------------------------------------------------------------

    @api.post("/topup/card")
    @spec.validate(json=s.CardTopUpRequest, resp=Response(HTTP_200=s.CardToppedUp, **_errors(400, 401, 404, 409, 429)),
                   tags=[_TOPUP], security=_BEARER)
    def card_topup():
        """Top up with a scratch card's serial and PIN (wrong PINs are counted per line)."""
        body = _json()

        def run(uow, signed):
            done = services.redeem_card(uow, signed.msisdn, body.pin, _key(signed, "card"), serial=body.serial)
            return s.CardToppedUp(serial=done.serial, amount=fmt_exact(done.amount), duplicate=done.duplicate,
                                  figures=balance_body(done.report))
        return writing(run)

    app.register_blueprint(api)
    _serve_document(app, spec)


def _e164(number: str) -> str:
    return normalize(number)
