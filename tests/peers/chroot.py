"""The cached Debian sid chroot with Asterisk 22 and baresip (bookworm has no Asterisk package).

scripts/asterisk-chroot builds it once; here we only ask for it and see paths as the chroot sees
them. A chroot that cannot be had is a skip, said loudly, never a silent pass.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.peers.errors import AsteriskError

REPO = Path(__file__).resolve().parents[2]
CHROOT_SCRIPT = REPO / "scripts" / "asterisk-chroot"


class ChrootUnavailable(Exception):
    """The sid chroot could not be built: the real-Asterisk tests are skipped, loudly."""

    def __init__(self, message: str, mirror: bool = False):
        super().__init__(message)
        self.mirror = mirror  # the package mirror could not provide Asterisk (exit 3)


def loud(message: str) -> None:
    """Print past pytest's capture (the controlling terminal, else the original stderr fd) so
    that a skipped real-PBX suite is seen while it happens; conftest repeats it in the summary."""
    banner = "!" * 78
    text = f"\n{banner}\n!!! {message}\n{banner}\n"
    try:
        with open("/dev/tty", "w") as tty:
            tty.write(text)
            return
    except OSError:
        pass
    sys.__stderr__.write(text)
    sys.__stderr__.flush()


def ensure_chroot() -> Path:
    """Build the chroot once (cached) and return its path; ChrootUnavailable when it cannot be."""
    if os.geteuid() != 0:
        raise ChrootUnavailable("the real-Asterisk tests need root (chroot)")
    if not CHROOT_SCRIPT.exists():
        raise ChrootUnavailable(f"{CHROOT_SCRIPT} is missing")
    done = subprocess.run([str(CHROOT_SCRIPT)], capture_output=True, text=True, timeout=900)
    if done.returncode in (3, 4):
        raise ChrootUnavailable(
            f"scripts/asterisk-chroot exit {done.returncode}: {done.stderr.strip()[-1500:]}",
            mirror=done.returncode == 3,
        )
    if done.returncode != 0:
        raise AsteriskError(f"scripts/asterisk-chroot failed ({done.returncode}): {done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def resolve_inside(chroot: Path, inside: str, hops: int = 20) -> str:
    """Follow symlinks as the chroot sees them (absolute targets are relative to the chroot)."""
    path = Path(inside)
    for _ in range(hops):
        parts = path.parts
        for index in range(2, len(parts) + 1):
            prefix = Path(*parts[:index])
            host = chroot / str(prefix).lstrip("/")
            if host.is_symlink():
                target = Path(os.readlink(host))
                if not target.is_absolute():
                    target = prefix.parent / target
                path = Path(os.path.normpath(target.joinpath(*parts[index:])))
                break
        else:
            return str(path)
    raise AsteriskError(f"symlink loop at {inside} in {chroot}")
