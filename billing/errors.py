"""Domain errors. Each channel turns them into its own answer (a prompt, SMS text, END ..., HTTP)."""


class BillingError(Exception):
    code = "error"


class InvalidMsisdn(BillingError):
    code = "invalid-msisdn"


class InvalidAmount(BillingError):
    code = "invalid-amount"


class InvalidLanguage(BillingError):
    code = "invalid-language"


class InvalidSerial(BillingError):
    code = "invalid-serial"


class UnknownSubscriber(BillingError):
    code = "unknown-subscriber"


class SubscriberExists(BillingError):
    code = "subscriber-exists"


class UnknownTariff(BillingError):
    code = "unknown-tariff"


class WrongPlan(BillingError):
    """The line is on the other plan (a postpaid caller on 2112, a prepaid one on 650)."""

    code = "wrong-plan"

    def __init__(self, message: str, plan: str):
        super().__init__(message)
        self.plan = plan


class LineNotActive(BillingError):
    code = "line-not-active"


class BalanceExpired(LineNotActive):
    """A prepaid line past its balance expiry date: one-way suspended until a top-up (docs/rules.md)."""

    code = "balance-expired"


class LineClosed(LineNotActive):
    """A prepaid line past its subscription end: the number is closed and can no longer be served."""

    code = "line-closed"


class InsufficientBalance(BillingError):
    code = "insufficient-balance"


class UnknownCard(BillingError):
    code = "unknown-card"


class CardAlreadyUsed(BillingError):
    """`used_at`: when the card was redeemed (what the subscriber is told)."""

    code = "card-used"

    def __init__(self, message: str, used_at=None):
        super().__init__(message)
        self.used_at = used_at


class InvalidPin(BillingError):
    """Not a PIN at all (letters, too short, too long): answered, nothing recorded."""

    code = "invalid-pin"


class WrongPin(BillingError):
    """A well-formed PIN that opens no card (recorded: it counts towards the line's throttle).
    `tries_left`: wrong PINs the line may still send before it is refused for a while."""

    code = "wrong-pin"

    def __init__(self, message: str, tries_left: int | None = None):
        super().__init__(message)
        self.tries_left = tries_left


class TooManyWrongPins(BillingError):
    """The line sent too many wrong PINs lately: refused without checking the PIN until `until`."""

    code = "too-many-wrong-pins"

    def __init__(self, message: str, until):
        super().__init__(message)
        self.until = until


class AccessDenied(BillingError):
    code = "access-denied"


class InvalidTariffData(BillingError):
    code = "invalid-tariff-data"


class InvalidInput(BillingError):
    """A value outside what the rules allow (a bill day of 30, a language of 'de', ...)."""

    code = "invalid-input"


class UnknownPack(BillingError):
    code = "unknown-pack"


class NoPacks(BillingError):
    code = "no-packs"


class CreditRefused(BillingError):
    """`reason` names the rule: not-prepaid, not-active, balance-expired, too-new, no-topup, first-week,
    limit, above-available, nar-not-maxed, sos-limit, unknown-amount, self, friend-not-prepaid,
    friend-not-active. `details` are the figures that say what is still possible (e.g. the largest
    Nar Credit that fits: `fitting_amount`, `fitting_code`; what is `available`)."""

    code = "credit-refused"

    def __init__(self, reason: str, message: str, **details):
        super().__init__(message)
        self.reason = reason
        self.details = details


class NoFriendRequest(BillingError):
    code = "no-friend-request"


class FriendRequestExpired(BillingError):
    code = "friend-request-expired"


# -- sign-in (billing/signin.py) ----------------------------------------------------------------

class InvalidCode(BillingError):
    """Not a sign-in code at all (not 6 digits): answered, not counted as a try."""

    code = "invalid-code"


class WrongCode(BillingError):
    """A well-formed code that is not the challenge's (counted). `tries_left` before it is refused."""

    code = "wrong-code"

    def __init__(self, message: str, tries_left: int):
        super().__init__(message)
        self.tries_left = tries_left


class TooManyWrongCodes(BillingError):
    code = "too-many-wrong-codes"


class CodeExpired(BillingError):
    """Used, past its 5 minutes, or no such request for this number: the same answer for each."""

    code = "code-expired"


class TooManyCodes(BillingError):
    """The number or the client address asked for too many codes this hour; again from `until`."""

    code = "too-many-codes"

    def __init__(self, message: str, until):
        super().__init__(message)
        self.until = until


class NotSignedIn(BillingError):
    """No token or session, or an unknown, revoked, expired or idle one: the same answer for each."""

    code = "not-signed-in"
