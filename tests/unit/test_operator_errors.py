"""The first mistakes an operator makes answer in one line on stderr and exit 2, never a traceback:
no schema yet, an older schema, a database URL that is not one, a database that is not there, an
address that is not HOST:PORT."""
from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from billing.core import make_engine
from billing.migrate import upgrade
from selfcare.cli import cli
from tests.peers.ports import free_port


def run(*args, env=None):
    result = CliRunner(mix_stderr=False).invoke(cli, list(args), env=env)
    return result.exit_code, result.stderr


def one_line(text: str) -> str:
    assert "Traceback" not in text
    assert text.count("\n") == 1, text
    return text.strip()


@pytest.fixture
def empty_sqlite(tmp_path):
    return f"sqlite:///{tmp_path / 'empty.db'}"


def test_any_command_on_a_database_without_the_schema_says_run_db_upgrade(empty_sqlite):
    for command in (["subscriber", "show", "0501234567"], ["audit"], ["demo"], ["worker", "--once"]):
        code, error = run("--db", empty_sqlite, *command)
        assert code == 2
        assert one_line(error) == (f"error: the database at {empty_sqlite} has no schema: "
                                   "run `selfcare db upgrade`")


def test_db_upgrade_itself_runs_on_the_empty_database_and_then_commands_work(empty_sqlite):
    assert run("--db", empty_sqlite, "db", "upgrade")[0] == 0
    code, output = run("--db", empty_sqlite, "audit")
    assert code == 0, output


def test_a_database_on_an_older_schema_names_both_revisions(empty_sqlite):
    engine = make_engine(empty_sqlite)
    upgrade(engine, "0004_card_redemption")
    engine.dispose()
    code, error = run("--db", empty_sqlite, "audit")
    assert code == 2
    assert one_line(error) == (f"error: the database at {empty_sqlite} is at schema revision 0004_card_redemption, "
                               "this version needs 0008_forget_sent_codes: run `selfcare db upgrade`")


def test_the_real_postgresql_without_the_schema_says_run_db_upgrade(pg_url):
    code, error = run("--db", pg_url, "subscriber", "show", "0501234567")
    assert code == 2
    line = one_line(error)
    assert line.startswith("error: the database at postgresql+psycopg://") and "***" in line  # password hidden
    assert line.endswith("has no schema: run `selfcare db upgrade`")


@pytest.mark.parametrize("url", ["nonsense", "mysql+nodriver://x/y", "postgresql://user@host:notaport/db"])
def test_a_malformed_database_url_from_the_option_or_the_environment_is_named(url):
    for args, env in ((["--db", url, "audit"], None), (["audit"], {"SELFCARE_DB": url})):
        code, error = run(*args, env=env)
        assert code == 2
        assert one_line(error) == (f"error: --db / SELFCARE_DB {url!r} is not a database URL "
                                   "(use sqlite:///var/selfcare.db or postgresql://USER:PASSWORD@HOST/DB)")


def test_an_unreachable_postgresql_is_one_line_for_every_command_and_db_upgrade():
    url = f"postgresql://selfcare:secret@127.0.0.1:{free_port()}/selfcare"
    for command in (["audit"], ["db", "upgrade"], ["serve"]):
        code, error = run("--db", url, *command)
        assert code == 2
        line = one_line(error)
        assert line.startswith("error: cannot reach the database at postgresql+psycopg://selfcare:***@127.0.0.1:")
        assert "Connection refused" in line and "secret" not in line


@pytest.mark.parametrize("variable, value", [
    ("SELFCARE_HTTP", "127.0.0.1:http"), ("SELFCARE_HTTP", "127.0.0.1:70000"), ("SELFCARE_AGI", ":4573"),
    ("SELFCARE_AGI", "4573"), ("SELFCARE_AGI", "127.0.0.1:"),
])
def test_a_malformed_listening_address_stops_serve_naming_the_variable(tmp_path, variable, value):
    db = f"sqlite:///{tmp_path / 'served.db'}"
    assert run("--db", db, "db", "upgrade")[0] == 0
    code, error = run("--db", db, "serve", env={variable: value})
    assert code == 2
    default = 8080 if variable == "SELFCARE_HTTP" else 4573
    assert one_line(error) == (f"error: {variable}={value!r} is not HOST:PORT "
                               f"(e.g. 127.0.0.1:{default}; a port 1-65535)")


def test_a_port_already_taken_stops_serve_before_anything_forks(tmp_path):
    db = f"sqlite:///{tmp_path / 'served.db'}"
    assert run("--db", db, "db", "upgrade")[0] == 0
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        env = {"SELFCARE_HTTP": f"127.0.0.1:{free_port()}", "SELFCARE_AGI": f"127.0.0.1:{taken}"}
        code, error = run("--db", db, "serve", env=env)
    assert code == 2
    assert one_line(error) == (f"error: cannot listen on 127.0.0.1:{taken} (SELFCARE_AGI): Address already in use; "
                               "stop what holds it or set SELFCARE_AGI=HOST:PORT to another port")
