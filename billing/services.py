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
# Internet packs and Nar/SOS credit (issue 5); importing them registers their top-up hooks.
from .credit import CreditDebt, CreditRefused, CreditResult, available_nar_credit, credit_debt, take_nar_credit, take_sos_credit
from .friend_credit import (answer_friend_request, answer_friend_request_by_sms, ask_friend_for_credit,
                            credit_for_friend, pending_requests)
from .pack_renewal import suspend_at_will
from .packs import PackOrder, PackState, deactivate_packs, order_pack, pack_status, stop_pack_renewal
from .plan_change import change_plan
from .usage import DataUsage, record_data_usage

__all__ = [
    "BalanceReport", "CardStatus", "Charge", "TopUp",
    "add_card", "add_subscriber", "audit", "balance_report", "call_price", "card_status",
    "charge_call", "charge_sms", "count_lines", "grant_access", "grantees", "recall_reply",
    "redeem_card", "remember_reply", "revoke_access", "revoke_all", "run_due_bill_cycles",
    "set_balance_notifications", "set_language", "set_roaming", "set_status", "shared_report",
    "topup",
    # issue 5
    "CreditDebt", "CreditRefused", "CreditResult", "DataUsage", "PackOrder", "PackState",
    "answer_friend_request", "answer_friend_request_by_sms", "ask_friend_for_credit", "available_nar_credit",
    "change_plan", "credit_debt", "credit_for_friend", "deactivate_packs", "order_pack", "pack_status",
    "pending_requests", "record_data_usage", "stop_pack_renewal", "suspend_at_will", "take_nar_credit",
    "take_sos_credit",
]
