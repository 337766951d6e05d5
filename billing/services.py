"""The service layer every channel calls. Each function takes a unit of work and commits itself.

This module only gathers the public entry points; each rule lives in one module of its own.
"""
from .audit import audit, count_lines
from .billrun import run_due_bill_cycles
from .charging import Charge, call_price, charge_call, charge_sms
from .lines import (
    add_subscriber,
    set_balance_notifications,
    set_language,
    set_roaming,
    set_status,
)
from .payments import CardStatus, TopUp, add_card, card_status, redeem_card, topup
from .replies import recall_reply, remember_reply
from .reports import BalanceReport, balance_report
from .sharing import grant_access, grantees, revoke_access, revoke_all, shared_report

__all__ = [
    "BalanceReport", "CardStatus", "Charge", "TopUp",
    "add_card", "add_subscriber", "audit", "balance_report", "call_price", "card_status",
    "charge_call", "charge_sms", "count_lines", "grant_access", "grantees", "recall_reply",
    "redeem_card", "remember_reply", "revoke_access", "revoke_all", "run_due_bill_cycles",
    "set_balance_notifications", "set_language", "set_roaming", "set_status", "shared_report",
    "topup",
]
