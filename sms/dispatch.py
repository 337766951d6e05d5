"""Outbound SMS: drains billing's outbox through Kannel's sendsms, Twilio's REST API or the log.

`dispatch_outbox(core)` is the worker job. Billing claims due messages in a short transaction, the
transport sends outside any transaction, and billing then marks each sent or failed (claim -> send
-> acknowledge, billing/outbox.py): at least once, and a crash resends only the message in flight.
Each transport also drops a twin it already accepted in this process (same outbox key). What goes
outward is the message's `ref` (a digest of the key), never the key: Kannel gets it in the
`dlr-url` and reports deliveries to /sms/kannel/dlr; Twilio has no idempotency key, so a crash
between Twilio's accept and our acknowledgement sends that one message twice.

Environment (docs/operations.md):
  SELFCARE_SMS_TRANSPORT        log (default) | kannel | twilio
  SELFCARE_SMS_SENDER           the sender shown to subscribers (default 2112)
  SELFCARE_SMS_FLASH            1 (default): balance notifications as flash SMS where possible
  SELFCARE_KANNEL_SENDSMS_URL   e.g. http://127.0.0.1:13013/cgi-bin/sendsms
  SELFCARE_KANNEL_USERNAME, SELFCARE_KANNEL_PASSWORD   a sendsms-user of smsbox
  SELFCARE_KANNEL_SMSC          optional smsc-id to route through
  SELFCARE_KANNEL_DLR_URL       optional: our /sms/kannel/dlr as smsbox reaches it; set, every
                                message asks for delivery reports (needs SELFCARE_KANNEL_SECRET)
  SELFCARE_TWILIO_ACCOUNT_SID, SELFCARE_TWILIO_AUTH_TOKEN, SELFCARE_TWILIO_FROM
  SELFCARE_TWILIO_API_URL       optional base URL instead of https://api.twilio.com
  SELFCARE_SMS_TIMEOUT_S        transport timeout in seconds (default 10); the claim lease follows it
"""
from __future__ import annotations

import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections import OrderedDict
from threading import Lock

import texts
from billing.msisdn import mask, mask_numbers
from billing.outbox import Outgoing, dispatch_pending
from texts import notifications
from texts.encoding import is_gsm7

log = logging.getLogger("sms.dispatch")


class TransportError(Exception):
    pass


class ConfigError(Exception):
    """A transport is chosen but a setting it needs is missing; the message names the variable."""


FLASH_TEMPLATES = ("balance-changed",)
# Messages the subscriber answers come from the number that takes the answer.
REPLY_TO = {"friend-credit-request": "700"}


# -- transports --------------------------------------------------------------------------------

class _SeenKeys:
    """Keys this process already handed over, bounded, so a re-run after a failed commit is dropped."""

    def __init__(self, size: int = 10_000):
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._size = size
        self._lock = Lock()

    def seen(self, key: str) -> bool:
        with self._lock:
            return key in self._keys

    def add(self, key: str) -> None:
        with self._lock:
            self._keys[key] = None
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)


class LogTransport:
    name = "log"
    timeout_s = 1.0

    def __init__(self):
        self.sent: list[tuple[str, str]] = []
        self._seen = _SeenKeys()

    def send(self, message: Outgoing, text: str) -> None:
        if self._seen.seen(message.key):
            return
        # A text may name another line (a friend's credit): numbers masked in the log as well.
        log.info("sms %s to %s: %s", message.ref, mask(message.msisdn), mask_numbers(text))
        self.sent.append((message.msisdn, text))
        self._seen.add(message.key)


# Kannel's dlr-mask bits: 1 delivered to the phone, 2 not delivered to the phone, 4 buffered at the
# SMSC, 8 accepted by the SMSC, 16 rejected by the SMSC. We ask for all of them.
DLR_MASK = 31
DLR_STATUS = {1: "delivered", 2: "undelivered", 4: "buffered", 8: "accepted", 16: "rejected"}


class KannelTransport:
    """smsbox's sendsms: HTTP GET with a sendsms-user's credentials.

    With `dlr_url` (our /sms/kannel/dlr as smsbox reaches it) each message asks for every delivery
    report; smsbox calls `dlr_url?ref=<ref>&status=<bit>&secret=<secret>`.
    """

    name = "kannel"

    def __init__(self, url: str, username: str, password: str, sender: str = "2112", smsc: str | None = None,
                 flash: bool = True, timeout_s: float = 10.0, dlr_url: str | None = None,
                 dlr_secret: str | None = None):
        self.url, self.username, self.password = url, username, password
        self.sender, self.smsc, self.flash, self.timeout_s = sender, smsc, flash, timeout_s
        self.dlr_url, self.dlr_secret = dlr_url, dlr_secret
        self._seen = _SeenKeys()

    def delivery_report_url(self, message: Outgoing) -> str:
        # smsbox fills in %d (the report's bit); %-escapes of our own would be read as its codes, so
        # the ref is hex and the secret goes as is (transport_from_env allows URL-safe ones only).
        sep = "&" if "?" in self.dlr_url else "?"
        url = f"{self.dlr_url}{sep}ref={message.ref}&status=%d"
        return f"{url}&secret={self.dlr_secret}" if self.dlr_secret else url

    def query(self, message: Outgoing, text: str) -> dict:
        params = {
            "username": self.username, "password": self.password,
            "from": REPLY_TO.get(message.template, self.sender),
            "to": message.msisdn, "text": text, "charset": "utf-8",
        }
        if not is_gsm7(text):
            params["coding"] = "2"
        if self.flash and message.template in FLASH_TEMPLATES:
            params["mclass"] = "0"
        if self.smsc:
            params["smsc"] = self.smsc
        if self.dlr_url:
            params["dlr-mask"] = str(DLR_MASK)
            params["dlr-url"] = self.delivery_report_url(message)
        return params

    def send(self, message: Outgoing, text: str) -> None:
        if self._seen.seen(message.key):
            return
        url = f"{self.url}?{urllib.parse.urlencode(self.query(message, text))}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                body = response.read().decode("utf-8", "replace").strip()
                status = response.status
        except urllib.error.HTTPError as exc:
            raise TransportError(f"kannel sendsms answered {exc.code}: {exc.read()[:200]!r}") from None
        except OSError as exc:
            raise TransportError(f"kannel sendsms unreachable: {exc}") from None
        if not 200 <= status < 300:
            raise TransportError(f"kannel sendsms answered {status}: {body[:200]}")
        self._seen.add(message.key)
        log.info("kannel accepted %s for %s: %s", message.ref, mask(message.msisdn), mask_numbers(body))


class TwilioTransport:
    """Twilio's Messages API. Twilio cannot send flash (class 0) SMS."""

    name = "twilio"

    def __init__(self, account_sid: str, auth_token: str, from_: str, base_url: str | None = None,
                 timeout_s: float = 10.0):
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        self.client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout_s))
        if base_url:
            self.client.api.base_url = base_url.rstrip("/")
        self.from_, self.timeout_s = from_, timeout_s
        self._seen = _SeenKeys()

    def send(self, message: Outgoing, text: str) -> None:
        if self._seen.seen(message.key):
            return
        from twilio.base.exceptions import TwilioException

        try:
            sent = self.client.messages.create(to=message.msisdn, from_=self.from_, body=text)
        except TwilioException as exc:
            raise TransportError(f"twilio refused {message.ref}: {exc}") from None
        except OSError as exc:
            raise TransportError(f"twilio unreachable: {exc}") from None
        self._seen.add(message.key)
        log.info("twilio accepted %s for %s as %s", message.ref, mask(message.msisdn), sent.sid)


_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")


def _need(env, name: str) -> str:
    value = env.get(name)
    if not value:
        raise ConfigError(f"{name} must be set for SELFCARE_SMS_TRANSPORT={env.get('SELFCARE_SMS_TRANSPORT')}")
    return value


def transport_from_env(env=None):
    env = os.environ if env is None else env
    kind = env.get("SELFCARE_SMS_TRANSPORT", "log")
    timeout_s = float(env.get("SELFCARE_SMS_TIMEOUT_S", "10"))
    sender = env.get("SELFCARE_SMS_SENDER", "2112")
    if kind == "log":
        return LogTransport()
    if kind == "kannel":
        dlr_url = env.get("SELFCARE_KANNEL_DLR_URL") or None
        dlr_secret = None
        if dlr_url:
            # The endpoint refuses reports without the secret: asking for them without it is a mistake.
            dlr_secret = env.get("SELFCARE_KANNEL_SECRET")
            if not dlr_secret:
                raise ConfigError("SELFCARE_KANNEL_SECRET must be set with SELFCARE_KANNEL_DLR_URL")
            if not _URL_SAFE.fullmatch(dlr_secret):
                raise ConfigError("SELFCARE_KANNEL_SECRET must be letters, digits and . _ ~ - only when it "
                                  "goes into SELFCARE_KANNEL_DLR_URL (smsbox reads % as its own codes)")
        return KannelTransport(
            _need(env, "SELFCARE_KANNEL_SENDSMS_URL"), _need(env, "SELFCARE_KANNEL_USERNAME"),
            _need(env, "SELFCARE_KANNEL_PASSWORD"), sender=sender, smsc=env.get("SELFCARE_KANNEL_SMSC") or None,
            flash=env.get("SELFCARE_SMS_FLASH", "1") != "0", timeout_s=timeout_s,
            dlr_url=dlr_url, dlr_secret=dlr_secret,
        )
    if kind == "twilio":
        return TwilioTransport(
            _need(env, "SELFCARE_TWILIO_ACCOUNT_SID"), _need(env, "SELFCARE_TWILIO_AUTH_TOKEN"),
            _need(env, "SELFCARE_TWILIO_FROM"), base_url=env.get("SELFCARE_TWILIO_API_URL") or None,
            timeout_s=timeout_s,
        )
    raise ConfigError(f"SELFCARE_SMS_TRANSPORT must be log, kannel or twilio, not {kind!r}")


# -- the worker job ----------------------------------------------------------------------------

class Dispatcher:
    def __init__(self, transport):
        self.transport = transport
        self.catalogue = texts.current()

    def render(self, core, message: Outgoing) -> str:
        return notifications.render(self.catalogue, message, core.tariffs, core.offers)

    def run(self, core, limit: int = 100) -> int:
        return dispatch_pending(core, _CountingFailures(self.transport), lambda m: self.render(core, m), limit=limit,
                                send_timeout_s=getattr(self.transport, "timeout_s", 10.0))


class _CountingFailures:
    """The transport, with each send it refuses counted for /metrics (the outbox retries it)."""

    def __init__(self, transport):
        self.transport = transport

    def send(self, message: Outgoing, text: str) -> None:
        try:
            self.transport.send(message, text)
        except Exception:
            from selfcare import metrics

            metrics.labelled(metrics.DELIVERY_FAILURES, transport=getattr(self.transport, "name", "other"),
                                             reason="send-failed").inc()
            raise


# By the core itself, not its id(): a core freed (a test's) could leave its id, and its dispatcher
# with the transport of its day, to the next one.
_dispatchers: "weakref.WeakKeyDictionary[object, Dispatcher]" = weakref.WeakKeyDictionary()


def dispatch_outbox(core) -> int:
    """Worker job: send what the outbox holds through the transport the environment names."""
    dispatcher = _dispatchers.get(core)
    if dispatcher is None:
        dispatcher = _dispatchers[core] = Dispatcher(transport_from_env())
    return dispatcher.run(core)
