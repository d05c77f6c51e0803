"""Settlement speed: the pure core's trips/s against keccak alone, and an epoch's close → receipt on anvil.

Two targets of issue 9: pricing + tree building ≥ 20,000 trips/s, and an epoch of 1,000 trips from close to
receipt on anvil in < 2 s. Each figure is measured beside a baseline in the same run, medians over the rounds:

1. core: N synthetic completed trips are priced (``settlement.pricing.price`` of a per-minute plan, and
   ``split`` by ``clear``), then closed as the aggregator closes an epoch (``settlement.epochs.close``: the trips
   tree, the balance book ``post`` and the ``BalanceTree``), in trips/s; baseline: ``leaf_hash`` of as many
   trip leaves, keccak alone, so the ratio is the share of the speed the rest of the core leaves.
2. close → receipt: an ``Aggregator`` on a SQLite database and a clearing contract on a fresh anvil, its riders
   funded, with N priced trips waiting (written through the trips repository); timed: ``close_epoch()`` then
   ``settle_due(force=True)`` until the commit's receipt is recorded, in seconds; baseline: one bare
   ``commit`` of a precomputed ``ClearingCommit`` to a second clearing contract on the same anvil, so the ratio
   is our overhead over the chain's own round trip.

A first, uncounted round warms both sides up (eth_abi's encoders, web3's contract objects). The riders are few
by default (20): ``close_epoch`` reads each distinct rider's deposit from the chain, so ``--riders`` shows how
that part grows. No thresholds: the figures are printed, never judged (``--quick`` is a CI smoke on whatever machine).

    python -m bench.settle [--quick] [--rounds R] [--riders K] [--url http://127.0.0.1:8545]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.gas import KEYS, node
from sensors.address import Address
from sensors.consent import RideConsent, Voucher, sign
from sensors.messages import VehicleKind
from sensors.signing import Domain, address_of
from settlement.clearing import ClearingCommit
from settlement.consent import TripConsent, chargeable
from settlement.epochs import LEAF_TYPES, LeafContext, PricedTrip, clear, close, riders_of
from settlement.lifecycle import TripStatus
from settlement.merkle import leaf_hash
from settlement.pricing import PricingPlan, flat_plan, price
from settlement.trips import Mark, TripRecord

EUR = 1_000_000
FEE_BPS = 500
T0 = 1_790_000_000_000
PLAN = flat_plan("bench-bike", EUR, 150_000, 50_000)  # 1 EUR unlock, 0.15 EUR a started minute, 0.05 a km
REGISTRY = bytes([0xCD] * 32)
PAYEES = 64


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- synthetic trips ---------------------------------------------------------------------------------------
def rider_key(i: int) -> bytes:
    """A deterministic private key for bench rider ``i`` (a local bench chain only)."""
    return (0xB0B0 + i).to_bytes(32, "big")


def payee(i: int) -> Address:
    return Address((0xA000 + i).to_bytes(20, "big"))


def completed(n: int, riders: Sequence[str], first: int = 0, chain_id: int = 31337) -> list[TripRecord]:
    """``n`` completed (not yet priced) trips, ``first`` onwards, of ``riders`` in turn on ``PAYEES`` vehicles, each
    with its rider's signed consent and last voucher (signed here, before any timing: a wallet's work)."""
    keys = {address_of(rider_key(i)).checksum: rider_key(i) for i in range(max(len(riders), 100))}
    domain = Domain(chain_id)
    trips = []
    for i in range(first, first + n):
        vehicle = i % PAYEES
        start_ms = T0 + i * 1_000
        duration_s = 120 + (i * 37) % 1_500
        metres = 300 + (i * 53) % 4_000
        trips.append(
            TripRecord(
                trip_id=f"bench:v{vehicle}:{2 * i + 1}",
                vehicle_id=f"v{vehicle}",
                operator="bench",
                kind=VehicleKind.BIKE,
                status=TripStatus.COMPLETE,
                start=Mark(2 * i + 1, start_ms, 52.37, 4.89, 1_000),
                end=Mark(2 * i + 2, start_ms + duration_s * 1_000, 52.38, 4.90, 1_000 + metres),
                rider=riders[i % len(riders)],
                payee=payee(vehicle),
                distance_m=metres,
                duration_s=duration_s,
            )
        )
        rider = riders[i % len(riders)]
        key = keys[rider]
        trip_id = trips[-1].trip_id
        consent = sign(RideConsent(address_of(key), f"v{vehicle}", PLAN.plan_id, 20 * EUR, start_ms + 43_200_000, i),
                       key, domain)  # fmt: skip
        voucher = sign(Voucher(address_of(key), trip_id, 20 * EUR, 1 + duration_s // 60), key, domain)
        trips[-1] = replace(trips[-1], consent=consent, voucher=voucher)
    return trips


def priced_trips(trips: Sequence[TripRecord], plan: PricingPlan = PLAN) -> list[TripRecord]:
    """The trips priced under ``plan`` (the aggregator's pricing step)."""
    out = []
    for t in trips:
        assert t.distance_m is not None and t.duration_s is not None
        fare = price(plan, t.distance_m, t.duration_s)
        charge = chargeable(TripConsent(t.trip_id, t.consent, b"", t.voucher), fare.total_micro) if t.consent else None
        charged = None if charge is None else charge.fare_micro
        limited_by = None if charge is None else charge.limited_by
        out.append(replace(t, status=TripStatus.PRICED, fare=fare, charged_micro=charged, limited_by=limited_by))
    return out


# --- 1: the pure core ----------------------------------------------------------------------------------------
def core_once(trips: Sequence[TripRecord], context: LeafContext, zone: Address) -> float:
    """Seconds to price ``trips``, clear them (split) and close their epoch (trips tree, book, balance tree)."""
    riders = riders_of(trips)
    unspent = dict.fromkeys(riders, 10**15)
    started = time.perf_counter()
    candidates = priced_trips(trips)
    clearance = clear(candidates, {}, unspent, FEE_BPS)
    closed = close(1, clearance.accepted, {}, zone, REGISTRY, context=context)
    elapsed = time.perf_counter() - started
    assert closed.commit.trip_count == len(trips)
    return elapsed


def keccak_once(trips: Sequence[TripRecord], context: LeafContext) -> float:
    """Seconds to hash as many trip leaves with ``leaf_hash`` alone (rows built beforehand)."""
    rows = []
    for t in priced_trips(trips):
        assert t.start and t.end and t.payee and t.fare
        trip = PricedTrip(
            t.trip_id, t.payee, t.rider or "", t.start.timestamp_ms, t.end.timestamp_ms, t.distance_m or 0,
            t.charged, bytes([0xC0] * 32), bytes([0xF0] * 32),
        )  # fmt: skip
        rows.append(trip.leaf(context, 1))
    started = time.perf_counter()
    for row in rows:
        leaf_hash(LEAF_TYPES, row)
    return time.perf_counter() - started


def core(sizes: Sequence[int], rounds: int) -> list[tuple[str, list[float], list[float], str]]:
    """(what, ours, baseline, unit) per size: trips/s of the core and of keccak alone."""
    context = LeafContext(31337, Address(bytes([0xCC] * 20)))
    zone = Address(bytes([0x20] * 20))
    riders = [address_of(rider_key(i)).checksum for i in range(100)]
    rows = []
    warm = completed(10, riders)
    core_once(warm, context, zone)  # first calls (eth_abi's encoders, caches) are not counted
    keccak_once(warm, context)
    for n in sizes:
        say(f"  core: {n:,} trips, {rounds} rounds")
        trips = completed(n, riders)
        ours, base = [], []
        for _ in range(rounds):
            ours.append(n / core_once(trips, context, zone))
            base.append(n / keccak_once(trips, context))
        what = f"core: price + cap + split + trips tree (consent digests) + book + balance tree, {n:,} trips"
        rows.append((what, ours, base, "trips/s"))
    return rows


# --- 2: close -> receipt on anvil -----------------------------------------------------------------------------
def on_chain(url: str, n: int, riders: int, rounds: int) -> list[tuple[str, list[float], list[float], str]]:
    """(what, ours, baseline, unit): seconds from close to recorded receipt, and of one bare commit."""
    from settlement.aggregator import Aggregator, MoneyRules
    from settlement.chain import Web3Clearing, Web3Token
    from settlement.db import Database
    from settlement.sql import SqlUnitOfWork
    from smartzone.riders import fund_accounts

    with tempfile.TemporaryDirectory(prefix="bench-settle-") as scratch:
        database = Database.open(f"sqlite:///{Path(scratch) / 'settle.db'}")
        database.upgrade()
        clearing = Web3Clearing.connect(url, KEYS[0], timeout=30)
        agg = Aggregator(
            lambda: SqlUnitOfWork(database),
            clearing,
            token=Web3Token(clearing.sender),
            money=MoneyRules(fee_bps=FEE_BPS, faucet_cap=10**13),
            epoch_seconds=0.0,
            epoch_max_trips=n,
        )
        agg.attach_contract()
        keys = [rider_key(i) for i in range(riders)]
        say(f"  chain: funding {riders} riders")
        fund_accounts(clearing, keys, 10**12)
        accounts = [address_of(k).checksum for k in keys]

        token_address = clearing.token_address()
        bare = Web3Clearing(clearing.sender)  # the same sender: one nonce sequence for both contracts
        bare.deploy(token_address, 0, 0)
        depositor = bare.with_key(KEYS[1])
        depositor_token = Web3Token(depositor.sender)
        depositor_token.attach(token_address)
        depositor_token.faucet(10**13)
        depositor.approve(10**13)
        depositor.deposit(10**13)

        ours, closing, base = [], [], []
        for r in range(-1, rounds):  # round -1 warms both paths up (first calls, caches) and is not counted
            size = 10 if r < 0 else n
            with agg.uow() as uow:
                uow.trips.save(priced_trips(completed(size, accounts, first=(r + 1) * n)))
                uow.commit()
            started = time.perf_counter()
            epoch_id = agg.close_epoch()
            closed = time.perf_counter() - started
            settled = agg.settle_due(force=True)
            elapsed = time.perf_counter() - started
            assert epoch_id is not None and settled == [epoch_id], (epoch_id, settled)
            with agg.uow() as uow:
                assert uow.epochs.last_committed() == epoch_id

            e = r + 2
            commit = ClearingCommit(e, bytes([e] * 32), bytes([0xBA] * 32), REGISTRY, size, e * n * EUR, e * n * EUR)
            started = time.perf_counter()
            bare.commit(commit)
            if r >= 0:
                base.append(time.perf_counter() - started)
                ours.append(elapsed)
                closing.append(closed)
        database.engine.dispose()
    what = f"close → receipt: {n:,} trips, {riders} riders, SQLite + anvil"
    return [(what, ours, base, "s"), ("  of which close_epoch() (database + core, no commit)", closing, base, "s")]


# --- the table ------------------------------------------------------------------------------------------------
def table(rows: Sequence[tuple[str, list[float], list[float], str]]) -> str:
    width = max(len(what) for what, _, _, _ in rows)
    lines = [f"{'what':<{width}}  {'unit':<7}  {'ours (median)':>14}  {'baseline':>12}  {'ratio':>7}  rounds"]
    for what, ours, base, unit in rows:
        mine, theirs = statistics.median(ours), statistics.median(base)
        figure = (lambda v: f"{v:,.0f}") if unit == "trips/s" else (lambda v: f"{v:.3f}")
        ratio = mine / theirs if theirs else float("inf")
        lines.append(
            f"{what:<{width}}  {unit:<7}  {figure(mine):>14}  {figure(theirs):>12}  {ratio:>6.2f}x  {len(ours)}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke: 100 trips, one round")
    parser.add_argument("--rounds", type=int, help="rounds per figure (default 5; 1 with --quick)")
    parser.add_argument("--url", help="an anvil (or other dev node) to use instead of starting one")
    parser.add_argument(
        "--riders",
        type=int,
        help="distinct riders of the on-chain epoch (default 20; 4 with --quick): each costs "
        "the close its deposit reads from the chain",
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)
    sizes = (100,) if args.quick else (1_000, 10_000)
    rows = core(sizes, rounds)
    with node(args.url) as url:
        riders = args.riders or (4 if args.quick else 20)
        rows += on_chain(url, 100 if args.quick else 1_000, riders, rounds)
    print(table(rows))
    print(
        "baselines: core = leaf_hash (keccak) of as many trip leaves alone; close → receipt = one bare clearing "
        "commit on the same anvil. Targets (issue 9): core ≥ 20,000 trips/s; 1,000 trips close → receipt < 2 s."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
