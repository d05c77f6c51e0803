"""Gas of the clearing contract on anvil: O(1) commits beside one ERC-20 transfer per trip, claims, deposits.

An epoch commit carries roots and totals only, so its gas must not move with the trips or accounts of the epoch:
commits are measured at 100, 1,000 and 10,000 trips per epoch with balance trees of 4, 256 and 10,000 accounts
(real StandardMerkleTrees), and the gas per trip set beside the baseline, one szEUR ``transfer`` per trip (between
two accounts that already hold szEUR) on the same chain. Then a claim with a proof from a 16,384-leaf balance
tree (the first claim of an account that held no szEUR, and a later one), a deposit (first and later) and a
withdrawal (request and withdraw). Gas is deterministic: one round, read from the receipts.

    python -m bench.gas [--quick] [--url http://127.0.0.1:8545]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.memory import chain
from sensors.address import Address
from settlement.chain.clearing import Web3Clearing
from settlement.chain.token import Web3Token
from settlement.clearing import BALANCE_LEAF_TYPES, BalanceProof, ClearingCommit, balance_values
from settlement.merkle import StandardMerkleTree

ANVIL = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "anvil"
# anvil's well-known development keys #0 and #1 (mnemonic "test test ... junk"): a local bench chain only.
KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
)
EUR = 1_000_000
REGISTRY = bytes([0xCD] * 32)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def node(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    if not ANVIL.exists():
        raise SystemExit(f"bench.gas needs anvil at {ANVIL} (npm install) or --url")
    with chain(ANVIL) as started:
        assert started is not None
        yield started


def account(n: int) -> Address:
    return Address((n + 1).to_bytes(20, "big"))


def balance_tree(clearing: Web3Clearing, accounts: int, rider: Address, spent: int) -> StandardMerkleTree:
    """``accounts`` balances: ``rider`` spent ``spent``, shared as earnings by the other accounts."""
    chain_id, contract = clearing.chain_id(), str(clearing.address)
    payees = accounts - 1
    rows = [balance_values(chain_id, contract, rider, 0, spent)]
    rows += [
        balance_values(chain_id, contract, account(i), spent // payees + (1 if i < spent % payees else 0), 0)
        for i in range(payees)
    ]
    return StandardMerkleTree.of(rows, BALANCE_LEAF_TYPES)


def trips_root(trips: int, epoch_id: int) -> bytes:
    return StandardMerkleTree.of([(epoch_id, i) for i in range(trips)], ("uint256", "uint256")).root


def proof_for(tree: StandardMerkleTree, epoch_id: int, index: int) -> BalanceProof:
    row = tree.values[index]
    who = Address.parse(str(row[2]))
    return BalanceProof(epoch_id, who, int(row[3]), int(row[4]), tuple(tree.proof(index)))


def measure(url: str, quick: bool) -> list[tuple[str, int, str]]:
    """(what, gas, note) rows."""
    token = Web3Token.connect(url, private_key=KEYS[0], timeout=30)
    token.deploy(faucet_cap=10**15)
    aggregator = Web3Clearing(token.sender)
    aggregator.deploy(str(token.address), 0, 0)
    rider, rider_token = aggregator.with_key(KEYS[1]), token.with_key(KEYS[1])
    rider_token.faucet(10**12)
    rider.approve(10**12)
    rows: list[tuple[str, int, str]] = []
    rows.append(("deposit (first, the contract's first szEUR)", rider.deposit(10**11).gas_used, ""))
    rows.append(("deposit (later)", rider.deposit(10**11).gas_used, ""))

    holder = account(10**6)
    rider_token.transfer(holder, 1)  # the baseline pays accounts that already hold szEUR
    transfer = rider_token.transfer(holder, 12_345).gas_used
    rows.append(("baseline: one szEUR transfer (to a holder)", transfer, "per trip"))

    trips_sizes = (100, 1_000) if quick else (100, 1_000, 10_000)
    account_sizes = (4, 256) if quick else (4, 256, 10_000)
    epoch_id, spent = 0, 0
    for accounts in account_sizes:
        for trips in trips_sizes:
            epoch_id += 1
            spent += trips * 1_500  # 1.5 EUR ... per trip: the totals grow every epoch
            say(f"  commit: {trips:,} trips, {accounts:,} accounts")
            tree = balance_tree(aggregator, accounts, rider.account, spent)
            commit = ClearingCommit(epoch_id, trips_root(trips, epoch_id), tree.root, REGISTRY, trips, spent, spent)
            gas = aggregator.commit(commit).gas_used
            note = f"{gas / trips:,.1f} gas/trip; transfer per trip / this: {transfer / (gas / trips):,.0f}x"
            rows.append((f"commit: {trips:,} trips, {accounts:,} accounts", gas, note))

    leaves = 1_024 if quick else 16_384
    say(f"  claim: a {leaves:,}-leaf balance tree")
    epoch_id += 1
    tree = balance_tree(aggregator, leaves, rider.account, spent)
    aggregator.commit(ClearingCommit(epoch_id, trips_root(10, epoch_id), tree.root, REGISTRY, 10, spent, spent))
    first = proof_for(tree, epoch_id, 1)
    depth = len(first.proof)
    rows.append((f"claim: first, {leaves:,}-leaf tree", aggregator.claim(first).gas_used, f"{depth}-node proof"))
    epoch_id += 1
    spent += 10 * leaves
    tree = balance_tree(aggregator, leaves, rider.account, spent)
    aggregator.commit(ClearingCommit(epoch_id, trips_root(10, epoch_id), tree.root, REGISTRY, 10, spent, spent))
    later = proof_for(tree, epoch_id, 1)
    rows.append((f"claim: later, {leaves:,}-leaf tree", aggregator.claim(later).gas_used, f"{depth}-node proof"))

    rows.append(("request_withdrawal", rider.request_withdrawal(EUR).gas_used, ""))
    mine = proof_for(tree, epoch_id, 0)
    rows.append((f"withdraw: {leaves:,}-leaf tree", rider.withdraw(mine, EUR).gas_used, f"{depth}-node proof"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke: fewer sizes, a 1,024-leaf claim tree")
    parser.add_argument("--url", help="an anvil (or other dev node) to use instead of starting one")
    args = parser.parse_args(argv)
    with node(args.url) as url:
        rows = measure(url, args.quick)
    width = max(len(what) for what, _, _ in rows)
    print(f"{'what':<{width}}  {'gas':>9}  note")
    for what, gas, note in rows:
        print(f"{what:<{width}}  {gas:>9,}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
