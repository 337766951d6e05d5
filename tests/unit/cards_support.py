"""Scratch-card test support: cards and lines to redeem them on, and the migration check both
databases run (tests/unit/test_cards.py on SQLite, tests/integration/test_cards_pg.py on PostgreSQL)."""
from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal

from sqlalchemy import inspect, text

from billing import services

PIN = "12345678901234"  # 14 digits, as cards are printed
OTHER_PIN = "98765432109876"
WRONG_PIN = "11112222333344"


def add_card(core, serial="1000000001", pin=PIN, value="5.00"):
    with core.uow() as uow:
        services.add_card(uow, serial, pin, value)


def redeem(core, msisdn, pin, key, serial=None):
    with core.uow() as uow:
        return services.redeem_card(uow, msisdn, pin, key, serial=serial)


def status(core, serial="1000000001"):
    with core.reader() as uow:
        return services.card_status(uow, serial)


def check_migration_0004(url: str) -> None:
    """0003 with a card imported the old way (serial:PIN hash) -> 0004: the card is still redeemed
    with its serial; a downgrade refuses while a PIN-only card exists, then goes down and up again."""
    from alembic import command

    from billing.clock import FixedClock
    from billing.core import Core, make_engine
    from billing.migrate import alembic_config, upgrade

    engine = make_engine(url)
    try:
        upgrade(engine, "0003_outbox_claims")
        legacy = hashlib.sha256(b"2000000001:4321").hexdigest()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO scratch_card (serial, pin_hash, value_units) "
                              "VALUES ('2000000001', :hash, 30000)"), {"hash": legacy})
        upgrade(engine, "0004_card_redemption")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0004_card_redemption"
        columns = {c["name"]: c for c in inspect(engine).get_columns("scratch_card")}
        assert {"pin_lookup", "operation_id"} <= set(columns) and columns["pin_hash"]["nullable"]
        assert "card_pin_failure" in inspect(engine).get_table_names()

        core = Core(url, clock=FixedClock(datetime(2026, 11, 22, 12, 0)))
        try:
            with core.uow() as uow:
                services.add_subscriber(uow, "+994501234567", "prepaid", balance=Decimal("1.00"))
            topped = redeem(core, "+994501234567", "4321", "migrate:legacy", serial="2000000001")
            assert (topped.amount, topped.report.balance) == (Decimal("3"), Decimal("4"))
            add_card(core, "2000000002", PIN, "5.00")  # the new way: a PIN digest only
            try:
                command.downgrade(alembic_config(engine), "0003_outbox_claims")
            except RuntimeError as refused:
                assert "1 scratch card(s)" in str(refused)
            else:
                raise AssertionError("the downgrade dropped a card 0003 could never redeem")
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM scratch_card WHERE serial = '2000000002'"))
                conn.execute(text("DELETE FROM card_pin_failure"))
        finally:
            core.dispose()

        command.downgrade(alembic_config(engine), "0003_outbox_claims")
        columns = {c["name"]: c for c in inspect(engine).get_columns("scratch_card")}
        assert "pin_lookup" not in columns and not columns["pin_hash"]["nullable"]
        assert "card_pin_failure" not in inspect(engine).get_table_names()
        with engine.connect() as conn:
            used = conn.execute(text("SELECT used_by FROM scratch_card WHERE serial = '2000000001'")).scalar()
        assert used == "+994501234567"
        upgrade(engine, "head")
    finally:
        engine.dispose()
