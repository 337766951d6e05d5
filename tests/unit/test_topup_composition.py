"""What a top-up triggers is written out in billing.payments, not filled in by other imports."""
import subprocess
import sys
import textwrap


def test_importing_billing_payments_alone_recovers_credit_debt_at_a_top_up(tmp_path):
    # A fresh interpreter that imports nothing of billing but what a top-up needs: before, the
    # debt recovery was a hook registered only when billing.credit happened to be imported.
    script = textwrap.dedent(f"""
        from datetime import datetime
        from decimal import Decimal
        from billing.clock import FixedClock
        from billing.core import Core
        from billing import ledger, lines, payments
        from billing.models import CreditGrant

        core = Core("sqlite:///{tmp_path / 'topup.db'}", clock=FixedClock(datetime(2026, 11, 22, 12, 0)))
        core.upgrade_schema()
        with core.uow() as uow:
            line = lines.add_subscriber(uow, "+994501234567", "prepaid", balance=Decimal("0"))
        with core.uow() as uow:
            line = lines.find(uow, "+994501234567", lock=True)
            op = ledger.open_operation(uow, "credit-1", "credit:nar", line)
            ledger.post(uow, line, "balance", Decimal("1.00"), op, "credit:nar")
            ledger.post(uow, line, "nar_debt", Decimal("1.20"), op, "credit:nar")
            uow.session.add(CreditGrant(operation_id=op.id, debtor_id=line.id, beneficiary_id=line.id, kind="nar",
                                        principal_units=10000, fee_units=2000, outstanding_units=12000,
                                        granted_at=uow.clock.now()))
            uow.commit()
        with core.uow() as uow:
            payments.topup(uow, "+994501234567", "5.00", "topup-1")
        with core.reader() as uow:
            line = lines.find(uow, "+994501234567")
            print(ledger.account_value(line, "balance"), ledger.account_value(line, "nar_debt"))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["4.8000", "0.0000"]  # 1.00 + 5.00 - the 1.20 owed
