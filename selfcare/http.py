"""The HTTP side: one Flask app carrying the SMS and USSD endpoints and /health."""
from __future__ import annotations

from flask import Flask, abort, jsonify, request
from sqlalchemy import text

from billing.core import Core
from selfcare.config import Settings
from sms import web as sms_web
from ussd import web as ussd_web
import web

MAX_BODY_BYTES = 64 * 1024  # no legitimate webhook or USSD request comes near it


def create_app(core: Core, settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask("selfcare")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    @app.before_request
    def refuse_over_long_bodies():
        # Flask only refuses a large body when a handler reads the form; refuse it up front, the
        # same way on every endpoint, before any signature check or lookup runs.
        if (request.content_length or 0) > MAX_BODY_BYTES:
            abort(413)

    @app.get("/health")
    def health():
        with core.read_engine.connect() as conn:  # a probe must not queue for the write lock
            conn.execute(text("SELECT 1"))
        return jsonify(status="ok")

    sms_web.register(app, core, settings)
    ussd_web.register(app, core, settings)
    web.register(app, core, settings)  # the app's JSON API and the subscriber pages
    return app


def app_from_env() -> Flask:
    """The app as a factory for a WSGI server run by hand (`granian --interface wsgi --factory
    selfcare.http:app_from_env`): database from $SELFCARE_DB, settings from the environment.
    `selfcare serve` builds the same app in each of its serving processes."""
    import texts

    core = Core()
    texts.check_startup(core)
    return create_app(core, Settings.from_env())
