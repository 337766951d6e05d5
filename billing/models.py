"""Tables of the billing core (SQLAlchemy 2). Money columns hold integer units of 0.0001 AZN."""
from __future__ import annotations

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


ACCOUNTS = ("balance", "billed", "current", "advance")


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
    __tablename__ = "scratch_card"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(10), unique=True)
    pin_hash: Mapped[str] = mapped_column(String(64))
    value_units: Mapped[int] = mapped_column(BigInteger)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    used_by: Mapped[str | None] = mapped_column(String(16), nullable=True)


class AccessGrant(Base):
    """`+<number>` to 650: the grantee may read the owner's balance figures."""

    __tablename__ = "access_grant"
    __table_args__ = (UniqueConstraint("owner_id", "grantee_msisdn"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id"))
    grantee_msisdn: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class OutboxMessage(Base):
    """A notification written in the same transaction as the change it reports.

    Billing stores the template and its parameters; the channel renders the text in the
    subscriber's language when it delivers.
    """

    __tablename__ = "outbox_message"
    __table_args__ = (Index("ix_outbox_pending", "sent_at", "next_attempt_at"),)

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
