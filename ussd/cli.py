"""`selfcare ussd FROM CODE`: the gateway's code path, one dialled code, printed as the gateway
would send it (`CON …`/`END …`). Each invocation is its own session (a fresh idempotency key)."""
from __future__ import annotations

import uuid

from .service import answer


def ussd_command(core, from_: str, code: str, text: str = "", session: str | None = None) -> str:
    return answer(core, from_, code, text, f"cli:ussd:{session or uuid.uuid4()}").wire
