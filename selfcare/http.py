"""The HTTP side: one Flask app carrying the SMS and USSD endpoints and /health."""
from __future__ import annotations

from flask import Flask, abort, jsonify, request
from sqlalchemy import text

from billing.core import Core
from selfcare.config import Settings

MAX_BODY_BYTES = 64 * 1024  # no legitimate webhook or USSD request comes near it


def create_app(core: Core, settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask("selfcare")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["selfcare.core"] = core
    app.extensions["selfcare.settings"] = settings

    @app.before_request
    def refuse_over_long_bodies():
        # Flask only refuses a large body when a handler reads the form; refuse it up front, the
        # same way on every endpoint, before any signature check or lookup runs.
        if (request.content_length or 0) > MAX_BODY_BYTES:
            abort(413)

    @app.get("/health")
    def health():
        with core.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return jsonify(status="ok")

    for register in _channels():
        register(app, core, settings)
    return app


def _channels():
    """Each channel package offers `register(app, core, settings)`."""
    found = []
    for module in ("sms.web", "ussd.web"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        found.append(mod.register)
    return found
