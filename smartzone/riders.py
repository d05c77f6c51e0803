"""The simulated riders' deposits (demo mode): ``smartzone riders fund`` and what ``up`` does before the simulator.

Each rider's key comes from the seed (``simulator.keys.rider_key``); the aggregator's account sends the rider a
little ether for gas, then the rider takes euro tokens from the token's faucet, approves the clearing contract and
deposits. A rider whose unspent deposit is that much already is left as it is, so funding twice changes nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sensors.errors import SmartZoneError
from sensors.signing import address_of
from settlement.deposits import fund_from_faucet
from simulator.keys import rider_key
from smartzone.settings import Settings

if TYPE_CHECKING:
    from settlement.chain import Web3Clearing

log = logging.getLogger("smartzone")

RIDER_GAS_WEI = 10**16
"""Ether a demo rider gets for its faucet, approve and deposit transactions (0.01 ETH; about 250k gas)."""


def fund_riders(clearing: Web3Clearing, seed: int, riders: int, amount: int) -> int:
    """Riders 0 .. ``riders`` - 1 of ``seed`` each deposit ``amount`` micro-EUR from the faucet into the attached
    clearing contract, ``clearing``'s account paying their gas; how many deposited (the others had enough)."""
    return fund_accounts(clearing, [rider_key(seed, index) for index in range(riders)], amount)


def fund_accounts(clearing: Web3Clearing, keys: Sequence[bytes], amount: int) -> int:
    """The accounts of ``keys`` each deposit ``amount`` micro-EUR from the faucet (see ``fund_riders``)."""
    from settlement.chain import Web3Token

    token_address = clearing.token_address()
    funded = 0
    for key in keys:
        account = address_of(key)
        if clearing.deposited(account) - clearing.withdrawn(account) >= amount:
            continue
        clearing.sender.top_up(account.checksum, RIDER_GAS_WEI)
        as_rider = clearing.with_key("0x" + key.hex())
        token = Web3Token(as_rider.sender)
        token.attach(token_address)
        funded += fund_from_faucet(as_rider, token, amount) > 0
    return funded


def add_riders_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``riders fund`` on the CLI's subcommands."""
    riders = sub.add_parser("riders", help="the simulated riders' deposits (demo mode)")
    actions = riders.add_subparsers(required=True, metavar="ACTION")
    fund = actions.add_parser(
        "fund",
        help="deposit euro tokens from the demo faucet for the seed's riders",
        description="Each of the first RIDERS riders of SEED (their keys derive from it) takes AMOUNT micro-EUR "
        "from the euro token's faucet and deposits it into the clearing contract (SMARTZONE_CONTRACT_ADDRESS, else "
        "the one SMARTZONE_DATABASE_URL records); the aggregator's account (SMARTZONE_CHAIN_PRIVATE_KEY, else the "
        "node's) pays their gas. Demo mode only (SMARTZONE_DEMO=1): the faucet mints for anyone.",
    )
    fund.add_argument("--seed", type=int, help="seed of the simulated fleet (default SMARTZONE_SEED, 7)")
    fund.add_argument("--riders", type=int, help="how many riders (default SMARTZONE_RIDERS, 50)")
    fund.add_argument("--amount", type=int, help="micro-EUR per rider (default SMARTZONE_RIDER_DEPOSIT_MICRO)")
    fund.set_defaults(command=run_fund)


def run_fund(settings: Settings, args: argparse.Namespace) -> int:
    """Fund the riders and print how many deposited; 2 outside demo mode or without a contract."""
    from settlement.chain import Web3Clearing
    from smartzone.parts import open_database

    if not settings.demo:
        print("smartzone: error: riders fund uses the faucet: demo mode only (SMARTZONE_DEMO=1)", file=sys.stderr)
        return 2
    seed = settings.seed if args.seed is None else args.seed
    count = settings.riders if args.riders is None else args.riders
    amount = settings.rider_deposit_micro if args.amount is None else args.amount
    if count < 1 or amount < 1:
        print("smartzone: error: --riders and --amount must be at least 1", file=sys.stderr, flush=True)
        return 2
    clearing = Web3Clearing.connect(settings.chain_url, settings.private_key())
    address = settings.contract_address
    if address is None:
        database = open_database(settings)
        try:
            from smartzone.parts import unit_of_work

            with unit_of_work(database)() as uow:
                address = uow.registry.deployment(clearing.chain_id())
        finally:
            database.close()
    if address is None:
        raise SmartZoneError("no clearing contract: set SMARTZONE_CONTRACT_ADDRESS or start an aggregator first")
    clearing.attach(address)
    funded = fund_riders(clearing, seed, count, amount)
    print(f"{funded} of {count} riders of seed {seed} deposited {amount} micro-EUR each", flush=True)
    return 0
