"""The pages refuse forged forms, ended or stolen sessions, and any reach into another line's data,
on SQLite and on PostgreSQL (every test here runs on both: `core` is conftest's `any_core`)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from billing import services, signin
from tests.unit.pages_support import Browser, demo_app, main_of, outbox

PREPAID, POSTPAID = "+994501234567", "+994551234567"


@pytest.fixture
def core(any_core):
    """The row locks and the one-writer rule the refusals lean on differ by database: try both."""
    return any_core


@pytest.fixture
def app(core):
    return demo_app(core)


@pytest.fixture
def browser(app, core):
    return Browser(app, core)


def balance_of(core, msisdn):
    with core.reader() as uow:
        return services.balance_report(uow, msisdn).balance


def test_a_form_without_or_with_a_forged_csrf_token_is_refused_and_changes_nothing(browser, core):
    browser.sign_in("0501234567")
    browser.get("/packs")
    fields = {**browser.hidden_fields("/packs/order"), "pack": "1"}
    for forged in ({k: v for k, v in fields.items() if k != "csrf_token"}, {**fields, "csrf_token": "forged"},
                   {**fields, "csrf_token": fields["csrf_token"][:-2] + "xx"}):
        answer = browser.post("/packs/order", forged, follow=False)
        assert answer.status_code == 400
        assert "Forma köhnəlib: səhifəni yeniləyib yenidən cəhd edin." in answer.text
    assert str(balance_of(core, PREPAID)) == "12.4800"


def test_another_browsers_csrf_token_does_not_pass(app, core):
    """A token lifted from one browser's page is bound to that browser's form cookie."""
    victim, attacker = Browser(app, core), Browser(app, core)
    victim.sign_in("0501234567")
    attacker.sign_in("0502223344")
    attacker.get("/settings")
    lifted = attacker.hidden_fields("/settings/language")
    answer = victim.post("/settings/language", {**lifted, "language": "ru"}, follow=False)
    assert answer.status_code == 400
    with core.reader() as uow:
        assert services.balance_report(uow, PREPAID).language == "az"


def test_the_sign_in_form_itself_needs_its_csrf_token(browser, core):
    answer = browser.post("/", {"number": "0501234567"}, follow=False)
    assert answer.status_code == 400
    assert outbox(core, "signin-code") == []


def test_a_form_whose_request_id_is_not_one_we_rendered_is_refused(browser, core):
    browser.sign_in("0501234567")
    browser.get("/packs")
    fields = {**browser.hidden_fields("/packs/order"), "pack": "1", "request_id": "../../x"}
    assert browser.post("/packs/order", fields, follow=False).status_code == 400
    assert str(balance_of(core, PREPAID)) == "12.4800"


def test_an_idle_session_ends_and_says_so(browser, clock):
    browser.sign_in("0501234567")
    clock.advance(signin.PAGE_IDLE + timedelta(seconds=1))
    answer = browser.get("/balance")
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    browser.get("/")
    assert "Sessiya bitdi: yenidən daxil olun." in main_of(browser.page)


def test_a_session_in_use_stays_open_past_the_idle_time(browser, clock):
    browser.sign_in("0501234567")
    for _ in range(3):
        clock.advance(signin.PAGE_IDLE - timedelta(minutes=5))
        assert browser.get("/balance").status_code == 200


def test_a_stolen_session_cookie_stops_working_when_its_owner_signs_out(app, core):
    owner, thief = Browser(app, core), Browser(app, core)
    owner.sign_in("0501234567")
    stolen = owner.cookie("selfcare_session").value
    thief.client.set_cookie("selfcare_session", stolen, domain="localhost", secure=True, httponly=True)
    assert thief.get("/balance").status_code == 200  # a cookie is a bearer secret: until ...
    owner.get("/balance")
    owner.submit("/sign-out")
    assert thief.get("/balance").status_code == 302  # ... its session is revoked, for everyone holding it
    with core.uow() as uow:
        signin.sign_out_everywhere(uow, PREPAID)
    assert owner.get("/balance").status_code == 302


def test_a_guessed_session_cookie_is_refused(browser):
    browser.client.set_cookie("selfcare_session", "guessed", domain="localhost", secure=True)
    assert browser.get("/balance").status_code == 302


def test_session_cookies_are_secure_httponly_and_samesite(browser):
    browser.sign_in("0501234567")
    for name in ("selfcare_session", "selfcare_forms"):
        cookie = browser.cookie(name)
        assert cookie is not None, name
        assert cookie.secure and cookie.http_only and cookie.same_site == "Lax", name


def test_no_page_takes_a_number_for_the_signed_in_lines_own_data(app, core):
    """Numbers or ids in the query or the form are ignored: each page is the session's line."""
    browser = Browser(app, core)
    browser.sign_in("0502223344")
    for path in ("/balance?msisdn=0501234567", "/balance?number=%2B994501234567", "/history?msisdn=0501234567",
                 "/packs?subscriber_id=1", "/settings?number=0501234567"):
        browser.get(path)
        assert "Number: 0502223344" in browser.page and "12.48" not in browser.page, path
    browser.get("/settings")
    browser.submit("/settings/language", language="ru", msisdn="+994501234567", number="0501234567")
    with core.reader() as uow:
        assert services.balance_report(uow, PREPAID).language == "az"


def test_another_owners_figures_are_refused_alike_whether_the_number_exists_or_not(browser):
    browser.sign_in("0501234567")
    refusals = set()
    for owner in ("0551234567", "0552223344", "0559999999", "nonsense", "+994501234567x"):
        browser.get(f"/access?owner={owner}")
        page = main_of(browser.page)
        assert "25.30" not in page and "12.40" not in page
        refusals.add(page.replace(f"value={owner}", ""))
    assert len(refusals) == 1, refusals  # one and the same page, whether the number is ours or not
    assert all("Bu nömrənin balansına girişiniz yoxdur." in p for p in refusals)


def test_revoking_reaches_only_the_signed_in_owners_own_grants(app, core):
    owner, other = Browser(app, core), Browser(app, core)
    owner.sign_in("0551234567")
    owner.get("/access")
    owner.submit("/access/grant", number="0501234567")
    other.sign_in("0552223344")  # another postpaid line tries to revoke the first owner's grant
    other.get("/access")
    other.post("/access/revoke", {**other.hidden_fields("/access/grant"), "number": "0501234567"})
    with core.reader() as uow:
        assert services.grantees(uow, POSTPAID) == [PREPAID]


def test_a_used_code_does_not_sign_in_again(app, core):
    first = Browser(app, core)
    first.sign_in("0501234567")
    code = first.last_code()
    replay = Browser(app, core)
    replay.client.set_cookie("selfcare_forms", first.cookie("selfcare_forms").value, domain="localhost", secure=True)
    replay.get("/")
    assert replay.get("/code").status_code == 302  # the challenge left the form cookie at sign-in
    again = Browser(app, core)
    again.get("/")
    again.submit("/", number="0501234567")
    assert again.enter(code) == "/code"  # the old code does not open the new challenge


def test_after_five_wrong_codes_even_the_right_one_is_refused_and_a_new_code_is_needed(browser):
    browser.get("/")
    browser.submit("/", number="0501234567")
    right = browser.last_code()
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(5):
        assert browser.enter(wrong) == "/code"
    assert browser.enter(right) == "/"  # the challenge is spent: back to the number
    assert "Çox cəhd oldu. Bir az sonra yeni kod istəyin." in main_of(browser.page)
    assert browser.get("/balance").status_code == 302
    assert browser.sign_in("0501234567") == "/balance"  # a new code opens it
