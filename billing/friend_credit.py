"""Credit between friends (seed 003).

`*700*01*<friend>#`: the caller takes a Nar Credit on their own credit line and it lands on the
friend's balance (the caller owes it). `*700*1*<friend>#`: the caller asks the friend to do that
for them; the friend has `friend_confirm_minutes` (30) to confirm by USSD (`*700*1#`) or by an
SMS reply; unanswered requests lapse. Choices: docs/rules.md.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from . import lines, outbox
from .credit import CreditResult, check_beneficiary, grant_nar, require_active, take_nar_credit
from .errors import FriendRequestExpired, NoFriendRequest
from .locks import locked
from .models import FriendCreditRequest, Subscriber
from .msisdn import mask

log = logging.getLogger("billing.friend_credit")

@dataclass(frozen=True)
class FriendRequest:
    id: int
    requester: str
    friend: str
    expires_at: datetime
    duplicate: bool = False


def credit_for_friend(uow, msisdn: str, friend: str, key: str) -> CreditResult:
    """`*700*01*<friend>#`: the largest Nar Credit available (at most 3 AZN) to the friend's balance."""
    return take_nar_credit(uow, msisdn, key, None, for_friend=friend)


def _view(req: FriendCreditRequest, requester: str, friend: str, duplicate: bool = False) -> FriendRequest:
    return FriendRequest(req.id, requester, friend, req.expires_at, duplicate)


def ask_friend_for_credit(uow, msisdn: str, friend: str, key: str) -> FriendRequest:
    """`*700*1*<friend>#`: a pending request the friend confirms within 30 minutes."""
    requester = lines.find(uow, msisdn, lock=True)
    other = lines.find(uow, friend)
    require_active(uow, requester)  # the credit would land on a balance that may not be spent
    check_beneficiary(uow, requester, other)
    known = uow.session.scalar(select(FriendCreditRequest).where(FriendCreditRequest.key == key))
    if known is not None:
        return _view(known, requester.msisdn, other.msisdn, duplicate=True)
    now = uow.clock.now()
    minutes = uow.offers.credit.friend_confirm_minutes
    req = FriendCreditRequest(key=key, requester_id=requester.id, friend_id=other.id, status="pending",
                              created_at=now, expires_at=now + timedelta(minutes=minutes))
    uow.session.add(req)
    uow.session.flush()
    outbox.enqueue(uow, other, "friend-credit-request",
                   {"requester": requester.msisdn, "minutes": minutes, "expires": f"{req.expires_at:%H:%M}"},
                   key=f"{key}:friend-credit-request")
    outbox.enqueue(uow, requester, "friend-credit-asked", {"friend": other.msisdn, "minutes": minutes},
                   key=f"{key}:friend-credit-asked")
    uow.commit()
    log.info("%s asked %s for credit", mask(requester.msisdn), mask(other.msisdn))
    return _view(req, requester.msisdn, other.msisdn)


def pending_requests(uow, friend: str) -> list[FriendRequest]:
    """Requests waiting for this friend's answer, oldest first (expired ones are not offered)."""
    line = lines.find(uow, friend)
    now = uow.clock.now()
    rows = uow.session.execute(
        select(FriendCreditRequest, Subscriber.msisdn)
        .join(Subscriber, Subscriber.id == FriendCreditRequest.requester_id)
        .where(FriendCreditRequest.friend_id == line.id, FriendCreditRequest.status == "pending",
               FriendCreditRequest.expires_at > now)
        .order_by(FriendCreditRequest.id)).all()
    return [_view(req, requester, line.msisdn) for req, requester in rows]


def _lapse(uow, req: FriendCreditRequest, requester: Subscriber, now: datetime) -> None:
    req.status, req.decided_at = "lapsed", now
    outbox.enqueue(uow, requester, "friend-credit-lapsed", {"friend": _msisdn(uow, req.friend_id)},
                   key=f"{req.key}:friend-credit-lapsed")


def _msisdn(uow, line_id: int) -> str:
    return uow.session.scalar(select(Subscriber.msisdn).where(Subscriber.id == line_id))


def answer_friend_request(uow, friend: str, accept: bool, key: str, request_id: int | None = None
                          ) -> CreditResult | None:
    """The friend confirms (a Nar Credit from the friend's line to the requester) or declines.

    Without `request_id` the oldest pending request is answered. A confirmation after 30 minutes
    is refused even when the lapse job has not run yet.
    """
    line = lines.find(uow, friend)
    query = select(FriendCreditRequest).where(FriendCreditRequest.friend_id == line.id,
                                              FriendCreditRequest.status == "pending")
    if request_id is not None:
        query = query.where(FriendCreditRequest.id == request_id)
    req = uow.session.scalar(query.order_by(FriendCreditRequest.id).limit(1).with_for_update())
    if req is None:
        raise NoFriendRequest("no credit request is waiting for you")
    requester = uow.session.scalar(select(Subscriber).where(Subscriber.id == req.requester_id))
    now = uow.clock.now()
    if now >= req.expires_at:
        _lapse(uow, req, requester, now)
        uow.commit()
        raise FriendRequestExpired(f"the request from {requester.msisdn} lapsed after "
                                   f"{uow.offers.credit.friend_confirm_minutes} minutes")
    if not accept:
        req.status, req.decided_at = "declined", now
        outbox.enqueue(uow, requester, "friend-credit-declined", {"friend": line.msisdn},
                       key=f"{req.key}:friend-credit-declined")
        uow.commit()
        log.info("%s declined a credit request", mask(line.msisdn))
        return None
    result = grant_nar(uow, line.msisdn, key, None, for_friend=requester.msisdn)
    req.status, req.decided_at = "granted", now
    uow.commit()
    return result


@dataclass(frozen=True)
class FriendAnswer:
    requester: str  # who asked
    credit: CreditResult | None  # None when the friend declined


def answer_oldest_friend_request(uow, friend: str, accept: bool, key: str) -> FriendAnswer:
    """The friend's answer to the oldest request waiting for them (a reply that names no request)."""
    line = lines.find(uow, friend)
    pending = uow.session.scalar(
        select(FriendCreditRequest).where(FriendCreditRequest.friend_id == line.id,
                                          FriendCreditRequest.status == "pending")
        .order_by(FriendCreditRequest.id).limit(1))
    if pending is None:
        raise NoFriendRequest("no credit request is waiting for you")
    requester = uow.session.scalar(select(Subscriber.msisdn).where(Subscriber.id == pending.requester_id))
    return FriendAnswer(requester, answer_friend_request(uow, friend, accept, key, request_id=pending.id))


def run_friend_request_lapses(core) -> int:
    """Worker job: requests not confirmed within 30 minutes lapse (the requester is told)."""
    done = 0
    with core.uow() as uow:
        now = uow.clock.now()
        ids = uow.session.scalars(select(FriendCreditRequest.id).where(
            FriendCreditRequest.status == "pending", FriendCreditRequest.expires_at <= now)).all()
        for req_id in ids:
            req = locked(uow, FriendCreditRequest, req_id)
            if req.status != "pending":
                continue
            requester = uow.session.scalar(select(Subscriber).where(Subscriber.id == req.requester_id))
            _lapse(uow, req, requester, now)
            uow.commit()
            done += 1
    return done
