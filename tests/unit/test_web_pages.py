"""The subscriber pages on Flask's test client: every operation, its figures, and its texts."""
from __future__ import annotations

import pytest

from billing import services
from sms.service import handle_sms
from tests.unit.pages_support import Browser, demo_app, main_of, outbox

PREPAID, PREPAID_EN, POSTPAID = "+994501234567", "+994502223344", "+994551234567"


@pytest.fixture
def app(core):
    return demo_app(core)


@pytest.fixture
def browser(app, core):
    return Browser(app, core)


def test_signing_in_with_the_code_from_the_sms_opens_the_balance_page(browser, core):
    assert browser.sign_in("0501234567") == "/balance"
    assert outbox(core, "signin-code")[-1].msisdn == PREPAID
    assert main_of(browser.page) == ("Balans Balans 12.48 AZN Balans qüvvədədir 20 fevral 2027 Abunəlik bitir "
                                     "19 avqust 2027 Nar Kredit borcu 0.00 AZN SOS Kredit borcu 0.00 AZN "
                                     "Xəttin vəziyyəti Aktiv")
    assert '<html lang="az">' in browser.page


def test_the_balance_page_shows_the_figures_of_a_blank_sms_to_2112(browser, core):
    reply = handle_sms(core, PREPAID_EN, "2112", "", key="sms-1")
    assert reply.text == ("Balance: 3.73 AZN. Balance valid until December 22, 2026. "
                          "Subscription ends on June 20, 2027.")
    browser.sign_in("0502223344")
    assert "Balance 3.73 AZN Balance valid until December 22, 2026 Subscription ends June 20, 2027" \
        in main_of(browser.page)


def test_a_postpaid_balance_page_shows_the_figures_of_a_blank_sms_to_650(browser, core):
    reply = handle_sms(core, POSTPAID, "650", "", key="sms-1")
    assert reply.text == "Hesablanmış məbləğ: 25.30 AZN. Cari məbləğ: 7.18 AZN. Avans ödənişi: 5.00 AZN."
    browser.sign_in("0551234567")
    assert main_of(browser.page).startswith("Balans Hesablanmış məbləğ 25.30 AZN Cari məbləğ 7.18 AZN "
                                            "Avans ödənişi 5.00 AZN Hesab günü (ayın) 10")


def test_a_number_we_do_not_serve_gets_the_same_code_page_and_no_sms(app, core):
    pages = []
    for number in ("0501234567", "0509999999"):  # ours, and no line of ours
        browser = Browser(app, core)
        browser.get("/")
        answer = browser.submit("/", follow=False, number=number)
        assert (answer.status_code, answer.headers["Location"]) == (302, "/code")
        browser.get("/code")
        pages.append(main_of(browser.page))
    assert pages == [
        "SMS kodu 0501234567 bizim nömrədirsə, ona SMS ilə kod göndərdik. Kod 5 dəqiqə qüvvədədir. "
        "6 rəqəmli kod Daxil ol Yeni kod istə",
        "SMS kodu 0509999999 bizim nömrədirsə, ona SMS ilə kod göndərdik. Kod 5 dəqiqə qüvvədədir. "
        "6 rəqəmli kod Daxil ol Yeni kod istə"]
    assert [m.msisdn for m in outbox(core, "signin-code")] == [PREPAID]  # one SMS: to the line we serve


def test_the_sign_in_pages_language_switch(browser):
    browser.get("/", headers={"Accept-Language": "en"})
    assert main_of(browser.page).startswith("Sign in")
    answer = browser.get("/language/ru")
    assert (answer.status_code, answer.headers["Location"]) == (302, "/")
    browser.get("/", headers={"Accept-Language": "en"})  # the switch beats the browser's languages
    assert '<html lang="ru">' in browser.page
    assert main_of(browser.page) == ("Вход Введите номер телефона: мы пришлём одноразовый код по SMS. "
                                     "Номер телефона Например, 0501234567 Получить код")
    assert browser.get("/language/xx").status_code == 302  # not a language of ours: ignored
    browser.get("/")
    assert '<html lang="ru">' in browser.page
    browser.get("/language/az")
    browser.submit("/", number="0501234567")
    browser.get("/code")
    assert main_of(browser.page).startswith("SMS kodu 0501234567 bizim nömrədirsə")


def test_a_wrong_code_is_refused_and_the_right_one_then_signs_in(browser):
    browser.get("/")
    browser.submit("/", number="0502223344")
    right = browser.last_code()
    wrong = "000000" if right != "000000" else "111111"
    assert browser.enter(wrong) == "/code"
    assert "Kod düzgün deyil" in browser.page
    assert browser.enter(right) == "/balance"


def test_ordering_a_pack_charges_once_and_shows_it(browser, core):
    browser.sign_in("0502223344")
    browser.get("/packs")
    assert "You have no internet pack." in main_of(browser.page)
    fields = {**browser.hidden_fields("/packs/order"), "pack": "1"}
    browser.post("/packs/order", fields)
    browser.post("/packs/order", fields)  # the same form sent again: a double click, a retry
    page = main_of(browser.page)
    assert "The 1 GB pack is active." in page
    assert "My packs Pack Left, MB Until Renewal 1 GB 1024 December 22, 2026 Automatic" in page
    with core.reader() as uow:
        assert services.balance_report(uow, PREPAID_EN).balance == pytest.approx(0.75)
        assert len(services.pack_status(uow, PREPAID_EN)) == 1


def test_stopping_renewal_and_deactivating_packs(browser):
    browser.sign_in("0501234567")
    browser.get("/packs")
    browser.submit("/packs/order", pack="2")
    browser.submit("/packs/stop-renewal")
    assert "Yenilənməsi dayandırılan paketlər: 1." in main_of(browser.page)
    assert "3 GB 3072 22 dekabr 2026 Yenilənmir" in main_of(browser.page)
    browser.submit("/packs/deactivate")
    assert "Deaktiv edilən paketlər: 1." in main_of(browser.page)
    assert "Aktiv internet paketiniz yoxdur." in main_of(browser.page)


def test_a_pack_dearer_than_the_balance_is_refused_in_the_subscribers_words(browser, core):
    browser.sign_in("0503334455")
    browser.get("/packs")
    browser.submit("/packs/order", pack="4")
    assert "Недостаточно средств на балансе." in main_of(browser.page)
    with core.reader() as uow:
        assert services.pack_status(uow, "+994503334455") == []


def test_switching_the_balance_change_sms_off_sends_none_for_the_next_charge(browser, core):
    browser.sign_in("0502223344")
    browser.get("/settings")
    browser.submit("/settings/notifications", notify="off")
    assert "Saved." in main_of(browser.page)
    before = len(outbox(core, "balance-changed"))
    with core.uow() as uow:
        services.record_data_usage(uow, PREPAID_EN, 10, key="data-1")
    assert len(outbox(core, "balance-changed")) == before
    browser.get("/settings")
    browser.submit("/settings/notifications", notify="on")
    with core.uow() as uow:
        services.record_data_usage(uow, PREPAID_EN, 10, key="data-2")
    assert len(outbox(core, "balance-changed")) == before + 1


def test_changing_the_language_changes_the_pages_and_the_next_sms(browser, core):
    browser.sign_in("0501234567")
    browser.get("/settings")
    browser.submit("/settings/language", language="ru")
    assert '<html lang="ru">' in browser.page and "Сохранено." in main_of(browser.page)
    browser.get("/packs")
    browser.submit("/packs/order", pack="1")
    assert outbox(core, "pack-ordered")[-1].language == "ru"
    assert "Пакет 1 ГБ подключён." in main_of(browser.page)


def test_granting_and_revoking_access_and_the_grantee_sees_the_figures_read_only(app, core):
    owner, viewer = Browser(app, core), Browser(app, core)
    owner.sign_in("0551234567")
    owner.get("/access")
    assert "Heç kimə icazə verməmisiniz." in main_of(owner.page)
    owner.submit("/access/grant", number="0501234567")
    assert "0501234567 artıq balansınızı görə bilər." in main_of(owner.page)
    assert 'data-grantee="+994501234567"' in owner.page

    viewer.sign_in("0501234567")
    viewer.get("/access?owner=0551234567")
    assert ("0551234567 nömrəsinin göstəriciləri Hesablanmış məbləğ 25.30 AZN Cari məbləğ 7.15 AZN "
            "Avans ödənişi 5.00 AZN") in main_of(viewer.page)
    assert "/access/revoke" not in viewer.page  # read only: the viewer changes nothing of the owner's

    owner.submit("/access/revoke", number="+994501234567")
    assert "0501234567 balansınızı artıq görmür." in main_of(owner.page)
    viewer.get("/access?owner=0551234567")
    assert "Bu nömrənin balansına girişiniz yoxdur." in main_of(viewer.page)


def test_a_prepaid_line_cannot_grant(browser):
    browser.sign_in("0501234567")
    browser.get("/access")
    assert "Balansa giriş icazəsini yalnız fakturalı xətlər verə bilər." in main_of(browser.page)
    assert "/access/grant" not in browser.page


def test_a_scratch_card_tops_up_once(browser, core):
    browser.sign_in("0502223344")
    browser.get("/topup")
    browser.submit("/topup", pin="12345678")
    assert "5.00 AZN added to your balance." in main_of(browser.page)
    browser.submit("/topup", pin="12345678")
    assert "This card has already been used." in main_of(browser.page)
    browser.submit("/topup", pin="12x")
    assert "A PIN is made of digits only." in main_of(browser.page)
    with core.reader() as uow:
        assert str(services.balance_report(uow, PREPAID_EN).balance) == "8.7500"


def test_nar_credit_is_offered_and_taken(browser):
    browser.sign_in("0501234567")
    browser.get("/credit")
    page = main_of(browser.page)
    assert "Götürə biləcəyiniz Nar Kredit 3.00 AZN" in page
    assert "0.50 AZN götür (xidmət haqqı 0.10 AZN)" in page
    browser.submit("/credit/nar", code="05")
    assert "0.50 AZN kredit balansınıza əlavə edildi. Borc: 0.60 AZN." in main_of(browser.page)


def test_credit_is_for_prepaid_lines(browser):
    browser.sign_in("0551234567")
    browser.get("/credit")
    assert main_of(browser.page) == "Nar və SOS Kredit Nar və SOS Kredit yalnız fakturasız xətlər üçündür."


def test_the_tariff_page(browser):
    browser.sign_in("0502223344")
    browser.get("/tariff")
    assert main_of(browser.page).startswith("Tariff and roaming Tariff plan Super Line type Prepaid Roaming Off")


def test_history_names_each_entry_and_pages(browser, core):
    browser.sign_in("0502223344")
    browser.get("/packs")
    browser.submit("/packs/order", pack="1")
    handle_sms(core, PREPAID_EN, "2112", "", key="sms-1")
    browser.get("/history")
    page = main_of(browser.page)
    assert page.startswith("History Page 1 When What Account Amount, AZN "
                           "November 22, 2026 12:00 Self-care SMS Balance -0.02 "
                           "November 22, 2026 12:00 Internet pack Balance -3.00 "
                           "November 22, 2026 12:00 Top-up Balance +2.75")
    assert "Older" not in page
    browser.get("/history?page=2")
    assert "Nothing here yet." in main_of(browser.page)


def test_history_names_a_charged_call_and_a_nar_credit(browser, core):
    browser.sign_in("0501234567")
    with core.uow() as uow:
        services.charge_call(uow, PREPAID, 75, "standard", key="agi:call-1")  # 3 × 15 s at 0.04 AZN
    browser.get("/credit")
    browser.submit("/credit/nar", code="05")
    browser.get("/history")
    assert main_of(browser.page).startswith(
        "Balans tarixçəsi Səhifə 1 Tarix Nə Hesab Məbləğ, AZN "
        "22 noyabr 2026 12:00 Kredit Balans -0.08 "
        "22 noyabr 2026 12:00 Kredit Nar borcu +0.60 "
        "22 noyabr 2026 12:00 Kredit Balans +0.50 "
        "22 noyabr 2026 12:00 Zəng Balans -0.12 "
        "22 noyabr 2026 12:00 Balansın artırılması Balans +10.48")


def test_signing_out_ends_the_session(browser):
    browser.sign_in("0501234567")
    browser.submit("/sign-out")
    assert "Siz çıxdınız." in main_of(browser.page)
    assert browser.get("/balance").status_code == 302


def test_the_stylesheet_is_served_as_a_static_file(browser):
    browser.get("/")
    assert '<link rel="stylesheet" href="/assets/site.css">' in browser.page
    answer = browser.client.get("/assets/site.css", base_url="https://localhost")
    assert answer.status_code == 200 and answer.mimetype == "text/css"
    assert "@media (min-width: 48rem)" in answer.text


def test_a_page_text_missing_from_the_catalogue_stops_start_up_naming_it(core, tmp_path, monkeypatch):
    import shutil

    import texts
    from texts.catalogue import DEFAULT_DIR
    from web import pages

    for source in DEFAULT_DIR.glob("*.toml"):
        shutil.copy(source, tmp_path / source.name)
    web_toml = tmp_path / "web.toml"
    web_toml.write_text(web_toml.read_text().replace("[order-title]", "[order-heading]"))
    with pytest.raises(texts.InvalidTexts, match=r"web/templates/packs.html shows \[order-title\]"):
        pages.check_page_texts(texts.load(tmp_path)["web"])
    pages.check_page_texts(texts.load()["web"])  # the shipped one has them all


def test_sign_in_order_a_pack_and_read_history_on_sqlite_and_postgresql(any_core):
    browser = Browser(demo_app(any_core), any_core)
    assert browser.sign_in("0502223344") == "/balance"
    browser.get("/packs")
    browser.submit("/packs/order", pack="1")
    assert "The 1 GB pack is active." in main_of(browser.page)
    browser.get("/history")
    assert "November 22, 2026 12:00 Internet pack Balance -3.00" in main_of(browser.page)
    browser.get("/balance")
    assert "Balance 0.75 AZN" in main_of(browser.page)
    browser.submit("/sign-out")
    assert browser.get("/balance").status_code == 302


def test_sos_credit_on_the_credit_page_after_nar_is_maxed_on_sqlite_and_postgresql(any_core):
    browser = Browser(demo_app(any_core), any_core)
    browser.sign_in("0501234567")  # az, 12.48 AZN, a Nar limit of 5 AZN (topped up 10+), 3 at most at once
    browser.get("/credit")
    assert "SOS Kredit: 1.00 AZN götür (xidmət haqqı 0.40 AZN)" in main_of(browser.page)
    browser.submit("/credit/sos")
    assert "Kredit verilmədi: SOS Kredit Nar Kredit limiti dolduqdan sonra verilir." in main_of(browser.page)
    browser.submit("/credit/nar", code="03")
    assert "3.00 AZN kredit balansınıza əlavə edildi. Borc: 3.60 AZN." in main_of(browser.page)
    browser.submit("/credit/nar", code="02")
    assert "2.00 AZN kredit balansınıza əlavə edildi. Borc: 6.00 AZN." in main_of(browser.page)
    browser.submit("/credit/sos")
    page = main_of(browser.page)
    assert "1.00 AZN kredit balansınıza əlavə edildi. Borc: 1.40 AZN." in page
    assert "Nar Kredit borcu 6.00 AZN SOS Kredit borcu 1.40 AZN" in page
    with any_core.reader() as uow:  # 12.48 + 3.00 + 2.00 + 1.00, less 0.08 AZN for each of the three credits
        assert str(services.balance_report(uow, PREPAID).balance) == "18.2400"
