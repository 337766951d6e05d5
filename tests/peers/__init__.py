"""The real peers the integration tests, the e2e tests and the benchmarks run against, one module a job.

    chroot.py           the cached Debian sid chroot with Asterisk 22 and baresip (scripts/asterisk-chroot)
    asterisk_config.py  the per-run tree an Asterisk boots from: our dialplan/ and prompts, free ports
    asterisk.py         one running Asterisk: boot, CLI, logs, `originate`
    local_call.py       calls over Local channels with a scripted caller (the test-only contexts)
    baresip.py          calls over SIP from baresip
    agi_trace.py        the AGI conversation as Asterisk logged it: commands, replies, environment
    tiny_fastagi.py     a minimal FastAGI responder that proves the Asterisk harness without our IVR
    audio.py            what a caller heard: speech or not
    kannel.py           bearerbox + smsbox + fakesmsc in front of our HTTP app
    fakesmsc_log.py     the MT messages fakesmsc received, decoded and reassembled
    app_server.py       a WSGI app under waitress in a thread (the harness; `selfcare serve` runs Granian)
    postgres.py         throwaway databases on the real PostgreSQL
    prometheus.py       Debian's Prometheus scraping our /metrics, asked through its HTTP API
    ports.py            free loopback ports
    errors.py           what a peer raises once it is up

Nothing here is named test_*.py: pytest does not collect it.
"""
import os


def required() -> bool:
    """Whether a missing real peer fails the run or only skips. `make test` as root sets
    SELFCARE_REQUIRE_PEERS=1: there a skip would hide a failure."""
    return os.environ.get("SELFCARE_REQUIRE_PEERS") == "1"
