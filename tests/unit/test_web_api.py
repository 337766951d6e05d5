"""The app's JSON API (/api/v1), every endpoint on SQLite and PostgreSQL: pinned figures, the
same numbers the SMS channel gives, errors as stable codes in the subscriber's language, and bad
input that changes nothing."""
from datetime import timedelta
from decimal import Decimal as D

from sqlalchemy import func, select

from billing import services
from billing.models import LedgerEntry, OutboxMessage
from sms.service import handle_sms
from tests.unit.api_support import Api, error_of
from tests.unit.cards_support import PIN, WRONG_PIN, add_card
from tests.unit.packs_credit_scenarios import POST, PRE, credit_ready_line, open_postpaid, open_prepaid

VIEWER = "+994502223344"


def entries(core):
    with core.reader() as uow:
        return uow.session.scalar(select(func.count(LedgerEntry.id)))


def outbox_templates(core, msisdn=PRE):
    with core.reader() as uow:
        return list(uow.session.scalars(select(OutboxMessage.template).where(OutboxMessage.msisdn == msisdn)
                                        .order_by(OutboxMessage.id)))


# -- sign-in -----------------------------------------------------------------------------------

def test_sign_in_with_the_code_from_the_sms_and_sign_out(any_core):
    open_prepaid(any_core, balance="12.48")
    api = Api(any_core)
    request_id = api.ask_code("0501234567")
    assert outbox_templates(any_core) == ["signin-code"]
    signed = api.signed_in("0501234567")
    assert signed.get("/balance").status_code == 200
    answer = signed.post("/signout")
    assert (answer.status_code, answer.get_json()) == (200, {"signed_out": True})
    assert error_of(signed.get("/balance")) == (401, "not-signed-in")
    assert isinstance(request_id, str)


def test_asking_for_a_code_answers_alike_for_a_number_we_do_not_serve(any_core):
    open_prepaid(any_core)
    api = Api(any_core)
    ours = api.post("/signin/code", {"msisdn": PRE})
    theirs = api.post("/signin/code", {"msisdn": "+994509998877"})
    assert (ours.status_code, sorted(ours.get_json())) == (theirs.status_code, sorted(theirs.get_json())) \
        == (202, ["expires_in_s", "request_id"])
    assert theirs.get_json()["expires_in_s"] == 300
    assert outbox_templates(any_core, "+994509998877") == []


def test_a_wrong_code_says_how_many_tries_are_left_in_the_callers_language(any_core):
    open_prepaid(any_core)
    api = Api(any_core)
    request_id = api.ask_code(PRE)
    answer = api.post("/signin/verify", {"request_id": request_id, "msisdn": PRE, "code": "000000"},
                      headers={"Accept-Language": "ru"})
    if answer.status_code == 200:  # one in a million: the random code was 000000
        return
    assert answer.status_code == 400
    assert answer.get_json() == {"error": {"code": "wrong-code", "message": "Неверный код. Осталось попыток: 4.",
                                           "tries_left": 4}}


def test_an_expired_code_is_refused(any_core, clock):
    open_prepaid(any_core)
    api = Api(any_core)
    request_id = api.ask_code(PRE)
    clock.advance(timedelta(minutes=6))
    from tests.unit.api_support import code_in_outbox
    answer = api.post("/signin/verify", {"request_id": request_id, "msisdn": PRE,
                                         "code": code_in_outbox(any_core, request_id)})
    assert error_of(answer) == (400, "code-expired")


def test_the_sixth_code_of_an_hour_is_refused_with_when_to_try_again(any_core):
    api = Api(any_core)
    for _ in range(5):
        api.ask_code(PRE)
    answer = api.post("/signin/code", {"msisdn": PRE}, headers={"Accept-Language": "en"})
    assert error_of(answer) == (429, "too-many-codes")
    assert answer.get_json()["error"]["retry_after"] == "2026-11-22T13:00:00"
    assert answer.get_json()["error"]["message"] == "Too many codes were asked for this hour. Try again later."


# -- figures -----------------------------------------------------------------------------------

def test_prepaid_balance_and_dates_are_the_figures_2112_gives(any_core):
    open_prepaid(any_core, balance="12.48", language="en")
    api = Api(any_core).signed_in(PRE)
    body = api.get("/balance").get_json()
    assert body == {"msisdn": PRE, "plan": "prepaid", "status": "active", "language": "en", "tariff": "klass",
                    "roaming": False, "notify_balance": True, "activated": "2026-11-22", "balance": "12.4800",
                    "balance_expires": "2027-02-20", "subscription_ends": "2027-08-19", "balance_expired": False,
                    "nar_debt": "0.0000", "sos_debt": "0.0000", "billed": None, "current": None, "advance": None,
                    "bill_day": None}
    sms = handle_sms(any_core, PRE, "2112", "", "sms-1")  # the same line asks by SMS (0.02 AZN fee)
    assert sms.text == ("Balance: 12.46 AZN. Balance valid until February 20, 2027. "
                        "Subscription ends on August 19, 2027.")
    assert api.get("/balance").get_json()["balance"] == "12.4600"


def test_postpaid_bill_figures_are_the_figures_650_gives(any_core):
    open_postpaid(any_core, billed=D("3.10"), current=D("1.25"), advance=D("0.50"), language="en")
    body = Api(any_core).signed_in(POST).get("/balance").get_json()
    assert {k: body[k] for k in ("plan", "tariff", "billed", "current", "advance", "bill_day", "balance")} == {
        "plan": "postpaid", "tariff": "biznes", "billed": "3.1000", "current": "1.2500", "advance": "0.5000",
        "bill_day": 10, "balance": None}
    sms = handle_sms(any_core, POST, "650", "", "sms-1")
    assert sms.text == "Billed amount: 3.10 AZN. Current amount: 1.28 AZN. Advance payment: 0.50 AZN."
    after = Api(any_core).signed_in(POST).get("/balance").get_json()  # the 0.0236 fee, exact; the SMS rounds up
    assert (after["billed"], after["current"], after["advance"]) == ("3.1000", "1.2736", "0.5000")


def test_tariff_and_roaming(any_core):
    open_prepaid(any_core, language="ru", roaming=True)
    body = Api(any_core).signed_in(PRE).get("/tariff").get_json()
    assert body == {"name": "klass", "title": "Класс", "plan": "prepaid", "roaming": True, "status": "active"}


def test_history_names_each_entry_and_pages_newest_first(any_core):
    open_prepaid(any_core, balance="10.00")
    api = Api(any_core).signed_in(PRE)
    handle_sms(any_core, PRE, "2112", "", "sms-1")
    assert api.post("/packs", {"number": 1}).status_code == 201
    with any_core.uow() as uow:
        services.topup(uow, PRE, D("5"), "topup-1")
    body = api.get("/history", query_string={"per_page": 2}).get_json()
    assert (body["has_more"], body["page"], body["per_page"]) == (True, 1, 2)
    assert [(e["what"], e["amount"], e["account"]) for e in body["entries"]] == [
        ("topup", "5.0000", "balance"), ("pack", "-3.0000", "balance")]
    second = api.get("/history", query_string={"page": 2, "per_page": 2}).get_json()
    assert [(e["what"], e["amount"]) for e in second["entries"]] == [("sms", "-0.0200"), ("opening", "10.0000")]
    assert second["has_more"] is False
    assert api.get("/history", query_string={"page": 3, "per_page": 2}).get_json()["entries"] == []
    assert error_of(api.get("/history", query_string={"per_page": 1000})) == (400, "invalid-input")


def test_history_names_a_charged_call_and_a_nar_credit(any_core, clock):
    credit_ready_line(any_core, clock)  # topped up 5 AZN, 30 days ago
    api = Api(any_core).signed_in(PRE)
    with any_core.uow() as uow:
        services.charge_call(uow, PRE, 75, "standard", key="agi:call-1")  # 75 s: 3 × 15 s at 0.04 AZN
    assert api.post("/credit", {"kind": "nar", "code": "05"}).status_code == 201
    body = api.get("/history").get_json()
    assert [(e["at"], e["what"], e["account"], e["amount"]) for e in body["entries"]] == [
        ("2026-12-22T12:00:00", "credit", "balance", "-0.0800"),  # the request fee
        ("2026-12-22T12:00:00", "credit", "nar_debt", "0.6000"),  # 0.50 lent + its 0.10 fee owed
        ("2026-12-22T12:00:00", "credit", "balance", "0.5000"),
        ("2026-12-22T12:00:00", "call", "balance", "-0.1200"),
        ("2026-11-22T12:00:00", "topup", "balance", "5.0000")]


# -- packs -------------------------------------------------------------------------------------

def test_order_a_pack_see_it_stop_its_renewal_and_deactivate_it(any_core):
    open_prepaid(any_core, balance="10.00", language="en")
    api = Api(any_core).signed_in(PRE)
    listed = api.get("/packs").get_json()
    assert listed["packs"] == [] and listed["offers"][1] == {
        "number": 2, "code": "3gb", "title": "3 GB", "volume_mb": 3072, "price": "6.0000"}
    ordered = api.post("/packs", {"number": 2})
    assert (ordered.status_code, ordered.get_json()) == (201, {"code": "3gb", "title": "3 GB",
                                                               "expires": "2026-12-22T12:00:00", "duplicate": False})
    [pack] = api.get("/packs").get_json()["packs"]
    assert (pack["code"], pack["remaining_mb"], pack["auto_renew"], pack["usable"]) == ("3gb", "3072.000", True, True)
    assert api.get("/balance").get_json()["balance"] == "4.0000"
    assert api.post("/packs/stop-renewal").get_json() == {"packs": 1}
    assert api.get("/packs").get_json()["packs"][0]["auto_renew"] is False
    assert api.post("/packs/deactivate").get_json() == {"packs": 1}
    assert api.get("/packs").get_json()["packs"] == []
    assert error_of(api.post("/packs/deactivate")) == (409, "no-packs")


def test_a_retried_order_with_the_same_idempotency_key_charges_once(any_core):
    open_prepaid(any_core, balance="10.00")
    api = Api(any_core).signed_in(PRE)
    first = api.post("/packs", {"number": 1}, headers={"Idempotency-Key": "order-77"})
    again = api.post("/packs", {"number": 1}, headers={"Idempotency-Key": "order-77"})
    assert (first.get_json()["duplicate"], again.get_json()["duplicate"]) == (False, True)
    assert api.get("/balance").get_json()["balance"] == "7.0000"
    assert error_of(api.post("/packs", {"number": 1}, headers={"Idempotency-Key": "bad key!"})) == (400, "invalid-input")


def test_a_pack_without_enough_balance_is_refused_and_changes_nothing(any_core):
    open_prepaid(any_core, balance="2.00")
    api = Api(any_core).signed_in(PRE)
    before = entries(any_core)
    assert error_of(api.post("/packs", {"number": 4})) == (402, "insufficient-balance")
    assert error_of(api.post("/packs", {"number": 42})) == (404, "unknown-pack")
    for bad in ({"number": "two"}, {"number": 0}, {}, {"number": 1, "extra": 1}, None):
        assert error_of(api.post("/packs", bad)) == (400, "invalid-input")
    assert entries(any_core) == before and api.get("/balance").get_json()["balance"] == "2.0000"


# -- credit ------------------------------------------------------------------------------------

def test_nar_credit_available_taken_and_owed(any_core, clock):
    credit_ready_line(any_core, clock)  # topped up 5 AZN in its first week, 30 days in network
    api = Api(any_core).signed_in(PRE)
    assert api.get("/credit").get_json() == {"available": "3.0000", "nar_debt": "0.0000", "sos_debt": "0.0000",
                                             "refused": None}
    taken = api.post("/credit", {"kind": "nar"})
    assert (taken.status_code, taken.get_json()) == (201, {"kind": "nar", "amount": "3.0000", "fee": "0.6000",
                                                           "debt": "3.6000", "duplicate": False})
    assert api.get("/credit").get_json()["nar_debt"] == "3.6000"
    refused = api.post("/credit", {"kind": "nar"})
    assert error_of(refused)[0] == 409 and refused.get_json()["error"]["reason"] == "limit"


def test_credit_on_a_new_line_is_not_available_and_says_why(any_core):
    open_prepaid(any_core)
    api = Api(any_core).signed_in(PRE)
    assert api.get("/credit").get_json() == {"available": "0.0000", "nar_debt": "0.0000", "sos_debt": "0.0000",
                                             "refused": "too-new"}
    assert error_of(api.post("/credit", {"kind": "nar", "code": "7"})) == (400, "invalid-input")


def test_sos_credit_after_nar_is_maxed_up_to_two_credits_once_per_key(any_core, clock):
    credit_ready_line(any_core, clock)  # 5.00 AZN; Nar limit 3 AZN
    api = Api(any_core).signed_in(PRE)
    early = api.post("/credit", {"kind": "sos"})
    assert error_of(early) == (409, "credit-refused") and early.get_json()["error"]["reason"] == "nar-not-maxed"
    assert early.get_json()["error"]["message"] == "Credit is not available to this line now."
    assert api.post("/credit", {"kind": "nar"}).status_code == 201  # 3 AZN, Nar's maximum
    sos = {"kind": "sos", "amount": "1.0000", "fee": "0.4000", "debt": "1.4000", "duplicate": False}
    taken = api.post("/credit", {"kind": "sos"}, headers={"Idempotency-Key": "sos-1"})
    assert (taken.status_code, taken.get_json()) == (201, sos)
    again = api.post("/credit", {"kind": "sos"}, headers={"Idempotency-Key": "sos-1"})
    assert (again.status_code, again.get_json()) == (201, {**sos, "duplicate": True})
    second = api.post("/credit", {"kind": "sos"})
    assert (second.status_code, second.get_json()["debt"]) == (201, "2.8000")
    third = api.post("/credit", {"kind": "sos"})
    assert error_of(third) == (409, "credit-refused") and third.get_json()["error"]["reason"] == "sos-limit"
    assert api.get("/credit").get_json() == {"available": "0.0000", "nar_debt": "3.6000", "sos_debt": "2.8000",
                                             "refused": "limit"}
    balance = api.get("/balance").get_json()
    # 5.00 + 3.00 Nar + 2 × 1.00 SOS, less 3 × 0.08 AZN for each credit given
    assert (balance["balance"], balance["sos_debt"]) == ("9.7600", "2.8000")


def test_sos_credit_is_for_prepaid_lines(any_core):
    open_postpaid(any_core)
    api = Api(any_core).signed_in(POST)
    refused = api.post("/credit", {"kind": "sos"})
    assert error_of(refused) == (409, "credit-refused") and refused.get_json()["error"]["reason"] == "not-prepaid"
    assert api.get("/balance").get_json()["current"] == "0.0000"  # nothing lent, nothing charged


# -- 650 balance access ------------------------------------------------------------------------

def test_grant_see_the_owners_figures_and_revoke(any_core):
    open_postpaid(any_core, billed=D("3.10"), current=D("1.25"))
    open_prepaid(any_core, msisdn=VIEWER)
    owner, viewer = Api(any_core).signed_in(POST), Api(any_core).signed_in(VIEWER)
    assert error_of(viewer.get("/shared/0551234567")) == (403, "access-denied")
    assert owner.post("/grants", {"msisdn": "0502223344"}).get_json() == {"msisdn": VIEWER, "changed": True}
    assert owner.get("/grants").get_json() == {"grantees": [VIEWER]}
    assert error_of(owner.post("/grants", {"msisdn": "12"})) == (400, "invalid-msisdn")
    assert error_of(owner.post("/grants", {"msisdn": POST})) == (400, "invalid-input")  # one's own number
    assert viewer.get("/shared/0551234567").get_json() == {
        "msisdn": POST, "plan": "postpaid", "balance": None, "billed": "3.1000", "current": "1.2500",
        "advance": "0.0000", "bill_day": 10}
    assert owner.delete("/grants/0502223344").get_json() == {"msisdn": VIEWER, "changed": True}
    assert owner.delete("/grants/0502223344").get_json() == {"msisdn": VIEWER, "changed": False}
    assert error_of(viewer.get("/shared/0551234567")) == (403, "access-denied")


def test_a_prepaid_line_cannot_grant_access(any_core):
    open_prepaid(any_core)
    api = Api(any_core).signed_in(PRE)
    assert error_of(api.post("/grants", {"msisdn": VIEWER})) == (409, "wrong-plan")


# -- settings ----------------------------------------------------------------------------------

def test_language_and_balance_sms_switches(any_core):
    open_prepaid(any_core, balance="10.00")
    api = Api(any_core).signed_in(PRE)
    assert api.get("/settings").get_json() == {"language": "az", "balance_sms": True}
    changed = api.patch("/settings", {"language": "ru", "balance_sms": False})
    assert changed.get_json() == {"language": "ru", "balance_sms": False}
    assert api.get("/shared/0551234567").get_json()["error"]["message"] == "У вас нет доступа к балансу этого номера."
    with any_core.uow() as uow:  # the next change to the money sends no balance-change SMS
        services.topup(uow, PRE, D("5"), "topup-1")
    assert "balance-changed" not in outbox_templates(any_core)
    assert error_of(api.patch("/settings", {"language": "de"})) == (400, "invalid-input")
    assert api.get("/settings").get_json() == {"language": "ru", "balance_sms": False}


# -- scratch-card top-up -----------------------------------------------------------------------

def test_a_scratch_card_tops_up_by_serial_and_pin(any_core):
    open_prepaid(any_core, balance="2.00")
    add_card(any_core, value="5.00")
    api = Api(any_core).signed_in(PRE)
    wrong = api.post("/topup/card", {"serial": "1000000001", "pin": WRONG_PIN})
    assert error_of(wrong) == (400, "wrong-pin") and wrong.get_json()["error"]["tries_left"] == 4
    assert error_of(api.post("/topup/card", {"serial": "1000000001", "pin": "12"})) == (400, "invalid-pin")
    assert error_of(api.post("/topup/card", {"serial": "12", "pin": PIN})) == (400, "invalid-serial")
    done = api.post("/topup/card", {"serial": "1000000001", "pin": PIN})
    body = done.get_json()
    assert (done.status_code, body["serial"], body["amount"], body["duplicate"], body["figures"]["balance"]) == (
        200, "1000000001", "5.0000", False, "7.0000")
    assert error_of(api.post("/topup/card", {"serial": "1000000001", "pin": PIN})) == (409, "card-used")


def test_a_path_under_the_api_that_names_no_endpoint_is_a_json_404_and_others_keep_flasks_page(core):
    api = Api(core)
    answer = api.get("/no-such-thing", headers={"Accept-Language": "ru"})
    assert answer.status_code == 404
    assert answer.get_json() == {"error": {"code": "not-found", "message": "Такого адреса нет."}}
    page = api.client.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html"


def test_a_method_a_path_does_not_take_is_a_json_405_in_the_callers_language(any_core):
    open_prepaid(any_core, balance="12.48", language="ru")
    api = Api(any_core)
    answer = api.get("/signin/code", headers={"Accept-Language": "en"})
    allowed = sorted(answer.headers["Allow"].split(", "))  # werkzeug's order varies from run to run
    assert (answer.status_code, answer.mimetype, allowed) == (405, "application/json", ["OPTIONS", "POST"])
    assert answer.get_json() == {"error": {"code": "method-not-allowed",
                                           "message": "This address does not take that method."}}
    signed = api.signed_in("0501234567")
    put = signed.client.put("/api/v1/balance", headers={"Authorization": f"Bearer {signed.token}"})
    assert (put.status_code, sorted(put.headers["Allow"].split(", "))) == (405, ["GET", "HEAD", "OPTIONS"])
    assert put.get_json() == {"error": {"code": "method-not-allowed", "message": "Bu ünvan bu metodu qəbul etmir."}}
    refused = api.client.delete("/api/v1/balance", headers={"Accept-Language": "ru"})
    assert refused.get_json()["error"]["message"] == "Этот адрес не принимает этот метод."


def test_a_body_over_the_limit_is_a_json_413_and_sends_no_code(any_core):
    open_prepaid(any_core, balance="12.48")
    api = Api(any_core)
    answer = api.post("/signin/code", {"msisdn": "0501234567", "pad": "x" * 70_000}, headers={"Accept-Language": "ru"})
    assert (answer.status_code, answer.mimetype) == (413, "application/json")
    assert answer.get_json() == {"error": {"code": "body-too-large", "message": "Тело запроса слишком большое."}}
    assert outbox_templates(any_core) == []


def test_a_crash_under_the_api_is_a_json_500_and_elsewhere_flasks_page(core):
    api = Api(core)

    def crash():
        raise RuntimeError("a bug")

    api.client.application.add_url_rule("/api/v1/crash", "crash", crash)  # a route that fails, for this test only
    api.client.application.add_url_rule("/crash", "page_crash", crash)
    answer = api.get("/crash", headers={"Accept-Language": "en"})
    assert (answer.status_code, answer.get_json()) == (
        500, {"error": {"code": "error", "message": "Something went wrong. Try again later."}})
    page = api.client.get("/crash")
    assert page.status_code == 500 and page.mimetype == "text/html"
    webhook = api.client.get("/ussd")  # the webhooks keep Flask's answers too
    assert (webhook.status_code, webhook.mimetype) == (405, "text/html")


def test_every_http_error_code_of_the_api_is_worded_in_az_en_and_ru():
    import texts
    from web.errors import HTTP_CODES, http_code

    section = texts.load()["api"]
    for code in {*HTTP_CODES.values(), http_code(418), http_code(503)}:
        assert all(section.render_from(code, lang, {}) for lang in ("az", "en", "ru")), code
