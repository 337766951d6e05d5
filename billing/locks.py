"""Row locks for the worker's jobs, which walk many rows in one long-lived session.

A job's session keeps the objects it loaded across its commits (expire_on_commit is off), and a
SELECT ... FOR UPDATE of a row already in the session returns that object as it was loaded, not
as the lock found it: a second worker's (or a request's) change made in between would be decided
on stale figures. `locked` takes the lock and refreshes the object from the row it locked."""
from __future__ import annotations

from sqlalchemy import select


def locked(uow, model, row_id: int):
    """The row `row_id` of `model`, locked until the transaction ends, as it is now."""
    query = select(model).where(model.id == row_id).with_for_update().execution_options(populate_existing=True)
    return uow.session.scalar(query)
