"""The ``smartzone verify`` command: a trip receipt checked against the settlement contract on chain, alone."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from settlement.chain import Sender, Web3Clearing
from settlement.errors import ChainError
from settlement.receipts import verify_receipt
from smartzone.settings import Settings


def add_verify_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``verify`` on the CLI's subcommands."""
    verify = sub.add_parser(
        "verify",
        help="check a trip receipt against the settlement contract on chain",
        description="Check a trip receipt (GET /api/v1/trips/{trip_id}/receipt) against the chain alone: read "
        "trips_root(epoch_id) from the contract the receipt names, recompute the leaf, fold in the proof and "
        "compare. Nothing in a Smart Zone database is trusted. Prints `verified` (exit 0) or the reason "
        "(exit 1); a chain that cannot be reached exits 2.",
    )
    verify.add_argument("receipt", type=Path, metavar="RECEIPT.json", help="the receipt, as the API returned it")
    verify.add_argument("--chain-url", help="JSON-RPC URL of the chain (default SMARTZONE_CHAIN_URL)")
    verify.set_defaults(command=run_verify)


def run_verify(settings: Settings, args: argparse.Namespace) -> int:
    """Print ``verified`` or why the receipt does not verify; 0, 1, or 2 when there is no chain to ask."""
    url = args.chain_url or settings.chain_url
    if not url:
        print("smartzone: error: no chain to read: pass --chain-url or set SMARTZONE_CHAIN_URL", flush=True)
        return 2
    try:
        receipt = json.loads(Path(args.receipt).read_text(encoding="utf-8"))
    except OSError as exc:
        print(f"smartzone: error: cannot read {args.receipt}: {exc.strerror or exc}", flush=True)
        return 2
    except (ValueError, UnicodeDecodeError) as exc:
        print(f"not a receipt: {args.receipt} is not JSON ({exc})", flush=True)
        return 1
    reason = check_receipt(receipt, Web3Clearing(Sender.connect(url, timeout=30, read_only=True)))
    print(reason or "verified", flush=True)
    return 0 if reason is None else 1


def check_receipt(receipt: Any, chain: Web3Clearing) -> str | None:
    """None if ``receipt`` verifies against ``trips_root(epoch_id)`` of the contract it names on ``chain``, else
    the reason. ``ChainUnavailable`` if the node stops answering."""
    if not isinstance(receipt, Mapping):
        return "not a receipt: a receipt is a JSON object"
    chain_id, contract, epoch_id = (receipt.get(k) for k in ("chain_id", "contract", "epoch_id"))
    if not isinstance(epoch_id, int) or isinstance(epoch_id, bool) or not 0 <= epoch_id < 2**256:
        return f"the receipt's epoch_id {epoch_id!r} is not an epoch number"
    if chain_id != chain.chain_id():
        return f"the receipt is for chain {chain_id!r}, but {chain.url} is chain {chain.chain_id()}"
    if not isinstance(contract, str):
        return f"the receipt's contract {contract!r} is not an address"
    reader = Web3Clearing(chain.sender)  # its own contract binding: the caller's chain stays as it was
    try:
        reader.attach(contract)
        root = reader.trips_root(epoch_id)
    except ChainError as exc:
        return f"no clearing contract to ask: {exc}"
    return verify_receipt(receipt, root)
