"""The classic AGI entry (`python -m ivr.agi_script 2112`) as Asterisk runs it: a process on stdin/stdout."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.ivr_support import POSTPAID_RU, PREPAID_AZ, ScriptedCaller, env_for, make_core, report

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_url(tmp_path):
    core = make_core(tmp_path)
    core.dispose()
    return core.db_url


def start_script(db_url: str, *args: str) -> subprocess.Popen:
    environment = dict(os.environ, SELFCARE_DB=db_url, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "ivr.agi_script", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=REPO, env=environment,
    )


def converse(process: subprocess.Popen, env: list[str], responder, on_command=None) -> list[str]:
    """Play Asterisk: send the environment, answer each command until the script exits."""
    process.stdin.write("\n".join(env) + "\n\n")
    process.stdin.flush()
    commands = []
    for line in process.stdout:
        command = line.rstrip("\n")
        commands.append(command)
        if on_command:
            on_command(command)
        try:
            process.stdin.write("".join(f"{r}\n" for r in responder(command)))
            process.stdin.flush()
        except BrokenPipeError:
            break
    process.stdin.close()
    process.wait(30)
    return commands


def test_classic_agi_runs_the_2112_flow_on_stdin_and_stdout(db_url):
    process = start_script(db_url, "2112")
    commands = converse(process, env_for("2112", PREPAID_AZ), ScriptedCaller("9"))
    assert process.returncode == 0, process.stderr.read()
    assert commands[:3] == ["ANSWER", 'SET VARIABLE "CHANNEL(language)" "az"', 'STREAM FILE welcome-2112 "" 0']
    assert commands[-2:] == ['STREAM FILE goodbye "" 0', "HANGUP"]


def test_classic_agi_takes_the_service_from_its_argument_and_saves_a_language(db_url, tmp_path):
    process = start_script(db_url, "650")
    commands = converse(process, env_for("ignored", POSTPAID_RU), ScriptedCaller("219"))
    assert process.returncode == 0, process.stderr.read()
    assert 'STREAM FILE welcome-650 "" 0' in commands
    from billing.core import Core

    core = Core(db_url)
    try:
        assert report(core, POSTPAID_RU).language == "az"
    finally:
        core.dispose()


def test_sighup_from_asterisk_ends_the_script_cleanly(db_url):
    process = start_script(db_url, "2112")

    def hang_up_on_first_prompt(command):
        if command.startswith("STREAM FILE welcome-2112"):
            process.send_signal(signal.SIGHUP)

    commands = converse(process, env_for("2112", PREPAID_AZ), ScriptedCaller("9"), hang_up_on_first_prompt)
    assert process.returncode == 0, process.stderr.read()
    assert commands[-1] == 'STREAM FILE welcome-2112 "" 0'


@pytest.mark.parametrize("args", [(), ("999",), ("2112", "650")])
def test_a_wrong_argument_is_a_usage_error(db_url, args):
    process = start_script(db_url, *args)
    out, err = process.communicate("", timeout=30)
    assert process.returncode == 2 and out == ""
    assert "2112" in err


def test_eof_before_the_environment_ends_exits_without_a_command(db_url):
    process = start_script(db_url, "2112")
    out, _ = process.communicate("agi_network: yes\n", timeout=30)
    assert process.returncode == 3 and out == ""
