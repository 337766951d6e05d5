"""Fraud rules of seed 001 (filled in by the fraud step)."""
from __future__ import annotations


def is_suspect_number(uow, number: str) -> bool:
    return False


def check_unusual_deductions(uow, msisdn: str, key: str) -> None:
    return None
