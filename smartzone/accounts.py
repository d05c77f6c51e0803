"""``smartzone claim`` and ``smartzone withdraw``: an account's balance proof taken from the database, checked
against the clearing contract's root, and sent with the account's key (``SMARTZONE_ACCOUNT_KEY``).

A claim pays what the account earned (as an owner or the zone) less what it claimed before; anyone may send it,
the money goes to the account. A withdrawal pays a rider's unspent deposit in two runs: the first asks for it
(``request_withdrawal``), a run after the contract's delay withdraws it with the proof.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from sensors.address import Address, InvalidAddress
from settlement.errors import ChainError
from smartzone.settings import Settings

if TYPE_CHECKING:
    from settlement.chain import Web3Clearing
    from settlement.clearing import BalanceProof


def add_account_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``claim`` and ``withdraw`` on the CLI's subcommands."""
    claim = sub.add_parser(
        "claim",
        help="claim an account's earnings from the clearing contract",
        description="Build the account's balance proof from SMARTZONE_DATABASE_URL (the last epoch on chain), check "
        "it against the clearing contract's root on SMARTZONE_CHAIN_URL, and send `claim` from SMARTZONE_ACCOUNT_KEY's "
        "account. Pays earned minus what was claimed before to the account (exit 0); nothing due or a refusal "
        "exits 1 with the reason.",
    )
    claim.add_argument("--account", help="the account to claim for (default: SMARTZONE_ACCOUNT_KEY's)")
    claim.set_defaults(command=run_claim)
    withdraw = sub.add_parser(
        "withdraw",
        help="withdraw a rider's unspent deposit (asks first, withdraws after the contract's delay)",
        description="Without a ready request of at least AMOUNT, send `request_withdrawal(AMOUNT)` and print the "
        "block from which it may be withdrawn; with one, send `withdraw` with the account's balance proof. The key "
        "is SMARTZONE_ACCOUNT_KEY.",
    )
    withdraw.add_argument("--amount", type=int, required=True, help="micro-EUR to withdraw")
    withdraw.set_defaults(command=run_withdraw)


def run_claim(settings: Settings, args: argparse.Namespace) -> int:
    """Claim and print what was paid; 1 with the reason when nothing is paid, 2 without a key."""
    clearing = _clearing(settings)
    if clearing is None:
        return 2
    try:
        account = Address.parse(args.account) if args.account else clearing.account
    except InvalidAddress as exc:
        print(f"smartzone: error: {exc}", file=sys.stderr, flush=True)
        return 2
    found = _proof(settings, clearing, account)
    if isinstance(found, str):
        print(found, flush=True)
        return 1
    due = found.earned - clearing.claimed(account)
    if due <= 0:
        print(f"nothing to claim: {account} earned {found.earned} micro-EUR and claimed all of it", flush=True)
        return 1
    try:
        receipt = clearing.claim(found)
    except ChainError as exc:
        print(_with_hint(exc, clearing.account, claim=True), flush=True)
        return 1
    print(f"claimed {due} micro-EUR for {account} (epoch {found.epoch_id}) in tx {receipt.tx_hash}", flush=True)
    return 0


def run_withdraw(settings: Settings, args: argparse.Namespace) -> int:
    """Ask for a withdrawal or make it; 1 with the reason when refused or not ready yet, 2 without a key."""
    if args.amount < 1:
        print("smartzone: error: --amount must be at least 1 micro-EUR", file=sys.stderr, flush=True)
        return 2
    clearing = _clearing(settings)
    if clearing is None:
        return 2
    account = clearing.account
    found = _proof(settings, clearing, account)
    if isinstance(found, str):
        print(found, flush=True)
        return 1
    try:
        requested, ready = clearing.requested(account)
        if requested < args.amount:
            clearing.request_withdrawal(args.amount)
            _, ready = clearing.requested(account)
            print(f"withdrawal of {args.amount} micro-EUR requested: run again from block {ready}", flush=True)
            return 0
        if clearing.block_number() < ready:
            print(f"not ready: the withdrawal may be made from block {ready} (now {clearing.block_number()})")
            return 1
        receipt = clearing.withdraw(found, args.amount)
    except ChainError as exc:
        print(_with_hint(exc, account, claim=False), flush=True)
        return 1
    print(f"withdrew {args.amount} micro-EUR to {account} in tx {receipt.tx_hash}", flush=True)
    return 0


def _with_hint(exc: ChainError, sender: Address, claim: bool) -> str:
    """The node's or contract's reason, with the way out when the sending account cannot pay for gas."""
    text = str(exc)
    if "insufficient funds" in text.lower():
        other = "; or send the claim from an account that has some, with --account for this one" if claim else ""
        text += f" (the sending account {sender} holds no ether for gas: fund it{other})"
    return text


def _clearing(settings: Settings) -> Web3Clearing | None:
    from settlement.chain import Web3Clearing

    if settings.account_key is None:
        print("smartzone: error: set SMARTZONE_ACCOUNT_KEY (the account's private key)", file=sys.stderr, flush=True)
        return None
    return Web3Clearing.connect(settings.chain_url, settings.account_key.get_secret_value())


def _proof(settings: Settings, clearing: Web3Clearing, account: Address) -> BalanceProof | str:
    """The account's balance proof, checked against the root on chain (the clearing contract attached); or why
    there is none."""
    from settlement.claims import InvalidBalanceProof, proof_of
    from smartzone.parts import open_database, read_model

    database = open_database(settings)
    try:
        document = read_model(database).balance_proof(account)
    finally:
        database.close()
    if document is None:
        return f"no epoch on chain holds a balance of {account}"
    try:
        proof, root = proof_of(document)
    except InvalidBalanceProof as exc:
        return str(exc)
    clearing.attach(str(document["contract"]))
    if clearing.balances_root(proof.epoch_id) != root:
        return f"the balances root of epoch {proof.epoch_id} on chain is not the database's: not sent"
    return proof
