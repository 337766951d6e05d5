"""The subscriber pages: server-rendered, one form per operation, every text from texts/web.toml.

Each page reads or changes the signed-in subscriber's own line only: the number comes from the
session (web.page_session), never from the request, so no id or number in a URL or form can reach
another line. An owner's figures are shown to a viewer only through `billing.sharing.shared_report`,
which refuses alike whether the owner does not exist or gave no grant.

Changes are POST forms with a CSRF token (Flask-WTF) and a one-time request id, the idempotency key
of the billing call: a form sent twice (a double click, a browser retry) charges once. After a
change the browser is redirected to a page that shows the outcome (post/redirect/get).
"""
from __future__ import annotations

import logging
import re
import uuid
from functools import wraps
from pathlib import Path

from flask import (Blueprint, abort, current_app, flash, g, get_flashed_messages, redirect, render_template,
                   request, url_for)
from flask_wtf.csrf import CSRFError, CSRFProtect

import texts
from billing import history as history_rules
from billing import lines, services, validity
from billing.models import ACCOUNTS
from billing.errors import AccessDenied, BillingError, CreditRefused, TooManyWrongPins
from billing.msisdn import mask, normalize

from . import page_session

log = logging.getLogger("web.pages")

pages = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
                  static_url_path="/assets")
csrf = CSRFProtect()

REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
# billing.credit's refusal reasons, in the few words of texts/web.toml [credit-refused]
WHY_REFUSED = {
    "limit": "why-limit", "above-available": "why-limit", "unknown-amount": "why-limit",
    "not-active": "why-not-active", "balance-expired": "why-not-active", "not-prepaid": "why-not-prepaid",
    "too-new": "why-history", "no-topup": "why-history", "first-week": "why-history",
    "nar-not-maxed": "why-nar-not-maxed", "sos-limit": "why-sos-limit",
}


def register(app, core, settings) -> None:
    """The pages on `app`: CSRF checked on their forms only (webhooks carry their own signatures).
    A page text missing from texts/web.toml stops start-up here, naming the template and the key."""
    check_page_texts(texts.current()["web"])
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # a token lives as long as the session holding it
    app.extensions["web.pages"] = core
    csrf.init_app(app)
    page_session.configure(app, core, settings)
    app.register_blueprint(pages)


def _core():
    return current_app.extensions["web.pages"]


TEMPLATES = Path(__file__).parent / "templates"
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([a-z0-9_-]+)["']\s*[,)]""")
# keys templates build from a value: the prefix and every value it can take
KEY_FAMILIES = {
    "status-": ("active", *validity.TIME_STATUSES, *lines.STATUSES),
    "what-": (*history_rules.WHAT, "other"),
    "account-": ACCOUNTS,
    "plan-": ("prepaid", "postpaid"),
    "lang-": texts.LANGUAGES,
}


def check_page_texts(section) -> None:
    """Every key the templates and this module ask for is in the section."""
    wanted = [("web/pages.py", key) for key in LITERAL_KEY.findall(Path(__file__).read_text())]
    wanted += [("web/pages.py", key) for key in WHY_REFUSED.values()]
    wanted += [("web/page_session.py", key) for key in page_session.REFUSALS]
    for template in sorted(TEMPLATES.glob("*.html")):
        wanted += [(f"web/templates/{template.name}", key) for key in LITERAL_KEY.findall(template.read_text())]
    wanted += [("web/templates", prefix + value) for prefix, values in KEY_FAMILIES.items() for value in values]
    for where, key in wanted:
        if key not in section:
            raise texts.InvalidTexts(f"{where} shows [{key}], which texts/web.toml does not have")


# -- the frame: language, text, CSRF, who is signed in -------------------------------------------

def language() -> str:
    return g.get("language") or page_session.anonymous_language()


def t(key: str, **values) -> str:
    return texts.current()["web"].render(key, language(), **values)


@pages.app_template_global("t")
def _t(key: str, **values) -> str:
    return t(key, **values)


@pages.app_template_global("request_id")
def new_request_id() -> str:
    return uuid.uuid4().hex


@pages.context_processor
def _frame():
    return {"lang": language(), "languages": texts.LANGUAGES, "msisdn": g.get("msisdn"),
            "notices": get_flashed_messages(with_categories=True)}


@pages.before_request
def _check_forms():
    if request.endpoint == "pages.static":
        return  # the stylesheet is the same for everyone: no session lookup
    page_session.load_signed_in()
    if request.method == "POST":
        csrf.protect()


@pages.errorhandler(CSRFError)
def _forged_form(error):
    log.info("page form refused: %s", error.description)
    return render_template("message.html", title=t("site-name"), text=t("form-expired")), 400


def signed_in(view):
    """The view for a signed-in subscriber (`g.msisdn`); anyone else goes to the sign-in page."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not g.get("msisdn"):
            if page_session.had_session():
                flash(t("session-ended"), "info")
            return redirect(url_for("pages.sign_in"))
        return view(*args, **kwargs)
    return wrapper


def _request_key(action: str) -> str:
    """The idempotency key of a form's billing call, from the request id rendered into the form."""
    request_id = request.form.get("request_id", "")
    if not REQUEST_ID.match(request_id):
        abort(400)
    return f"web:{g.msisdn}:{action}:{request_id}"


def _refusal(error: BillingError) -> str:
    if isinstance(error, CreditRefused):
        return t("credit-refused", why=WHY_REFUSED.get(error.reason, "why-history"))
    if isinstance(error, TooManyWrongPins):
        return t("card-locked", until=error.until)
    key = f"error-{error.code}"
    return t(key) if key in texts.current()["web"] else t("error")


def _change(action: str, change, done, back: str):
    """Run `change(uow, key)` for the signed-in line; flash `done(result)` or the refusal; back to `back`."""
    try:
        with _core().uow() as uow:
            result = change(uow, _request_key(action))
    except BillingError as error:
        log.info("page %s by %s refused: %s", action, mask(g.msisdn), error.code)
        flash(_refusal(error), "error")
    else:
        log.info("page %s by %s done", action, mask(g.msisdn))
        flash(done(result), "done")
    return redirect(url_for(back))


def _read(question, *args):
    with _core().reader() as uow:
        return question(uow, g.msisdn, *args)


# -- sign-in and out --------------------------------------------------------------------------

@pages.get("/")
def sign_in():
    if g.get("msisdn"):
        return redirect(url_for("pages.balance"))
    return render_template("sign_in.html")


@pages.post("/")
def send_code():
    refusal = page_session.send_code(request.form.get("number", ""))
    if refusal is not None:
        flash(t(refusal), "error")
        return redirect(url_for("pages.sign_in"))
    return redirect(url_for("pages.enter_code"))


@pages.get("/code")
def enter_code():
    pending = page_session.pending_number()
    if pending is None:
        return redirect(url_for("pages.sign_in"))
    return render_template("code.html", number=pending, minutes=page_session.code_minutes())


@pages.post("/code")
def verify_code():
    issued, refusal = page_session.verify(request.form.get("code", ""))
    if refusal is not None:
        flash(t(refusal), "error")
        return redirect(url_for("pages.enter_code") if page_session.pending_number() else url_for("pages.sign_in"))
    return page_session.signed_in_response(redirect(url_for("pages.balance")), issued)


@pages.post("/sign-out")
def sign_out():
    response = page_session.sign_out(redirect(url_for("pages.sign_in")))
    g.msisdn, g.language = None, g.get("language")
    flash(t("signed-out"), "info")
    return response


@pages.get("/language/<code>")
def anonymous_language(code: str):
    """The sign-in page's language switch (a signed-in subscriber's language is a setting)."""
    if code in texts.LANGUAGES:
        page_session.set_anonymous_language(code)
    return redirect(url_for("pages.sign_in"))


# -- figures ----------------------------------------------------------------------------------

@pages.get("/balance")
@signed_in
def balance():
    return render_template("balance.html", report=_read(services.balance_report))


@pages.get("/tariff")
@signed_in
def tariff():
    return render_template("tariff.html", report=_read(services.balance_report))


@pages.get("/history")
@signed_in
def history():
    page = request.args.get("page", "1")
    page = int(page) if page.isdigit() and 0 < int(page) < 100_000 else 1
    return render_template("history.html", history=_read(services.history, page))


# -- packs ------------------------------------------------------------------------------------

@pages.get("/packs")
@signed_in
def packs():
    return render_template("packs.html", packs=_read(services.pack_status), offers=_core().offers.packs)


@pages.post("/packs/order")
@signed_in
def order_pack():
    number = request.form.get("pack", "")
    if not number.isdigit():
        abort(400)
    return _change("pack-order", lambda uow, key: services.order_pack(uow, g.msisdn, int(number), key),
                   lambda order: t("pack-ordered", title=order.pack.title[language()]), "pages.packs")


@pages.post("/packs/deactivate")
@signed_in
def deactivate_packs():
    return _change("pack-deactivate", lambda uow, key: services.deactivate_packs(uow, g.msisdn, key),
                   lambda count: t("packs-deactivated", count=count), "pages.packs")


@pages.post("/packs/stop-renewal")
@signed_in
def stop_renewal():
    return _change("pack-stop-renewal", lambda uow, key: services.stop_pack_renewal(uow, g.msisdn, key),
                   lambda count: t("renewal-stopped", count=count), "pages.packs")


# -- Nar / SOS credit -------------------------------------------------------------------------

def _credit_offer(uow, msisdn):
    """(report, available Nar amount, why none) for the credit page."""
    report = services.balance_report(uow, msisdn)
    if report.plan != "prepaid":
        return report, None, None
    try:
        return report, services.available_nar_credit(uow, msisdn), None
    except CreditRefused as refused:
        return report, None, _refusal(refused)


@pages.get("/credit")
@signed_in
def credit():
    report, available, why_none = _read(_credit_offer)
    return render_template("credit.html", report=report, available=available, why_none=why_none,
                           rules=_core().offers.credit)


@pages.post("/credit/nar")
@signed_in
def take_nar():
    code = request.form.get("code", "")
    if _core().offers.credit.nar_by_code(code) is None:
        abort(400)
    return _change("credit-nar", lambda uow, key: services.take_nar_credit(uow, g.msisdn, key, code),
                   lambda r: t("credit-taken", amount=r.amount, debt=r.debt), "pages.credit")


@pages.post("/credit/sos")
@signed_in
def take_sos():
    return _change("credit-sos", lambda uow, key: services.take_sos_credit(uow, g.msisdn, key),
                   lambda r: t("credit-taken", amount=r.amount, debt=r.debt), "pages.credit")


# -- 650 balance access -----------------------------------------------------------------------

def _owner_figures(uow, viewer):
    """The figures of the owner named in ?number= (read only), or a refusal text, or nothing asked."""
    owner = request.args.get("owner", "").strip()
    if not owner:
        return None, None
    try:
        report = services.shared_report(uow, viewer, owner)
    except AccessDenied as denied:
        return None, _refusal(denied)
    if report.closed:  # a closed number's figures are no one's business any more
        return None, _refusal(AccessDenied("closed"))
    return report, None


@pages.get("/access")
@signed_in
def access():
    report = _read(services.balance_report)
    grantees = _read(services.grantees) if report.plan == "postpaid" else []
    owner, owner_refusal = _read(_owner_figures)
    return render_template("access.html", report=report, grantees=grantees, owner=owner,
                           owner_refusal=owner_refusal)


@pages.post("/access/grant")
@signed_in
def grant():
    number = request.form.get("number", "")
    return _change("grant", lambda uow, key: services.grant_access(uow, g.msisdn, number),
                   lambda _new: t("access-granted", number=normalize(number)), "pages.access")


@pages.post("/access/revoke")
@signed_in
def revoke():
    number = request.form.get("number", "")
    return _change("revoke", lambda uow, key: services.revoke_access(uow, g.msisdn, number),
                   lambda _done: t("access-revoked", number=normalize(number)), "pages.access")


# -- settings ---------------------------------------------------------------------------------

@pages.get("/settings")
@signed_in
def settings():
    return render_template("settings.html", report=_read(services.balance_report))


@pages.post("/settings/language")
@signed_in
def set_language():
    chosen = request.form.get("language", "")

    def change(uow, _key):
        services.set_language(uow, g.msisdn, chosen)
        g.language = chosen  # the confirmation is already in the new language

    return _change("language", change, lambda _r: t("settings-saved"), "pages.settings")


@pages.post("/settings/notifications")
@signed_in
def set_notifications():
    on = request.form.get("notify") == "on"
    return _change("notifications", lambda uow, _key: services.set_balance_notifications(uow, g.msisdn, on),
                   lambda _r: t("settings-saved"), "pages.settings")


# -- scratch-card top-up ----------------------------------------------------------------------

@pages.get("/topup")
@signed_in
def topup():
    return render_template("topup.html")


@pages.post("/topup")
@signed_in
def redeem_card():
    pin = request.form.get("pin", "").strip()
    serial = request.form.get("serial", "").strip() or None
    return _change("card", lambda uow, key: services.redeem_card(uow, g.msisdn, pin, key, serial=serial),
                   lambda card: t("topup-done", amount=card.amount), "pages.topup")
