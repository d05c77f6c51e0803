"""The chain adapter: the clearing and euro token contracts through web3 (the only package importing web3).

``Sender`` is one account on one node (connection, local signing and nonce, fees, receipts, error translation);
``Web3Clearing`` and ``Web3Token`` are the contracts' calls on top of it. The clearing contract and the token of one
account share one sender, so one account never runs two nonce counters.
"""

from settlement.chain.clearing import Web3Clearing
from settlement.chain.sender import (
    EMBEDDED_URL,
    OWNERSHIP_GAS,
    TOKEN_CALL_GAS,
    TOKEN_DEPLOY_GAS,
    Sender,
)
from settlement.chain.token import Web3Token

__all__ = [
    "EMBEDDED_URL",
    "OWNERSHIP_GAS",
    "TOKEN_CALL_GAS",
    "TOKEN_DEPLOY_GAS",
    "Sender",
    "Web3Clearing",
    "Web3Token",
]
