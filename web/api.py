"""The app's JSON API under /api/v1 (filled in by the next commits)."""
from __future__ import annotations


def register(app, core, settings) -> None:
    pass
