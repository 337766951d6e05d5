"""API test support: an app on a core, signing in with the code read from the outbox."""
from __future__ import annotations

import json

from sqlalchemy import select

import texts
from billing.models import OutboxMessage
from selfcare.config import Settings
from selfcare.http import create_app

SETTINGS = Settings(agi=("127.0.0.1", 0), http=("127.0.0.1", 0), twilio_auth_token="token",
                    twilio_public_url=None, kannel_secret="secret", kannel_allow=())
API = "/api/v1"


def code_in_outbox(core, request_id: str) -> str:
    """The code exactly as the SMS carries it: the outbox message the request wrote."""
    with core.reader() as uow:
        params = uow.session.scalar(select(OutboxMessage.params).where(OutboxMessage.key == f"signin:{request_id}"))
    return json.loads(params)["code"]


class Api:
    """A test client for /api/v1 on one core, optionally signed in as one line."""

    def __init__(self, core, token: str | None = None, client=None):
        texts.check_startup(core)
        self.core = core
        self.client = client or create_app(core, SETTINGS).test_client()
        self.token = token

    def _headers(self, headers):
        out = dict(headers or {})
        if self.token:
            out.setdefault("Authorization", f"Bearer {self.token}")
        return out

    def get(self, path, headers=None, **kw):
        return self.client.get(API + path, headers=self._headers(headers), **kw)

    def post(self, path, json=None, headers=None, **kw):
        return self.client.post(API + path, json=json, headers=self._headers(headers), **kw)

    def patch(self, path, json=None, headers=None, **kw):
        return self.client.patch(API + path, json=json, headers=self._headers(headers), **kw)

    def delete(self, path, headers=None, **kw):
        return self.client.delete(API + path, headers=self._headers(headers), **kw)

    def ask_code(self, msisdn: str, client_address: str = "127.0.0.1") -> str:
        answer = self.post("/signin/code", {"msisdn": msisdn}, environ_base={"REMOTE_ADDR": client_address})
        assert answer.status_code == 202, answer.get_json()
        return answer.get_json()["request_id"]

    def signed_in(self, msisdn: str) -> "Api":
        request_id = self.ask_code(msisdn)
        answer = self.post("/signin/verify", {"request_id": request_id, "msisdn": msisdn,
                                              "code": code_in_outbox(self.core, request_id)})
        assert answer.status_code == 200, answer.get_json()
        return Api(self.core, answer.get_json()["token"], self.client)


def error_of(answer) -> tuple[int, str]:
    return answer.status_code, answer.get_json()["error"]["code"]
