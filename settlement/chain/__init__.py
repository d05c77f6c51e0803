"""The chain adapter: the settlement and euro token contracts through web3 (the only package importing web3).

``Sender`` is one account on one node (connection, local signing and nonce, fees, receipts, error translation);
``Web3Clearing``, ``Web3Chain`` and ``Web3Token`` are the contracts' calls on top of it. A chain and its ``token()``
share one sender, so one account never runs two nonce counters.
"""

from settlement.chain.clearing import Web3Clearing
from settlement.chain.epochs import Web3Chain
from settlement.chain.sender import (
    DEPLOY_GAS,
    EMBEDDED_URL,
    OWNERSHIP_GAS,
    SETTLE_BASE_GAS,
    SETTLE_GAS_PER_PAYOUT,
    TOKEN_CALL_GAS,
    TOKEN_DEPLOY_GAS,
    Sender,
    settle_gas,
)
from settlement.chain.token import Web3Token

__all__ = [
    "DEPLOY_GAS",
    "EMBEDDED_URL",
    "OWNERSHIP_GAS",
    "SETTLE_BASE_GAS",
    "SETTLE_GAS_PER_PAYOUT",
    "TOKEN_CALL_GAS",
    "TOKEN_DEPLOY_GAS",
    "Sender",
    "Web3Chain",
    "Web3Clearing",
    "Web3Token",
    "settle_gas",
]
