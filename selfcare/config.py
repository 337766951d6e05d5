"""Settings from the environment, with the embedded defaults the README promises."""
from __future__ import annotations

import os
from dataclasses import dataclass


def _host_port(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host:
        return value or "127.0.0.1", default_port
    return host, int(port)


@dataclass(frozen=True)
class Settings:
    agi: tuple[str, int]
    http: tuple[str, int]
    twilio_auth_token: str | None
    twilio_public_url: str | None
    kannel_secret: str | None
    kannel_allow: tuple[str, ...]

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ
        return cls(
            agi=_host_port(env.get("SELFCARE_AGI", "127.0.0.1:4573"), 4573),
            http=_host_port(env.get("SELFCARE_HTTP", "127.0.0.1:8080"), 8080),
            twilio_auth_token=env.get("SELFCARE_TWILIO_AUTH_TOKEN"),
            twilio_public_url=env.get("SELFCARE_TWILIO_PUBLIC_URL"),
            kannel_secret=env.get("SELFCARE_KANNEL_SECRET"),
            kannel_allow=tuple(a for a in env.get("SELFCARE_KANNEL_ALLOW", "").split(",") if a),
        )
