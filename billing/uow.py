"""The unit of work: one transaction, the clock and the tariff book, handed to every service."""
from __future__ import annotations

from sqlalchemy.orm import Session


class UnitOfWork:
    def __init__(self, session_factory, clock, tariffs):
        self._session_factory = session_factory
        self.clock = clock
        self.tariffs = tariffs
        self.session: Session | None = None
        self._connection = None

    def connection(self):
        """The transaction's connection, for Core statements on hot paths (the ORM session's
        per-statement bookkeeping costs more than the SQL)."""
        if self._connection is None:
            self._connection = self.session.connection()
        return self._connection

    def __enter__(self) -> "UnitOfWork":
        self.session = self._session_factory()
        return self

    def __exit__(self, *exc) -> None:
        # Anything not committed explicitly is thrown away: a half-done request changes nothing.
        # close() rolls the transaction back without expiring what was read, so results stay usable.
        self._connection = None
        self.session.close()

    def commit(self) -> None:
        self._connection = None
        self.session.commit()

    def rollback(self) -> None:
        self._connection = None
        self.session.rollback()
