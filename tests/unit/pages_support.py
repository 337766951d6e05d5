"""A scripted browser for the pages on Flask's test client: it keeps cookies, fills each form's
hidden CSRF token and request id from the page it came from, and signs in with the code the outbox
holds (what the SMS would carry)."""
from __future__ import annotations

import json
import re

from sqlalchemy import select

import texts
from billing.demo import load_demo
from billing.models import OutboxMessage
from selfcare.config import Settings
from selfcare.http import create_app

SETTINGS = Settings(agi=("127.0.0.1", 0), http=("127.0.0.1", 0), twilio_auth_token="token",
                    twilio_public_url=None, kannel_secret="secret", kannel_allow=())
BASE = "https://localhost"  # the cookies are Secure: the test client keeps them for https only
FORM = re.compile(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', re.S)
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def demo_app(core):
    load_demo(core)
    texts.check_startup(core)
    return create_app(core, SETTINGS)


def outbox(core, template: str | None = None) -> list[OutboxMessage]:
    with core.reader() as uow:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        if template:
            query = query.where(OutboxMessage.template == template)
        return list(uow.session.scalars(query))


def main_of(html: str) -> str:
    """The page's <main>, tags dropped and white space folded: what a reader reads."""
    main = re.search(r"<main>(.*)</main>", html, re.S).group(1)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main)).strip()


class Browser:
    def __init__(self, app, core):
        self.app, self.core = app, core
        self.client = app.test_client()
        self.page = ""

    def get(self, path: str, **kwargs):
        answer = self.client.get(path, base_url=BASE, **kwargs)
        if answer.status_code == 200:
            self.page = answer.text
        return answer

    def hidden_fields(self, action: str) -> dict:
        """The hidden fields of the form on the current page that posts to `action`."""
        for found, body in FORM.findall(self.page):
            if found == action:
                return dict(HIDDEN.findall(body))
        raise AssertionError(f"no form posting to {action} on this page")

    def submit(self, action: str, follow: bool = True, **fields):
        data = {**self.hidden_fields(action), **fields}
        return self.post(action, data, follow)

    def post(self, action: str, data: dict, follow: bool = True):
        answer = self.client.post(action, data=data, base_url=BASE, headers={"Referer": f"{BASE}/"},
                                  follow_redirects=follow)
        if answer.status_code == 200:
            self.page = answer.text
        return answer

    def sign_in(self, number: str) -> str:
        self.get("/")
        self.submit("/", number=number)
        return self.enter(self.last_code())

    def enter(self, code: str) -> str:
        self.get("/code")
        answer = self.submit("/code", code=code)
        return answer.request.path

    def last_code(self) -> str:
        return json.loads(outbox(self.core, "signin-code")[-1].params)["code"]

    def cookie(self, name: str):
        return self.client.get_cookie(name, domain="localhost")
