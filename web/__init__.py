"""The web channel: the app's JSON API under /api/v1 (web/api.py) and, beside it, the subscriber
pages; sign-in by SMS code for both (billing/signin.py, its Flask glue in web/auth.py)."""
from __future__ import annotations


def register(app, core, settings) -> None:
    from . import api, pages

    api.register(app, core, settings)
    pages.register(app, core, settings)
