"""Money for tests: a fake euro token and clearing contract, and riders who deposit into it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from eth_utils import keccak

from sensors.address import Address
from sensors.signing import address_of
from settlement.aggregator import MoneyRules
from settlement.clearing import FakeClearing
from settlement.deposits import fund_from_faucet
from settlement.epochs import ClosedEpoch, LeafContext, close, rider_account
from settlement.memory import MemoryEpochs, MemoryState
from settlement.ports import FakeToken
from settlement.pricing import split
from settlement.trips import TripRecord, TripSplit

DEPOSIT = 50_000_000
"""What a funded rider deposits unless a test says otherwise: 50 EUR."""
FAUCET_CAP = 10**12


def fake_money(fee_bps: int = 0, zone: Address | None = None) -> tuple[FakeClearing, MoneyRules]:
    """A fake clearing contract over a deployed fake token with a faucet, and the rules to deploy it with."""
    token = FakeToken()
    token.deploy(faucet_cap=FAUCET_CAP)
    return FakeClearing(token), MoneyRules(fee_bps=fee_bps, zone=zone, token_address=token.address)


def fund_fake(clearing: FakeClearing, riders: Iterable[Address | str], amount: int = DEPOSIT) -> None:
    """Each of ``riders`` deposits ``amount`` into the deployed fake ``clearing``."""
    for rider in riders:
        account = rider if isinstance(rider, Address) else Address.parse(rider)
        fund_from_faucet(clearing.as_account(account), clearing.token.as_account(account), amount)


def earnings(clearing: FakeClearing, state: MemoryState) -> dict[Address, int]:
    """What each account earned by the last epoch committed on the fake chain, as the stored balances say."""
    last = clearing.last_epoch() if clearing.state is not None else 0
    return {a: e for a, (e, _) in MemoryEpochs(state).balances(upto=last).items() if e and last}


def committed(clearing: FakeClearing) -> list[int]:
    """The epoch ids committed on the fake chain, in the order sent."""
    assert clearing.state is not None
    return [int(str(args["epoch_id"])) for name, args in clearing.state.events if name == "EpochCommitted"]


ZONE = Address(bytes([0x20] * 20))


def closed(
    epoch_id: int,
    trips: Sequence[TripRecord],
    context: LeafContext,
    registry_root: bytes = bytes(32),
    *,
    fee_bps: int = 0,
    book: Mapping[Address, tuple[int, int]] | None = None,
) -> ClosedEpoch:
    """Epoch ``epoch_id`` of priced ``trips`` as the aggregator closes it (a rider not named by an address pays
    from an account derived from its name), on top of ``book`` (default: nothing before)."""
    accepted = []
    for t in trips:
        assert t.fare is not None
        rider = rider_account(t.rider) or address_of(keccak(text=f"test rider {t.rider}"))
        owner_share, fee = split(t.fare.total_micro, fee_bps)
        accepted.append((t, TripSplit(t.trip_id, rider, owner_share, fee)))
    return close(epoch_id, accepted, book or {}, ZONE, registry_root, context=context)
