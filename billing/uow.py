"""The unit of work: one transaction, the clock and the tariff book, handed to every service."""
from __future__ import annotations

from sqlalchemy.orm import Session


class UnitOfWork:
    def __init__(self, session_factory, clock, tariffs):
        self._session_factory = session_factory
        self.clock = clock
        self.tariffs = tariffs
        self.session: Session | None = None

    def __enter__(self) -> "UnitOfWork":
        self.session = self._session_factory()
        return self

    def __exit__(self, *exc) -> None:
        # Anything not committed explicitly is thrown away: a half-done request changes nothing.
        # close() rolls the transaction back without expiring what was read, so results stay usable.
        self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()
