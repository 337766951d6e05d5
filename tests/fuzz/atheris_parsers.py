"""Coverage-guided fuzzing of the parsers with atheris (libFuzzer): `python -m
tests.fuzz.atheris_parsers TARGET [libFuzzer flags]`, TARGET one of TARGETS. Where hypothesis
draws from grammars we wrote (test_parsers.py), libFuzzer mutates bytes towards branches no input
has reached yet. A failing property or an exception other than the parser's own refusal is a
crash: libFuzzer writes the input to its artifact prefix and exits non-zero. Run bounded by
test_atheris_parsers.py."""
from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["sms", "ussd", "ivr"]):
    from tests.fuzz.parser_properties import (agi_environment_holds, agi_reply_holds, sms_command_holds,
                                              ussd_request_holds)

SHORT_NUMBERS = ["2112", "650", "1005", "1003", "700", ""]


def sms(data: bytes) -> None:
    fuzzed = atheris.FuzzedDataProvider(data)
    to = fuzzed.PickValueInList(SHORT_NUMBERS) if fuzzed.ConsumeBool() else fuzzed.ConsumeUnicodeNoSurrogates(8)
    sms_command_holds(to, fuzzed.ConsumeUnicodeNoSurrogates(160) if fuzzed.ConsumeBool() else None)


def ussd(data: bytes) -> None:
    ussd_request_holds(atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(182))


def agi_environment(data: bytes) -> None:
    agi_environment_holds(atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(4096).replace("\r", ""))


def agi_reply(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(1024).replace("\r", "")
    agi_reply_holds(text.split("\n")[:12])


TARGETS = {"sms": sms, "ussd": ussd, "agi-environment": agi_environment, "agi-reply": agi_reply}

if __name__ == "__main__":
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()
