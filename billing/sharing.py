"""Balance-access grants: `+<number>` / `-<number>` / `-` sent to 650 (seed 000)."""
from __future__ import annotations

import logging

from sqlalchemy import delete, select

from . import lines
from .errors import AccessDenied, InvalidInput, UnknownSubscriber
from .models import AccessGrant, Subscriber
from .msisdn import mask, normalize
from .reports import BalanceReport, report_for

log = logging.getLogger("billing.sharing")


def grant_access(uow, owner: str, grantee: str) -> bool:
    """True when a new grant was made, False when it already existed."""
    line = lines.find(uow, owner, lock=True)
    lines.require_plan(line, "postpaid")
    number = normalize(grantee)
    if number == line.msisdn:
        raise InvalidInput("you already see your own balance")
    exists = uow.session.scalar(
        select(AccessGrant.id).where(AccessGrant.owner_id == line.id, AccessGrant.grantee_msisdn == number)
    )
    if exists is None:
        uow.session.add(AccessGrant(owner_id=line.id, grantee_msisdn=number, created_at=uow.clock.now()))
    uow.commit()
    log.info("access granted by %s to %s", mask(line.msisdn), mask(number))
    return exists is None


def revoke_access(uow, owner: str, grantee: str) -> bool:
    line = lines.find(uow, owner, lock=True)
    number = normalize(grantee)
    removed = uow.session.execute(
        delete(AccessGrant).where(AccessGrant.owner_id == line.id, AccessGrant.grantee_msisdn == number)
    ).rowcount
    uow.commit()
    log.info("access revoked by %s from %s", mask(line.msisdn), mask(number))
    return removed > 0


def revoke_all(uow, owner: str) -> int:
    line = lines.find(uow, owner, lock=True)
    removed = uow.session.execute(delete(AccessGrant).where(AccessGrant.owner_id == line.id)).rowcount
    uow.commit()
    log.info("all access revoked by %s (%d)", mask(line.msisdn), removed)
    return removed


def grantees(uow, owner: str) -> list[str]:
    line = lines.find(uow, owner)
    return list(uow.session.scalars(
        select(AccessGrant.grantee_msisdn).where(AccessGrant.owner_id == line.id).order_by(AccessGrant.grantee_msisdn)
    ))


def shared_report(uow, viewer: str, owner: str) -> BalanceReport:
    """The owner's figures for a viewer holding a grant.

    Refuses with one and the same error whether the owner does not exist or gave no grant, so the
    refusal reveals nothing about the owner.
    """
    denied = AccessDenied("no access to that number's balance")
    try:
        owner_number, viewer_number = normalize(owner), normalize(viewer)
    except Exception:
        raise denied from None
    line = uow.session.scalar(
        select(Subscriber)
        .join(AccessGrant, AccessGrant.owner_id == Subscriber.id)
        .where(Subscriber.msisdn == owner_number, AccessGrant.grantee_msisdn == viewer_number)
    )
    if line is None:
        log.info("shared report refused for %s", mask(viewer_number))
        raise denied
    return report_for(uow, line)


__all__ = ["grant_access", "revoke_access", "revoke_all", "grantees", "shared_report", "UnknownSubscriber"]
