"""The JSON shapes of the ``/api/v1`` API, built from settlement's frozen views.

Money is always an integer number of micro-euro (1 EUR = 1,000,000) in fields named ``*_micro``;
times are integer milliseconds since the Unix epoch in fields named ``*_ms``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MICRO = "Integer micro-euro (1 EUR = 1,000,000 micro-euro)."


class _View(BaseModel):
    """A response model read straight from a frozen view's attributes."""

    model_config = ConfigDict(from_attributes=True, frozen=True)


class Vehicle(_View):
    """A vehicle as last seen."""

    vehicle_id: str
    operator: str
    kind: str = Field(description="Vehicle type, e.g. bicycle, e-bike, e-scooter, car.")
    owner: str | None = Field(description="Address of the owner paid for its trips, if any.")
    state: str = Field(description="MDS 2.0 vehicle state: available, on_trip, non_operational or unknown.")
    online: bool
    battery_pct: float | None = Field(description="Battery level in percent; null without a battery.")
    lat: float | None = Field(description="WGS 84 latitude of the last position.")
    lon: float | None = Field(description="WGS 84 longitude of the last position.")
    last_seen_ms: int | None = Field(description="The device's own time of its last reading, ms since the epoch.")
    received_ms: int | None = Field(
        None, description="When the platform received that reading (wall clock), ms since the epoch: 'last seen'."
    )
    fault_code: str | None = Field(None, description="The code of the vehicle's current fault, if any.")
    state_ms: int | None = Field(None, description="When the vehicle entered its state, ms since the epoch.")


class Trip(_View):
    """A trip with its fare and where it stands in its life cycle."""

    trip_id: str = Field(description="Unique trip id, '<vehicle_id>:<seq of its unlock>'.")
    vehicle_id: str
    kind: str
    owner: str | None = Field(description="EIP-55 address paid for the trip (the vehicle's payee in the registry).")
    rider: str | None = Field(description="The rider's wallet address.")
    start_ms: int | None
    end_ms: int | None
    duration_s: int | None
    distance_m: int | None
    fare_micro: int | None = Field(description=f"The metered fare. {MICRO}")
    status: str = Field(
        description="Life cycle: open, complete, priced, batched, committed, final, rejected or adjusted."
    )
    epoch_id: int | None = Field(description="The epoch that batches the trip, once batched.")
    reason: str | None = Field(None, description="Why a rejected trip was rejected (a reason code).")
    charged_micro: int | None = Field(
        None, description=f"What the rider pays: min(metered fare, last voucher, consent's cap). {MICRO}"
    )
    signed_micro: int | None = Field(
        None, description=f"What the rider's last voucher signed for: the running cost of a trip in progress. {MICRO}"
    )


class Epoch(_View):
    """A batch of trips and its settlement transaction."""

    epoch_id: int
    trip_count: int
    total_micro: int = Field(description=f"Sum of the epoch's fares. {MICRO}")
    trips_root: str = Field(description="Merkle root of the epoch's trips, 0x-prefixed hex.")
    status: str = Field(description="closed, committed (its transaction is mined) or final.")
    tx_hash: str | None = Field(description="The settlement transaction, once sent.")
    block_number: int | None
    gas_used: int | None
    closed_ms: int
    settled_ms: int | None
    registry_root: str | None = Field(
        None, description="Merkle root of the device registry the epoch was settled under, 0x-prefixed hex."
    )


class RegistryProof(_View):
    """A vehicle's entry in the device registry, with its Merkle proof against the registry root."""

    vehicle_id: str
    operator: str
    kind: str
    device: str = Field(description="EIP-55 address of the vehicle's device key, which signs its events.")
    payee: str = Field(description="EIP-55 address paid for the vehicle's trips.")
    valid_from_ms: int
    valid_until_ms: int = Field(description="0: open-ended.")
    revoked_ms: int | None
    leaf: list[str | int | bool] = Field(
        description="The StandardMerkleTree leaf: vehicleId, operator, kind, device, payee, validFrom, validUntil, "
        "revoked (types string, string, string, address, address, uint64, uint64, bool)."
    )
    proof: list[str] = Field(description="Sibling hashes from the leaf to the root, 0x-prefixed hex.")
    root: str = Field(description="The registry root now; compare with an epoch's registry_root on chain.")


class ReceiptTrip(BaseModel):
    """The trip a receipt proves."""

    trip_id: str = Field(description="Unique trip id, '<vehicle_id>:<seq of its unlock>'.")
    vehicle_id: str
    owner: str = Field(description="EIP-55 address paid for the trip.")
    rider: str = Field(description="The rider's wallet address ('' if none).")
    start_ms: int
    end_ms: int
    duration_s: int = Field(description="Started seconds from start to end.")
    distance_m: int


class ReceiptFare(BaseModel):
    """A fare's breakdown: the metered components add up to the metered total; the rider is charged
    `charged_micro` = min(metered total, last voucher, consent's cap), which the leaf commits to."""

    unlock_micro: int = Field(description=f"The unlock price. {MICRO}")
    time_micro: int = Field(description=f"The charge for the time. {MICRO}")
    distance_micro: int = Field(description=f"The charge for the distance. {MICRO}")
    total_micro: int = Field(description=f"The metered fare. {MICRO}")
    charged_micro: int = Field(description=f"What the rider paid. {MICRO}")
    limited_by: str = Field(description="Which bound set the charge: metered, voucher or cap.")


class ReceiptConsent(BaseModel):
    """The rider's EIP-712 RideConsent, as the unlock carried it (docs/wire-format.md, "Consent and vouchers")."""

    rider: str = Field(description="EIP-55 address of the rider who signed.")
    vehicle_id: str
    tariff_id: str = Field(description="The GBFS pricing plan id the rider agreed to.")
    cap_micro: int = Field(description=f"The most the trip may cost. {MICRO}")
    expiry_ms: int = Field(description="When the consent stops allowing payments (ms since the Unix epoch).")
    nonce: int = Field(description="Single use per rider.")
    sig: str = Field(description="The rider's EIP-712 signature, 0x + 130 hex.")


class ReceiptVoucher(BaseModel):
    """The rider's last EIP-712 Voucher for the trip: the cumulative amount the rider agreed to pay."""

    rider: str = Field(description="EIP-55 address of the rider who signed.")
    trip_id: str
    cumulative_micro: int = Field(description=f"What the rider signed for, in all. {MICRO}")
    seq: int = Field(description="The voucher's order within the trip.")
    sig: str = Field(description="The rider's EIP-712 signature, 0x + 130 hex.")


class TripReceipt(BaseModel):
    """A trip's receipt: anyone can check it against the settlement contract, trusting nothing of ours.

    `root`, `leaf_types`, `leaf_values` and `proof` are exactly the arguments of OpenZeppelin's
    `StandardMerkleTree.verify(root, leaf_types, leaf_values, proof)`; compare `root` with the contract's
    `trips_root(epoch_id)` on chain `chain_id` (or run `smartzone verify RECEIPT.json`).
    """

    trip: ReceiptTrip
    fare: ReceiptFare
    consent: ReceiptConsent | None = Field(description="The rider's signed consent (None: settled without one).")
    voucher: ReceiptVoucher | None = Field(description="The rider's last signed voucher (None: none was given).")
    signing_chain_id: int = Field(description="Chain id of the EIP-712 domain (SmartZone, 1) the rider signed in.")
    epoch_id: int = Field(description="The epoch whose trips root holds the trip.")
    chain_id: int = Field(description="The chain the epoch was settled on.")
    contract: str = Field(description="EIP-55 address of the settlement contract.")
    tx_hash: str | None = Field(description="The transaction that settled the epoch, if recorded.")
    status: str = Field(description="The epoch's state: committed or final.")
    root: str = Field(description="The epoch's trips root, 0x-prefixed hex.")
    leaf_types: list[str] = Field(
        description="The leaf's ABI types: chainId, contract, epochId, tripId, owner, rider, startMs, endMs, "
        "distanceM, fareMicro (charged), consentDigest, voucherDigest (EIP-712 digests; zero where none)."
    )
    leaf_values: list[str] = Field(description="The leaf's values; integers as decimal strings, as OZ dumps them.")
    proof: list[str] = Field(description="Sibling hashes from the leaf to the root, 0x-prefixed hex.")


class BalanceProof(BaseModel):
    """An account's cumulative balance in the last epoch on chain, with the proof the clearing contract's `claim`
    and `withdraw` take.

    `root`, `leaf_types`, `leaf_values` and `proof` are exactly the arguments of OpenZeppelin's
    `StandardMerkleTree.verify`; compare `root` with the contract's `balances_root(epoch_id)` on chain `chain_id`.
    """

    account: str = Field(description="EIP-55 address of the account.")
    earned_micro: int = Field(description=f"Earned since the start, as an owner or the zone. {MICRO}")
    spent_micro: int = Field(description=f"Spent since the start, as a rider. {MICRO}")
    epoch_id: int = Field(description="The epoch whose balances root holds the balance.")
    chain_id: int = Field(description="The chain the epoch was committed on.")
    contract: str = Field(description="EIP-55 address of the clearing contract.")
    root: str = Field(description="The epoch's balances root, 0x-prefixed hex.")
    leaf_types: list[str] = Field(description="The leaf's ABI types: chainId, contract, account, earned, spent.")
    leaf_values: list[str] = Field(description="The leaf's values; integers as decimal strings, as OZ dumps them.")
    proof: list[str] = Field(description="Sibling hashes from the leaf to the root, 0x-prefixed hex.")


class Payout(_View):
    """What one vehicle owner has earned."""

    owner: str
    trip_count: int
    settled_micro: int = Field(description=f"Earned in settled epochs. {MICRO}")
    pending_micro: int = Field(description=f"Earned in trips not yet settled. {MICRO}")
    claimed_micro: int = Field(0, description=f"Already claimed from the clearing contract. {MICRO}")
    claimable_micro: int = Field(0, description=f"Settled and not yet claimed: what a claim pays now. {MICRO}")


class Stats(_View):
    """Counts for the overview."""

    vehicles: int
    online: int
    telemetry: int = Field(description="Telemetry readings accepted.")
    events: int = Field(description="Vehicle events accepted.")
    rejected: int = Field(description="Messages rejected as invalid.")
    trips: int
    epochs: int
    settled_micro: int = Field(description=f"Total settled on chain. {MICRO}")


NEXT = "Pass as `cursor` to get the next page; null on the last page."


class VehicleList(BaseModel):
    """A page of the fleet, by vehicle id."""

    items: list[Vehicle]
    next_cursor: str | None = Field(None, description=NEXT)


class TripList(BaseModel):
    """Trips, newest first."""

    items: list[Trip]
    next_cursor: str | None = Field(None, description=NEXT)


class EpochList(BaseModel):
    """Epochs, newest first."""

    items: list[Epoch]
    next_cursor: str | None = Field(None, description=NEXT)


class PayoutList(BaseModel):
    """Earnings per vehicle owner, by owner address."""

    items: list[Payout]
    next_cursor: str | None = Field(None, description=NEXT)


class Me(BaseModel):
    """Who is signed in."""

    role: str = Field(description="operator, researcher or account (a wallet).")
    subject: str = Field(description="The staff member's name, or the wallet's EIP-55 address.")
    staff: bool = Field(description="Operators and researchers see the whole fleet.")
    home: str = Field(description="The page this role starts on.")


class SiweChallenge(BaseModel):
    """What a Sign-In with Ethereum (EIP-4361) message must hold to sign in here; the nonce is single-use."""

    nonce: str
    domain: str = Field(description="The message's domain: our host[:port].")
    uri: str = Field(description="The message's URI, on our origin.")
    chain_id: int
    statement: str
    issued_at: str = Field(description="RFC 3339, UTC.")
    expiration_time: str = Field(description="RFC 3339, UTC: the nonce is refused after it.")
    address: str | None = Field(None, description="The address asked about, in the EIP-55 form the message needs.")


class SiweLogin(BaseModel):
    """A signed EIP-4361 message."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(max_length=4096, description="The EIP-4361 message exactly as signed.")
    signature: str = Field(max_length=200, description="The EIP-191 personal_sign signature, 0x + 130 hex.")


class Health(BaseModel):
    """The app is up."""

    status: str = "ok"


class ReadyCheck(BaseModel):
    """One readiness check and what it saw."""

    name: str = Field(description="What is checked: database, settlement, broker.")
    ok: bool
    detail: str = Field(description="What the check saw, or why it failed.")


class ReadyReport(BaseModel):
    """Whether the service can do its work, and each check's answer."""

    status: str = Field(description="`ready` (HTTP 200) or `not ready` (HTTP 503).")
    checks: list[ReadyCheck]


class Problem(BaseModel):
    """An RFC 9457 problem details object (served as application/problem+json)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="A URI naming the problem type.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong in this occurrence.")
    instance: str | None = Field(default=None, description="The request path that failed.")
