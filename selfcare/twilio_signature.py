"""Twilio's webhook signature (X-Twilio-Signature), checked the same way for SMS (sms/web.py) and
voice (ivr/twilio_voice.py): HMAC-SHA1 of the URL Twilio requested plus the sorted form fields,
with the account's auth token, by the twilio library's own RequestValidator."""
from __future__ import annotations

from twilio.request_validator import RequestValidator


def twilio_url(settings, req) -> str:
    """The URL Twilio signed. Behind a proxy the app sees another one: the configured public base
    (e.g. https://sms.example.com or https://example.com/selfcare) replaces scheme, host and prefix."""
    if not settings.twilio_public_url:
        return req.url
    path = req.full_path if req.query_string else req.path
    return settings.twilio_public_url.rstrip("/") + path


def public_base(settings, req) -> str:
    """Where Twilio reaches this app: the configured public base, else the host it called."""
    return (settings.twilio_public_url or req.host_url).rstrip("/")


def twilio_signature_ok(settings, req) -> bool:
    # No token configured means nobody is trusted: an open endpoint would let anyone charge anyone.
    signature = req.headers.get("X-Twilio-Signature")
    if not settings.twilio_auth_token or not signature:
        return False
    return RequestValidator(settings.twilio_auth_token).validate(twilio_url(settings, req), req.form, signature)
