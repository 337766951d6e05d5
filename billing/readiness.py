"""Is the database there, and does it carry this code's schema? Asked once when a command or a
serving tree starts, so an operator's first mistake gets one clear line instead of a driver
traceback from the middle of the first request."""
from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc
from sqlalchemy.engine import Engine

from .migrate import alembic_config

UPGRADE_HINT = "run `selfcare db upgrade`"


class DatabaseNotReady(Exception):
    """The database cannot be used as it is; the message says what to do."""


def where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _driver_reason(error: exc.DBAPIError) -> str:
    # the driver's own first line ("connection refused", "timeout expired"), not SQLAlchemy's wrapping
    reason = str(error.orig).strip().splitlines()
    return reason[0] if reason else type(error.orig).__name__


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has no schema; DatabaseNotReady when the
    database cannot be reached."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except exc.DBAPIError as error:
        raise DatabaseNotReady(f"cannot reach the database at {where(engine)}: {_driver_reason(error)}") from None


def check_reachable(engine: Engine) -> None:
    schema_revision(engine)


def check_schema(engine: Engine) -> None:
    """The database is reachable and at this code's newest migration."""
    current = schema_revision(engine)
    if current is None:
        raise DatabaseNotReady(f"the database at {where(engine)} has no schema: {UPGRADE_HINT}")
    script = ScriptDirectory.from_config(alembic_config(engine))
    head = script.get_current_head()
    if current not in {revision.revision for revision in script.walk_revisions()}:
        raise DatabaseNotReady(f"the database at {where(engine)} is at schema revision {current}, which this "
                               f"version does not know (newest here: {head}): run the newer version")
    if current != head:
        raise DatabaseNotReady(f"the database at {where(engine)} is at schema revision {current}, "
                               f"this version needs {head}: {UPGRADE_HINT}")
