"""`selfcare cdr import FILE`: Asterisk's cdr_csv Master.csv (dialplan/cdr.conf: loguniqueid and
loguserfield on) read back, and every answered outgoing call not yet charged charged now.

Inbound rings (the wangiri rule, billing.fraud): a row whose userfield is `in:SUBSCRIBER` (set by
the dialplan's [from-trunk] route before it rings the line) with disposition NO ANSWER and billsec
0 is an inbound call that rang and dropped; its `duration` is the ring time, `src` the caller and
`start` when it rang. billing.fraud.record_inbound_ring keeps it when it came from abroad and rang
briefly, once per uniqueid. Any other inbound row (answered, busy, from home) is counted as not
outgoing and left.

The key is the call's `uniqueid`, the same one the hangup handler charges under
(billing.calls.call_key), so a call the hangup handler charged is "already charged" here and a
file imported twice charges nothing the second time. An outgoing call is a row whose userfield is
`out:NUMBER` (set by the dialplan before the AGI); other rows (2112/650, inbound) are counted and
left. A malformed line is reported with its line number and changes nothing.
"""
from __future__ import annotations

import csv
import logging
from datetime import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable

from billing import calls, fraud
from billing.errors import BillingError

log = logging.getLogger(__name__)

COLUMNS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
           "start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield")
OUTGOING_MARK = "out:"
INBOUND_MARK = "in:"
RING_DISPOSITION = "NO ANSWER"


class MalformedCdr(ValueError):
    pass


@dataclass
class Reconciliation:
    seen: int = 0  # well-formed rows
    charged_now: int = 0
    charged_amount: Decimal = Decimal(0)
    already_charged: int = 0
    free: int = 0
    not_answered: int = 0
    not_outgoing: int = 0
    rings_recorded: int = 0  # inbound rings from abroad kept for the wangiri rule (also not outgoing)
    refused: list[tuple[int, str, str]] = field(default_factory=list)  # (line, uniqueid, why)
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (line, why)

    def lines(self) -> list[str]:
        out = [f"calls seen {self.seen}: charged now {self.charged_now} ({self.charged_amount:.4f} AZN), "
               f"already charged {self.already_charged}, free {self.free}, not answered {self.not_answered}, "
               f"not outgoing {self.not_outgoing}, refused {len(self.refused)}, malformed {len(self.malformed)}"]
        if self.rings_recorded:
            out.append(f"inbound rings from abroad recorded {self.rings_recorded}")
        out += [f"refused line {n} (uniqueid {uid}): {why}" for n, uid, why in self.refused]
        out += [f"malformed line {n}: {why}" for n, why in self.malformed]
        return out


def parse_row(text: str) -> dict[str, str]:
    try:
        [row] = list(csv.reader([text], strict=True))
    except (csv.Error, ValueError) as error:
        raise MalformedCdr(f"not one CSV record ({error})") from None
    if len(row) != len(COLUMNS):
        raise MalformedCdr(f"expected {len(COLUMNS)} fields (cdr.conf loguniqueid and loguserfield on), got {len(row)}")
    record = dict(zip(COLUMNS, row))
    for name in ("duration", "billsec"):
        if not record[name].isdigit():
            raise MalformedCdr(f"{name} is not a whole number of seconds: {record[name]!r}")
    if not record["uniqueid"].strip():
        raise MalformedCdr("no uniqueid")
    return record


def import_cdr(core, lines: Iterable[str]) -> Reconciliation:
    result = Reconciliation()
    for number, text in enumerate(lines, start=1):
        text = text.rstrip("\r\n")
        if not text.strip():
            continue
        try:
            record = parse_row(text)
        except MalformedCdr as why:
            result.malformed.append((number, str(why)))
            continue
        result.seen += 1
        _reconcile(core, number, record, result)
    log.info("cdr import: %s", result.lines()[0])
    return result


def _reconcile(core, number: int, record: dict[str, str], result: Reconciliation) -> None:
    userfield = record["userfield"]
    if not userfield.startswith(OUTGOING_MARK):
        result.not_outgoing += 1
        if userfield.startswith(INBOUND_MARK):
            _inbound(core, number, record, result)
        return
    billsec = int(record["billsec"])
    if record["disposition"] != "ANSWERED" or billsec == 0:
        result.not_answered += 1
        return
    uniqueid, dialled = record["uniqueid"], userfield[len(OUTGOING_MARK):]
    try:
        with core.uow() as uow:
            done = calls.charge_finished_call(uow, record["src"], dialled, billsec, uniqueid)
    except BillingError as error:
        result.refused.append((number, uniqueid, f"{error.code}: {error}"))
        return
    if done.rated.free:
        result.free += 1
    elif done.charge.duplicate:
        result.already_charged += 1
    else:
        result.charged_now += 1
        result.charged_amount += done.charge.fee


def _inbound(core, number: int, record: dict[str, str], result: Reconciliation) -> None:
    if record["disposition"] != RING_DISPOSITION or record["billsec"] != "0":
        return
    try:
        rang_at = datetime.fromisoformat(record["start"])
    except ValueError:
        rang_at = None  # the import's own time: the ring still counts
    subscriber = record["userfield"][len(INBOUND_MARK):]
    try:
        with core.uow() as uow:
            recorded = fraud.record_inbound_ring(uow, record["src"], subscriber, int(record["duration"]),
                                                 key=f"ring:{record['uniqueid']}", at=rang_at)
    except BillingError as error:
        result.refused.append((number, record["uniqueid"], f"{error.code}: {error}"))
        return
    result.rings_recorded += recorded
