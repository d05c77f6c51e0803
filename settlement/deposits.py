"""Riders' deposits: a rider takes euro tokens from the demo faucet and deposits them into the clearing contract.

Only in demo mode: the faucet mints for anyone. With a real token a rider's wallet does the same two last steps
(``approve`` and ``deposit``) with tokens bought elsewhere.
"""

from __future__ import annotations

from settlement.clearing import ClearingPort
from settlement.ports import TokenPort


def fund_from_faucet(clearing: ClearingPort, token: TokenPort, amount: int) -> int:
    """Make ``clearing``'s account (the rider; ``token`` sends from the same account) deposit ``amount`` micro-EUR
    taken from the token's faucet, unless its unspent deposit is that much already; what it deposited (0 or
    ``amount``). ``ChainError`` with the contract's reason if a step is refused (no faucet, above its cap)."""
    rider = clearing.account
    if clearing.deposited(rider) - clearing.withdrawn(rider) >= amount:
        return 0
    token.faucet(amount)
    clearing.approve(amount)
    clearing.deposit(amount)
    return amount
