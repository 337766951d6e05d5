"""Classic AGI entry: `AGI(/path/to/python,-m,ivr.agi_script,2112)` -- stdin/stdout, one call per process.

Runs the same flows as the FastAGI server. The service is the first argument (`2112` or `650`);
the billing database comes from $SELFCARE_DB as everywhere else. Logs go to stderr (Asterisk shows
them on its console with `agi set debug on`) and never to stdout, which carries the protocol.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading

from .agi_shim import AGIError, AgiSession, Hangup
from .channel import AgiChannel
from .flows import UnknownService, run_call, service_for

log = logging.getLogger("ivr.agi_script")

EXIT_OK, EXIT_USAGE, EXIT_BROKEN_ENV = 0, 2, 3


def run(argv: list[str], stdin=None, stdout=None, core=None) -> int:
    """Read the AGI environment from stdin, run the flow named by argv[0], return an exit code."""
    if len(argv) != 1:
        print("usage: python -m ivr.agi_script 2112|650", file=sys.stderr)
        return EXIT_USAGE
    try:
        service = service_for(argv[0])
    except UnknownService as why:
        print(f"ivr.agi_script: {why}", file=sys.stderr)
        return EXIT_USAGE
    try:
        session = AgiSession(stdin or sys.stdin, stdout or sys.stdout)
    except (Hangup, AGIError) as why:
        log.warning("agi_script: no usable AGI environment (%s)", why)
        return EXIT_BROKEN_ENV
    if threading.current_thread() is threading.main_thread():
        # Asterisk sends SIGHUP to a classic AGI script when the caller hangs up; the default
        # action would kill us mid-transaction. pyst2 installs this itself, the shim leaves it to us.
        signal.signal(signal.SIGHUP, session.note_sighup)
    if core is None:
        from billing.core import Core

        core = Core()
    outcome = run_call(core, AgiChannel(session), service.number)
    log.info("agi_script call %s ended: %s", service.number, outcome)
    return EXIT_OK


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
