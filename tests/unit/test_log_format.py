"""The log format: plain by default, one JSON object a line with SELFCARE_LOG_FORMAT=json; each
line with the request's or call's id and the caller's masked number."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from selfcare import logs

REPO = Path(__file__).resolve().parents[2]


def record_in(context: dict | None, msg: str, *args, exc_info=None) -> logging.LogRecord:
    logs._capture_context()
    make = lambda: logging.getLogRecordFactory()("sms.web", logging.INFO, __file__, 7, msg, args, exc_info)  # noqa: E731
    if context is None:
        return make()
    with logs.bound(**context):
        return make()


def test_a_json_line_carries_the_request_id_and_the_masked_number():
    record = record_in({"request_id": "kannel:42", "number": "0501234567"}, "sms to %s from %s", "2112",
                       "+99450***4567")
    line = logs.formatter("json").format(record)
    assert "\n" not in line
    fields = json.loads(line)
    assert fields.pop("time").endswith("Z")
    assert fields == {"level": "info", "logger": "sms.web", "pid": record.process, "request_id": "kannel:42",
                      "number": "+99450***4567", "message": "sms to 2112 from +99450***4567"}


def test_a_json_line_masks_numbers_in_the_message_and_the_traceback():
    try:
        raise LookupError("no line +994501234567")
    except LookupError:
        record = record_in({"call_id": "1733100000.17"}, "call of %s failed", "994551234567",
                           exc_info=sys.exc_info())
    fields = json.loads(logs.formatter("json").format(record))
    assert fields["message"] == "call of ***4567 failed"
    assert fields["call_id"] == "1733100000.17"
    assert fields["exception"].startswith("Traceback (most recent call last):")
    assert fields["exception"].endswith("LookupError: no line ***4567")
    assert "1234567" not in json.dumps(fields)


def test_the_plain_line_stays_the_default_with_the_ids_after_the_message():
    record = record_in({"request_id": "ussd:s-1", "number": "+994551234567"}, "ussd %s", "postpaid-balance")
    formatter = logs.formatter()
    assert isinstance(formatter, logs.MaskingFormatter)
    line = formatter.format(record)
    assert line.endswith(" sms.web INFO ussd postpaid-balance request_id=ussd:s-1 number=+99455***4567")


def test_a_line_outside_any_request_has_no_ids():
    record = record_in(None, "worker tick")
    assert json.loads(logs.formatter("json").format(record)).keys() == {"level", "logger", "pid", "time", "message"}
    assert logs.formatter("plain").format(record).endswith("sms.web INFO worker tick")


def test_the_ids_are_taken_when_the_line_is_logged_not_when_it_is_written():
    """`selfcare serve` writes lines later, in its log-writer thread, where no request runs."""
    record = record_in({"request_id": "twilio:SM1"}, "charged")
    written = []
    writer = threading.Thread(target=lambda: written.append(logs.formatter("json").format(record)))
    writer.start()
    writer.join()
    assert json.loads(written[0])["request_id"] == "twilio:SM1"


def test_a_number_typed_any_way_is_masked_the_same():
    assert logs.masked_number("0501234567") == logs.masked_number("+994501234567") == "+99450***4567"
    assert logs.masked_number("not a number 12345678") == "not a number ***5678"


def test_an_unknown_log_format_stops_the_command_with_one_line():
    run = subprocess.run([sys.executable, "-c", "from selfcare.cli import main; main()", "audit"], cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "SELFCARE_LOG_FORMAT": "xml", "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == "Error: SELFCARE_LOG_FORMAT must be plain or json, not 'xml'"


def test_group_commit_runs_each_callers_work_in_that_callers_log_context(core):
    """A batch runs the queued callers' functions in the thread that leads it: their lines must
    still carry their own request ids."""
    release, started, seen = threading.Event(), threading.Event(), {}

    def hold(uow):
        started.set()
        release.wait(10)

    def note(name):
        def fn(uow):
            seen[name] = (logs.current().get("request_id"), threading.current_thread().name)
        return fn

    def submit(name, fn):
        with logs.bound(request_id=name):
            core.group_commit.submit(fn)

    holder = threading.Thread(target=submit, args=("a", hold), name="a")
    holder.start()
    assert started.wait(10)
    queued = [threading.Thread(target=submit, args=(name, note(name)), name=name) for name in ("b", "c")]
    queued[0].start()
    while core.group_commit.waiting() < 1:
        pass
    queued[1].start()
    while core.group_commit.waiting() < 2:
        pass
    release.set()
    for thread in (holder, *queued):
        thread.join(10)
    assert seen == {"b": ("b", "b"), "c": ("c", "b")}  # c's work ran in b's batch, under c's id


@pytest.fixture(autouse=True)
def _restore_root_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_through_serves_log_queue_the_traceback_stays_apart_from_the_message():
    import queue

    from selfcare.serve import _QueueKeepingTraceback

    records = queue.SimpleQueue()
    try:
        raise LookupError("no line +994501234567")
    except LookupError:
        record = record_in({"request_id": "kannel:9"}, "sms from %s failed", "+99450***4567", exc_info=sys.exc_info())
    _QueueKeepingTraceback(records).handle(record)
    queued = records.get_nowait()
    fields = json.loads(logs.formatter("json").format(queued))
    assert fields["message"] == "sms from +99450***4567 failed"
    assert fields["exception"].endswith("LookupError: no line ***4567")
    assert fields["request_id"] == "kannel:9"
    plain = logs.formatter("plain").format(queued).splitlines()
    assert plain[0].endswith("sms from +99450***4567 failed request_id=kannel:9")
    assert plain[-1] == "LookupError: no line ***4567"


def test_the_lines_an_sms_and_a_ussd_request_log_carry_its_id_and_the_masked_number(core, caplog):
    from decimal import Decimal

    from billing import services
    from selfcare.config import Settings
    from selfcare.http import create_app

    with core.uow() as uow:
        services.add_subscriber(uow, "+994501234567", "prepaid", balance=Decimal("5.00"), language="en")
    settings = Settings(agi=("127.0.0.1", 0), http=("127.0.0.1", 0), twilio_auth_token=None,
                        twilio_public_url=None, kannel_secret="s", kannel_allow=())
    client = create_app(core, settings).test_client()
    logs._capture_context()
    with caplog.at_level(logging.INFO):
        sms = client.get("/sms/kannel", query_string={"from": "0501234567", "to": "2112", "text": "", "id": "log-1",
                                                      "secret": "s"})
        sms_records = list(caplog.records)
        caplog.clear()
        ussd = client.post("/ussd", data={"sessionId": "log-2", "serviceCode": "*111*1*7#",
                                          "phoneNumber": "994501234567", "text": ""})
        ussd_records = list(caplog.records)
    assert sms.status_code == ussd.status_code == 200
    # each request's own lines: the fee it took, the code it was asked, every one with the ids
    assert "sms fee 0.0200 AZN to 2112 for +99450***4567" in [r.getMessage() for r in sms_records]
    assert "ussd dates from +99450***4567, 0 inputs" in [r.getMessage() for r in ussd_records]
    for records, request_id in ((sms_records, "kannel:log-1"), (ussd_records, "ussd:log-2")):
        mine = [r for r in records if r.name.startswith(("sms", "ussd", "billing"))]
        assert mine and all(r.selfcare == {"request_id": request_id, "number": "+99450***4567"} for r in mine)
    line = logs.formatter("plain").format(next(r for r in ussd_records if r.name == "ussd.service"))
    assert line.endswith("ussd dates from +99450***4567, 0 inputs request_id=ussd:log-2 number=+99450***4567")
