"""The API's request and response bodies (pydantic): they validate what comes in and, through
spectree, write the OpenAPI document. Money is an exact decimal string with 4 places ("12.4800"),
as `selfcare subscriber show --json` prints it; dates are ISO 8601."""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

MONEY = r"^-?[0-9]+\.[0-9]{4}$"


def money():
    return Field(pattern=MONEY, examples=["12.4800"])


def maybe_money():
    return Field(None, pattern=MONEY, examples=["12.4800"])


Language = Literal["az", "en", "ru"]

# The platform keeps time as the operator's local time without an offset (billing/clock.py), so a
# time is "2026-11-22T12:00:00", which RFC 3339's date-time (format: date-time) does not admit:
# say what is really sent, so that clients, and the fuzz test's response checks, are told the truth.
LocalDateTime = Annotated[datetime, WithJsonSchema({
    "type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?$",
    "examples": ["2026-11-22T12:00:00"], "description": "the operator's local time, no offset"})]


def number():
    return Field(min_length=1, max_length=32, examples=["0501234567", "+994501234567"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors -----------------------------------------------------------------------------------

class ErrorDetail(BaseModel):
    code: str = Field(examples=["wrong-code"], description="stable: clients branch on it")
    message: str = Field(description="in the subscriber's language")
    tries_left: Optional[int] = None
    reason: Optional[str] = Field(None, description="credit-refused: the rule that refused it")
    retry_after: Optional[LocalDateTime] = None
    fields: Optional[list[str]] = Field(None, description="invalid-input: the fields that were wrong")


class Error(BaseModel):
    error: ErrorDetail


# -- sign-in ----------------------------------------------------------------------------------

class CodeRequest(Strict):
    msisdn: str = number()


class CodeRequested(BaseModel):
    request_id: str = Field(description="send it back with the code")
    expires_in_s: int = Field(examples=[300])


class CodeVerification(Strict):
    request_id: str = Field(min_length=1, max_length=64)
    msisdn: str = number()
    code: str = Field(min_length=1, max_length=16, examples=["123456"])


class Token(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>`")
    token_type: Literal["Bearer"] = "Bearer"
    msisdn: str
    expires_at: LocalDateTime


class SignedOut(BaseModel):
    signed_out: bool


# -- figures ----------------------------------------------------------------------------------

class Balance(BaseModel):
    msisdn: str
    plan: Literal["prepaid", "postpaid"]
    status: str
    language: Language
    tariff: str
    roaming: bool
    notify_balance: bool
    activated: date
    balance: Optional[str] = maybe_money()
    balance_expires: Optional[date] = None
    subscription_ends: Optional[date] = None
    balance_expired: Optional[bool] = None
    nar_debt: Optional[str] = maybe_money()
    sos_debt: Optional[str] = maybe_money()
    billed: Optional[str] = maybe_money()
    current: Optional[str] = maybe_money()
    advance: Optional[str] = maybe_money()
    bill_day: Optional[int] = None


class SharedFigures(BaseModel):
    """What a grant shows: the owner's figures only (no settings, no history)."""
    msisdn: str
    plan: Literal["prepaid", "postpaid"]
    balance: Optional[str] = maybe_money()
    billed: Optional[str] = maybe_money()
    current: Optional[str] = maybe_money()
    advance: Optional[str] = maybe_money()
    bill_day: Optional[int] = None


class Tariff(BaseModel):
    name: str
    title: str
    plan: Literal["prepaid", "postpaid"]
    roaming: bool
    status: str


class HistoryEntry(BaseModel):
    at: LocalDateTime
    account: str = Field(examples=["balance", "billed", "current", "advance", "nar_debt", "sos_debt"])
    amount: str = money()
    what: str = Field(examples=["sms", "call", "pack", "data", "topup", "card", "credit", "billrun"],
                      description="billing.history.WHAT, or other")


class History(BaseModel):
    entries: list[HistoryEntry]
    page: int
    per_page: int
    has_more: bool


class HistoryQuery(Strict):
    page: int = Field(1, ge=1, le=100000)
    per_page: int = Field(20, ge=1, le=100)


# -- packs ------------------------------------------------------------------------------------

class PackOffer(BaseModel):
    number: int
    code: str
    title: str
    volume_mb: int
    price: str = money()


class PackState(BaseModel):
    code: str
    title: str
    status: str
    remaining_mb: str
    expires: LocalDateTime
    auto_renew: bool
    usable: bool
    throttled: bool
    paused: bool


class Packs(BaseModel):
    packs: list[PackState]
    offers: list[PackOffer]


class PackOrderRequest(Strict):
    number: int = Field(ge=1, le=99, description="the pack's number in `offers` (N of *100*N#)")


class PackOrdered(BaseModel):
    code: str
    title: str
    expires: Optional[LocalDateTime]
    duplicate: bool


class PacksChanged(BaseModel):
    packs: int = Field(description="how many packs it changed")


# -- credit -----------------------------------------------------------------------------------

class Credit(BaseModel):
    available: str = money()
    nar_debt: str = money()
    sos_debt: str = money()
    refused: Optional[str] = Field(None, description="why none is available now (a rule's name)")


class CreditRequest(Strict):
    kind: Literal["nar", "sos"] = "nar"
    code: Optional[str] = Field(None, pattern=r"^[0-9]{2}$", description="Nar: the amount's code of *700#NN#")


class CreditTaken(BaseModel):
    kind: Literal["nar", "sos"]
    amount: str = money()
    fee: str = money()
    debt: str = money()
    duplicate: bool


# -- grants -----------------------------------------------------------------------------------

class Grants(BaseModel):
    grantees: list[str]


class GrantRequest(Strict):
    msisdn: str = number()


class GrantChanged(BaseModel):
    msisdn: str
    changed: bool = Field(description="false when there was nothing to change")


# -- settings ---------------------------------------------------------------------------------

class Settings(BaseModel):
    language: Language
    balance_sms: bool


class SettingsChange(Strict):
    language: Optional[Language] = None
    balance_sms: Optional[bool] = None


# -- card top-up ------------------------------------------------------------------------------

class CardTopUpRequest(Strict):
    serial: str = Field(min_length=1, max_length=16, examples=["1000000001"])
    pin: str = Field(min_length=1, max_length=32)


class CardToppedUp(BaseModel):
    serial: str
    amount: str = money()
    duplicate: bool
    figures: Balance
