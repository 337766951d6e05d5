"""Whether a missing real peer (PostgreSQL, Kannel, Asterisk) fails the run or only skips."""
import os


def required() -> bool:
    """`make test` as root sets SELFCARE_REQUIRE_PEERS=1: there a skip would hide a failure."""
    return os.environ.get("SELFCARE_REQUIRE_PEERS") == "1"
