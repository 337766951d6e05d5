"""The unit of work owns its transaction: hot paths run on the driver connection without an ORM
session, the session joins in a savepoint of its own, and a commit that fails keeps nothing."""
from decimal import Decimal

import pytest
from sqlalchemy.exc import IntegrityError

from billing import lines, services

PRE = "+994501234567"


@pytest.fixture
def line_open(core):
    with core.uow() as uow:
        services.add_subscriber(uow, PRE, "prepaid", balance=Decimal("10.00"))
    return core


def report(core):
    with core.reader() as uow:
        return services.balance_report(uow, PRE)


def test_a_charge_opens_no_orm_session(line_open):
    with line_open.uow() as uow:
        services.charge_sms(uow, PRE, "2112", "k1")
        assert not uow.session_opened


def test_a_refused_orm_step_inside_a_charge_leaves_the_charge_and_forgets_the_objects(line_open):
    with line_open.uow() as uow, uow.atomic():
        services.charge_sms(uow, PRE, "2112", "kept")
        line = lines.find(uow, PRE)
        with pytest.raises(ValueError):
            with uow.atomic():
                line.language = "ru"
                uow.flush()
                raise ValueError("refused")
        assert line.language == "az"  # expired by the undone savepoint, read again
    with line_open.reader() as uow:
        report = services.balance_report(uow, PRE)
    assert (report.balance, report.language) == (Decimal("9.98"), "az")


def test_orm_work_and_driver_statements_share_one_transaction_and_one_commit(line_open):
    with line_open.uow() as uow, uow.atomic():
        services.set_language(uow, PRE, "ru")  # the ORM
        services.charge_sms(uow, PRE, "2112", "k1")  # the driver
        assert uow.session_opened
    r = report(line_open)
    assert (r.language, r.balance) == ("ru", Decimal("9.98"))


def test_work_left_by_an_error_is_thrown_away_and_what_was_committed_stays(line_open):
    with line_open.uow() as uow:
        services.set_language(uow, PRE, "ru")  # committed by the service
        with pytest.raises(ZeroDivisionError):
            with uow.atomic():
                services.charge_sms(uow, PRE, "2112", "k1")  # the driver
                lines.find(uow, PRE).language = "en"  # the ORM
                uow.flush()
                1 / 0
    r = report(line_open)
    assert (r.balance, r.language) == (Decimal("10.00"), "ru")


def test_a_commit_that_fails_keeps_nothing_and_the_next_unit_of_work_starts_clean(line_open):
    with line_open.uow() as uow:
        uow.connection().exec_driver_sql(
            "CREATE TABLE commit_check (line_id INTEGER REFERENCES subscriber (id) DEFERRABLE INITIALLY DEFERRED)")
        uow.commit()
    with line_open.uow() as uow:
        with pytest.raises(IntegrityError):
            with uow.atomic():
                services.charge_sms(uow, PRE, "2112", "lost")
                uow.connection().exec_driver_sql("INSERT INTO commit_check (line_id) VALUES (-1)")
    assert report(line_open).balance == Decimal("10.00")
    with line_open.uow() as uow:  # SQLite left that transaction open: it must not leak into this one
        services.charge_sms(uow, PRE, "2112", "next")
    assert report(line_open).balance == Decimal("9.98")
