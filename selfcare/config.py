"""Settings from the environment, with the embedded defaults the README promises."""
from __future__ import annotations

import os
from dataclasses import dataclass


class ConfigError(ValueError):
    """A setting from the environment that cannot be used; the message names the variable."""


def _host_port(variable: str, value: str, default_port: int) -> tuple[str, int]:
    host, colon, port = value.strip().rpartition(":")
    if not colon and not port.isdigit():
        return port or "127.0.0.1", default_port  # a host alone: the default port
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]  # [::1]:4573
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{variable}={value!r} is not HOST:PORT (e.g. 127.0.0.1:{default_port}; a port 1-65535)")
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
            agi=_host_port("SELFCARE_AGI", env.get("SELFCARE_AGI", "127.0.0.1:4573"), 4573),
            http=_host_port("SELFCARE_HTTP", env.get("SELFCARE_HTTP", "127.0.0.1:8080"), 8080),
            twilio_auth_token=env.get("SELFCARE_TWILIO_AUTH_TOKEN"),
            twilio_public_url=env.get("SELFCARE_TWILIO_PUBLIC_URL"),
            kannel_secret=env.get("SELFCARE_KANNEL_SECRET"),
            kannel_allow=tuple(a for a in env.get("SELFCARE_KANNEL_ALLOW", "").split(",") if a),
        )


def check_can_listen(variable: str, address: tuple[str, int]) -> None:
    """Bind the address once, alone (no SO_REUSEPORT), before a serving tree forks: a port another
    program holds, or another `selfcare serve` (whose SO_REUSEPORT sockets would otherwise let
    this one silently share its port), stops start-up with one line."""
    import socket

    host, port = address
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "taken"
            probe.bind((host, port))
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(f"cannot listen on {host}:{port} ({variable}): {reason}; stop what holds it "
                          f"or set {variable}=HOST:PORT to another port") from None
