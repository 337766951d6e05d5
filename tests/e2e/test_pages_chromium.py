"""The subscriber pages in a real headless Chromium against a real `selfcare serve` (two serving
processes: a form made by one is checked by the other). Each page is screenshot at 390×844 and
1280×800 into the run's directory and checked by axe-core: no serious or critical violation.

The clock is fixed (`--now`), so the demo lines' figures are literal: what `selfcare sms … 2112`
and `… 650` print is what the balance page shows.
"""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time

import pytest

import texts
from billing.offers import load_offers
from billing.outbox import Outgoing
from billing.tariffs import load_tariffs
from texts.notifications import render

from tests.e2e.test_serve import REPO, SELFCARE, read_ready_line, wait_until_up
from tests.peers import chromium
from tests.peers.ports import free_port

pytestmark = pytest.mark.chromium
NOW = "2026-11-22T12:00:00"


# What the demo `log` transport writes for a sign-in code SMS, in each language (texts/notifications.toml).
CODE_SMS = re.compile(r"sms [0-9a-f]+ to (\S+): (?:Giriş kodu|Your sign-in code|Код для входа): ([0-9]{6})\.")


class Served:
    def __init__(self, db_path, port):
        self.db_path, self.port = db_path, port
        self.db = f"sqlite:///{db_path}"
        self.log_path = db_path.parent / "serve.log"

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def code_sms(self, msisdn: str, since: int, timeout_s: float = 20.0) -> str:
        """The code of the first sign-in SMS to `msisdn` the worker sent after `since` (a log size), as
        the demo transport logged it. Not from the outbox: once sent, the row no longer holds it."""
        masked = msisdn[:6] + "***" + msisdn[-4:]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as log:
                log.seek(since)
                for line in log.read().decode("utf-8", "replace").splitlines():
                    found = CODE_SMS.search(line)
                    if found and found.group(1) == masked:
                        return found.group(2)
            time.sleep(0.2)
        raise AssertionError(f"no sign-in SMS to {masked} logged within {timeout_s} s")

    def url(self, path: str) -> str:
        return f"http://localhost:{self.port}{path}"

    def selfcare(self, *args) -> str:
        return subprocess.run([*SELFCARE, "--db", self.db, "--now", NOW, *args], cwd=REPO, capture_output=True,
                              text=True, timeout=120, check=True).stdout

    def outbox(self, msisdn: str, template: str | None = None) -> list[tuple[str, str, dict]]:
        """(template, language, parameters) of the line's messages, oldest first."""
        with sqlite3.connect(self.db_path) as db:
            rows = db.execute("SELECT template, language, params FROM outbox_message WHERE msisdn = ? ORDER BY id",
                              (msisdn,)).fetchall()
        return [(t, lang, json.loads(p)) for t, lang, p in rows if template in (None, t)]

    def last_sms(self, msisdn: str) -> str:
        """The text of the line's newest outbox message, worded as the dispatcher words it."""
        template, language, params = self.outbox(msisdn)[-1]
        message = Outgoing("e2e", msisdn, language, template, params)
        return render(texts.load(), message, load_tariffs(), load_offers())


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    chromium.require()
    path = tmp_path_factory.mktemp("pages") / "selfcare.db"
    http = free_port()
    server = Served(path, http)
    server.selfcare("db", "upgrade")
    server.selfcare("demo")
    env = {**os.environ, "SELFCARE_HTTP": f"127.0.0.1:{http}", "SELFCARE_AGI": f"127.0.0.1:{free_port()}"}
    log = open(server.log_path, "wb")  # the worker's demo SMS transport logs each text, codes included
    process = subprocess.Popen([*SELFCARE, "--db", server.db, "--now", NOW, "serve", "--processes", "2"], cwd=REPO,
                               env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        read_ready_line(process)
        wait_until_up(http, process)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return chromium.screenshot_dir(tmp_path_factory.mktemp("screenshots"))


@pytest.fixture
def driver():
    with chromium.browser() as browser:
        yield browser


def by_css(driver, selector):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, selector)


def figure(driver, name: str) -> str:
    return by_css(driver, f'[data-figure="{name}"]').text


def main_text(driver) -> str:
    return by_css(driver, "main").text


def check_page(driver, what: str, shots=None, name: str | None = None) -> None:
    """Check the page the browser shows with axe-core, and screenshot it when asked."""
    violations = chromium.serious_violations(driver)
    assert not violations, f"{what}: {chromium.describe(violations)}"
    if shots is not None:
        chromium.screenshot(driver, shots, name)


def open_page(driver, served, path: str, shots=None, name: str | None = None) -> None:
    """Load a page, check it with axe-core, and screenshot it when asked."""
    driver.get(served.url(path))
    check_page(driver, path, shots, name)


def sign_in(driver, served, number: str, msisdn: str, shots=None) -> None:
    open_page(driver, served, "/", shots, "sign-in")
    by_css(driver, "#number").send_keys(number)
    since = served.log_size()
    click_and_wait(driver, by_css(driver, "form.stack button[type=submit]"))
    assert driver.current_url.endswith("/code")
    if shots is not None:
        open_page(driver, served, "/code", shots, "code")
    code = served.code_sms(msisdn, since)  # the SMS as the worker sent it (within a 5 s tick)
    by_css(driver, "#code").send_keys(code)
    click_and_wait(driver, by_css(driver, "form.stack button[type=submit]"))
    assert driver.current_url.endswith("/balance"), main_text(driver)


def click_and_wait(driver, element) -> None:
    """Click a form's button and wait until the page it leads to has replaced this one.

    The old page is marked on its window object, which a navigation replaces. Waiting for a
    stale element instead races chromedriver: while the document is being swapped it may answer
    "Node with given id does not belong to the document" as an unknown error, not as staleness.
    """
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.__leaving = true;")
    element.click()
    WebDriverWait(driver, 15, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(
            "return window.__leaving === undefined && document.readyState === 'complete';"))


def press(driver, form_action: str, button_text: str | None = None) -> None:
    from selenium.webdriver.common.by import By
    forms = driver.find_elements(By.CSS_SELECTOR, f'form[action="{form_action}"]')
    for form in forms:
        button = form.find_element(By.CSS_SELECTOR, "button")
        if button_text is None or button.text == button_text:
            click_and_wait(driver, button)
            return
    raise AssertionError(f"no {form_action} button {button_text!r}")


def test_a_prepaid_subscriber_signs_in_sees_the_2112_figures_and_every_page(driver, served, shots):
    reply = served.selfcare("sms", "0502223344", "2112")
    assert reply == ("Balance: 3.73 AZN. Balance valid until December 22, 2026. "
                     "Subscription ends on June 20, 2027.\n")
    sign_in(driver, served, "0502223344", "+994502223344", shots)
    assert (figure(driver, "balance"), figure(driver, "balance-expires"), figure(driver, "subscription-ends")) == \
        ("3.73 AZN", "December 22, 2026", "June 20, 2027")
    for path in ("/balance", "/tariff", "/history", "/packs", "/credit", "/access", "/settings", "/topup"):
        open_page(driver, served, path, shots, path.strip("/"))
    open_page(driver, served, "/history")
    assert main_text(driver).splitlines()[3] == "November 22, 2026 12:00 Self-care SMS Balance -0.02"


def test_ordering_a_pack_shows_it_and_switching_the_balance_sms_off_sends_none(driver, served):
    sign_in(driver, served, "0501234567", "+994501234567")
    open_page(driver, served, "/packs")
    press(driver, "/packs/order", "1 GB sifariş et")
    assert "1 GB paketi aktivdir." in main_text(driver)
    assert by_css(driver, 'tr[data-pack="1gb"]').text == "1 GB 1024 22 dekabr 2026 Avtomatik"
    assert figure_after(driver, served, "/balance", "balance") == "9.48 AZN"
    assert [t for t, _l, _p in served.outbox("+994501234567")][-2:] == ["pack-ordered", "balance-changed"]

    open_page(driver, served, "/settings")
    by_css(driver, 'input[name="notify"][value="off"]').click()
    click_and_wait(driver, by_css(driver, "#save-notifications"))
    assert "Yadda saxlanıldı." in main_text(driver)
    sent = len(served.outbox("+994501234567", "balance-changed"))
    served.selfcare("usage", "0501234567", "2000")  # past the 1 GB pack: charged by the tariff
    assert figure_after(driver, served, "/balance", "balance") != "9.48 AZN"  # it was a charge ...
    assert len(served.outbox("+994501234567", "balance-changed")) == sent  # ... and no SMS told of it


def figure_after(driver, served, path, name):
    open_page(driver, served, path)
    return figure(driver, name)


def test_changing_the_language_changes_the_page_and_the_next_sms(driver, served):
    sign_in(driver, served, "0503334455", "+994503334455")
    assert by_css(driver, "html").get_attribute("lang") == "ru"
    open_page(driver, served, "/settings")
    by_css(driver, 'input[name="language"][value="en"]').click()
    click_and_wait(driver, by_css(driver, "#save-language"))
    assert by_css(driver, "html").get_attribute("lang") == "en"
    assert by_css(driver, "h1").text == "Settings" and "Saved." in main_text(driver)
    served.selfcare("topup", "0503334455", "1")
    assert served.last_sms("+994503334455") == ("Balance topped up (top-up): +1.00 AZN. New balance: 2.84 AZN. "
                                                 "We never ask you to send money back.")


def test_a_postpaid_owner_grants_and_revokes_and_the_grantee_sees_the_650_figures(driver, served, shots):
    reply = served.selfcare("sms", "0552223344", "650")
    assert reply == "Выставлено: 0.00 AZN. Текущая сумма: 12.43 AZN. Аванс: 0.00 AZN.\n"
    sign_in(driver, served, "0552223344", "+994552223344")
    assert (figure(driver, "billed"), figure(driver, "current"), figure(driver, "advance")) == \
        ("0.00 AZN", "12.43 AZN", "0.00 AZN")
    check_page(driver, "/balance (postpaid)", shots, "balance-postpaid")
    open_page(driver, served, "/access")
    by_css(driver, "#grant-number").send_keys("0502223344")
    press(driver, "/access/grant")
    assert "0502223344 теперь видит ваш баланс." in main_text(driver)
    open_page(driver, served, "/access", shots, "access-postpaid")

    with chromium.browser() as grantee:
        sign_in(grantee, served, "0502223344", "+994502223344")
        open_page(grantee, served, "/access?owner=0552223344", shots, "access-owner-figures")
        assert "Figures of 0552223344" in main_text(grantee)
        assert (figure(grantee, "billed"), figure(grantee, "current")) == ("0.00 AZN", "12.43 AZN")

        press(driver, "/access/revoke", "Отменить доступ 0502223344")
        assert "0502223344 больше не видит ваш баланс." in main_text(driver)
        open_page(grantee, served, "/access?owner=0552223344")
        assert "You have no access to that number's balance." in main_text(grantee)


def test_a_form_with_a_forged_csrf_token_gets_the_refusal_page(driver, served, shots):
    """message.html, the one page a refusal renders in place (400) instead of a redirect."""
    open_page(driver, served, "/")
    driver.execute_script("document.querySelector('input[name=csrf_token]').value = 'forged';")
    by_css(driver, "#number").send_keys("0501234567")
    asked = len(served.outbox("+994501234567", "signin-code"))
    click_and_wait(driver, by_css(driver, "form.stack button[type=submit]"))
    # Chromium asks for en-US: the page answers in English (the subscriber's language when signed in)
    assert main_text(driver) == "Self-care\nThis form has expired: reload the page and try again.\nSign in"
    check_page(driver, "the refused form (message.html)", shots, "form-refused")
    assert len(served.outbox("+994501234567", "signin-code")) == asked  # refused before any code was made
