"""Tables of the billing core (SQLAlchemy 2). Money columns hold integer units of 0.0001 AZN."""
from __future__ import annotations

import hashlib
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Subscriber(Base):
    __tablename__ = "subscriber"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    msisdn: Mapped[str] = mapped_column(String(16), unique=True)
    plan: Mapped[str] = mapped_column(String(10))  # prepaid | postpaid
    status: Mapped[str] = mapped_column(String(20), default="active")
    language: Mapped[str] = mapped_column(String(2), default="az")
    tariff: Mapped[str] = mapped_column(String(40))
    roaming: Mapped[bool] = mapped_column(Boolean, default=False)
    notify_balance: Mapped[bool] = mapped_column(Boolean, default=True)
    activated_on: Mapped[date] = mapped_column(Date)
    # prepaid
    balance_units: Mapped[int] = mapped_column(BigInteger, default=0)
    balance_expires: Mapped[date | None] = mapped_column(Date, nullable=True)
    subscription_ends: Mapped[date | None] = mapped_column(Date, nullable=True)
    # postpaid
    billed_units: Mapped[int] = mapped_column(BigInteger, default=0)
    current_units: Mapped[int] = mapped_column(BigInteger, default=0)
    advance_units: Mapped[int] = mapped_column(BigInteger, default=0)
    bill_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_bill_run: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Nar/SOS credit debts (issue 5, migration 0002): ledger accounts nar_debt and sos_debt
    nar_debt_units: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    sos_debt_units: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Operation(Base):
    """One request that may change money, named by its idempotency key.

    The unique key is what makes a retried request (Twilio MessageSid, Kannel id, AGI uniqueid +
    step, USSD sessionId + step) charge once; `reply` lets the retry get the same answer.
    """

    __tablename__ = "operation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscriber.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    reply: Mapped[str | None] = mapped_column(Text, nullable=True)


ACCOUNTS = ("balance", "billed", "current", "advance", "nar_debt", "sos_debt")


class LedgerEntry(Base):
    """A change to one of a line's money accounts; the account column always equals their sum."""

    __tablename__ = "ledger_entry"
    __table_args__ = (Index("ix_ledger_subscriber_account", "subscriber_id", "account"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("operation.id"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"))
    account: Mapped[str] = mapped_column(String(20))
    delta_units: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class ScratchCard(Base):
    """A top-up card. Found by its PIN alone (`pin_lookup`, a keyed digest, unique: migration 0004)
    or by its serial; cards imported before 0004 carry only `pin_hash` (SHA-256 of serial:PIN) and
    are found by serial and PIN. `operation_id` is the redemption that used it."""

    __tablename__ = "scratch_card"
    __table_args__ = (Index("ix_scratch_card_pin_lookup", "pin_lookup", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(10), unique=True)
    pin_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pin_lookup: Mapped[str | None] = mapped_column(String(64), nullable=True)
    value_units: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    used_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    operation_id: Mapped[int | None] = mapped_column(
        ForeignKey("operation.id", name="fk_scratch_card_operation"), nullable=True)


class CardPinFailure(Base):
    """One wrong PIN a line sent (migration 0004). Counted per line over a window to throttle
    guessing; kept in the database so the count holds across serving processes. `key` is the
    request's idempotency key: a retried request is not counted twice."""

    __tablename__ = "card_pin_failure"
    __table_args__ = (Index("ix_card_pin_failure_line_time", "subscriber_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class AccessGrant(Base):
    """`+<number>` to 650: the grantee may read the owner's balance figures."""

    __tablename__ = "access_grant"
    __table_args__ = (UniqueConstraint("owner_id", "grantee_msisdn"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"))
    grantee_msisdn: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


def message_ref(key: str) -> str:
    """The reference an outbox message goes out under: a digest of its key, which may hold a
    request id or a number that must not leave the system."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def _ref_default(context) -> str:
    return message_ref(context.get_current_parameters()["key"])


class OutboxMessage(Base):
    """A notification written in the same transaction as the change it reports.

    Billing stores the template and its parameters; the channel renders the text in the
    subscriber's language when it delivers.

    Claim -> send -> acknowledge (billing/outbox.py, migration 0003): a claim sets `claim_token`
    and moves `next_attempt_at` to the end of its lease, so an unacknowledged message is due again
    only when the lease runs out. `ref` is what leaves the system instead of the key (a digest: no
    number or request id in it); `delivery_status` is the most telling report the far side sent.
    """

    __tablename__ = "outbox_message"
    __table_args__ = (
        Index("ix_outbox_pending", "sent_at", "next_attempt_at"),
        Index("ix_outbox_ref", "ref", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(220), unique=True)
    msisdn: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(2))
    template: Mapped[str] = mapped_column(String(60))
    params: Mapped[str] = mapped_column(Text)  # JSON
    created_at: Mapped[datetime] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    ref: Mapped[str | None] = mapped_column(String(32), nullable=True, default=_ref_default)
    claim_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    delivery_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    delivery_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


# --- Internet packs and Nar/SOS credit (issue 5, migration 0002) ------------------------------


class PackSubscription(Base):
    """One ordered pack on a line, through its 30-day periods, renewals and end (seed 002).

    status: active -> (renewed: active again) | awaiting-renewal -> active | lapsed | cancelled;
    or ended (no auto-renewal) / annulled (*100*0#, plan change).
    """

    __tablename__ = "pack_subscription"
    __table_args__ = (
        Index("ix_pack_line_status", "subscriber_id", "status"),
        Index("ix_pack_due", "status", "period_end"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"))
    pack_code: Mapped[str] = mapped_column(String(20))
    pack_group: Mapped[str] = mapped_column(String(20))
    volume_mb: Mapped[int] = mapped_column(Integer)
    throttle_kbps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remaining_kb: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=True)
    period_start: Mapped[datetime] = mapped_column(DateTime)
    period_end: Mapped[datetime] = mapped_column(DateTime)
    leftover_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    retry_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    held_by_suspension: Mapped[bool] = mapped_column(Boolean, default=False)
    renew_after_payment: Mapped[bool] = mapped_column(Boolean, default=False)
    renewals: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class CreditGrant(Base):
    """One Nar or SOS credit: who owes it (debtor), whose balance got it, and what is still owed."""

    __tablename__ = "credit_grant"
    __table_args__ = (Index("ix_credit_debtor_open", "debtor_id", "repaid_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[int] = mapped_column(ForeignKey("operation.id"))
    debtor_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"))
    beneficiary_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"))
    kind: Mapped[str] = mapped_column(String(3))  # nar | sos
    principal_units: Mapped[int] = mapped_column(BigInteger)
    fee_units: Mapped[int] = mapped_column(BigInteger)
    deferred_request_fee_units: Mapped[int] = mapped_column(BigInteger, default=0)
    outstanding_units: Mapped[int] = mapped_column(BigInteger)
    granted_at: Mapped[datetime] = mapped_column(DateTime)
    repaid_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class FriendCreditRequest(Base):
    """`*700*1*<friend>#`: the requester asks the friend to take a Nar credit for them (30 minutes)."""

    __tablename__ = "friend_credit_request"
    __table_args__ = (Index("ix_friend_request_open", "friend_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    requester_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"))
    friend_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"))
    status: Mapped[str] = mapped_column(String(10))  # pending | granted | declined | lapsed
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


# --- The fraud guard (issue 11, migration 0005; docs/rules.md "Fraud") -------------------------


class InboundRing(Base):
    """An inbound call from abroad that rang a line a few seconds and dropped unanswered (the
    wangiri pattern of seed 001). `key` makes a report idempotent: the CDR's uniqueid, so a
    Master.csv imported twice records each ring once. `caller` is E.164 ("+2367...")."""

    __tablename__ = "inbound_ring"
    __table_args__ = (Index("ix_inbound_ring_caller_time", "caller", "rang_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    caller: Mapped[str] = mapped_column(String(20))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"))
    ring_seconds: Mapped[int] = mapped_column(Integer)
    rang_at: Mapped[datetime] = mapped_column(DateTime)


class FraudFlag(Base):
    """A line flagged by a fraud rule, at most once per line, rule and day (the care console of a
    later issue reads these). `amount_units` is what triggered it, `usual_units` the line's usual."""

    __tablename__ = "fraud_flag"
    __table_args__ = (UniqueConstraint("subscriber_id", "day", "rule", name="uq_fraud_flag_line_day_rule"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"))
    day: Mapped[date] = mapped_column(Date)
    rule: Mapped[str] = mapped_column(String(30))
    amount_units: Mapped[int] = mapped_column(BigInteger)
    usual_units: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime)


# --- Sign-in for the web pages and the app's API (issue 12, migration 0006; billing/signin.py) ---


class SigninChallenge(Base):
    """One "send me a code" request: the code's keyed digest (never the code), bound to the number
    and to `request_id`, the handle the client gets back. Made for numbers we do not serve too
    (their code is never sent), so the answer reveals nothing."""

    __tablename__ = "signin_challenge"
    __table_args__ = (Index("ix_signin_challenge_number_time", "msisdn", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(43), unique=True)
    msisdn: Mapped[str] = mapped_column(String(16))
    code_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    wrong_tries: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class SigninQuota(Base):
    """How many codes one number or one client address asked for in one clock hour: counted by an
    atomic upsert, so the limit holds whichever serving process takes the request."""

    __tablename__ = "signin_quota"
    __table_args__ = (Index("ix_signin_quota_window", "window_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(120), unique=True)  # number:<E.164>:<hour> | client:<addr>:<hour>
    window_start: Mapped[datetime] = mapped_column(DateTime)
    count: Mapped[int] = mapped_column(Integer, default=0)


class WebSession(Base):
    """A signed-in subscriber: an API bearer token (`kind` api) or a page session (`kind` page).
    Only the SHA-256 of the random secret is kept. `expires_at` is the absolute end; a page session
    also ends `idle` after `last_seen_at`."""

    __tablename__ = "web_session"
    __table_args__ = (Index("ix_web_session_line", "subscriber_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(4))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
