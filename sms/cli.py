"""`selfcare sms FROM TO [TEXT]`: the webhook's code path, on the operator's shell."""
from __future__ import annotations

import uuid

from .service import handle_sms


def sms_command(core, from_: str, to: str, text: str | None = None) -> str:
    """The reply exactly as the subscriber would get it; charged as the webhook would charge.

    Each CLI request is a new SMS, so its idempotency key is a fresh uuid.
    """
    return handle_sms(core, from_, to, text or "", f"cli:{uuid.uuid4()}").text
