"""The JSON API under ``/api/v1``: thin routes from the read model to the response models.

Without a login only aggregates are public (stats, reject counts, epochs: public chain data). Positions and
per-vehicle data need staff; a wallet (an account) sees only its own trips as a rider and its own payouts as an
owner: someone else's trip is a 404 (as if it did not exist, so trip ids cannot be probed), and asking for
someone else's list by name is a 403.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, HTTPException, Query

from dashboard.config import Principal, Role
from dashboard.deps import Model, Signed, Staff
from dashboard.problems import FORBIDDEN, INVALID, NOT_COMMITTED, NOT_FOUND, SIGNED
from dashboard.schemas import (
    BalanceProof,
    Epoch,
    EpochList,
    Payout,
    PayoutList,
    RegistryProof,
    Stats,
    Trip,
    TripList,
    TripReceipt,
    Vehicle,
    VehicleList,
)
from sensors.address import Address, InvalidAddress
from settlement.lifecycle import TripStatus
from settlement.views import InvalidCursor, Listed, NotCommitted, ReadModel, TripView, cursor_after

MAX_LIMIT = 1000
V = TypeVar("V", bound=Listed)


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many, newest first.")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="Where the page starts: the `next_cursor` of the page before.")
]


def paged(read: Callable[[int, str | None], Sequence[V]], limit: int, cursor: str | None) -> tuple[list[V], str | None]:
    """One page of ``limit`` views read after ``cursor``, and the cursor of the next page (None on the last)."""
    try:
        views = list(read(limit + 1, cursor))
    except InvalidCursor as exc:
        raise HTTPException(422, str(exc)) from None
    if len(views) <= limit:
        return views, None
    return views[:limit], cursor_after(views[limit - 1])


Address40 = Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{40}$", description="An account address.")]
Kind = Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="Only vehicles of this kind.")]
VehicleState = Literal["available", "on_trip", "non_operational", "unknown"]
VehicleSort = Literal["vehicle_id", "battery_pct", "-battery_pct", "-received_ms"]
Ms = Annotated[int | None, Query(ge=0, le=2**53, description="Milliseconds since the Unix epoch.")]


def as_address(text: str | None) -> str | None:
    """An address parameter in EIP-55 form (None stays None); a mixed-case one that fails its checksum is a 422."""
    if text is None:
        return None
    try:
        return str(Address.parse(text))
    except InvalidAddress as exc:
        raise HTTPException(422, str(exc)) from None


def same(a: str | None, b: str | None) -> bool:
    """Whether two address texts name the same account (case aside); False when either is none."""
    try:
        return a is not None and b is not None and Address.parse(a) == Address.parse(b)
    except InvalidAddress:
        return False


def own(who: Principal, asked: str | None, what: str) -> str | None:
    """The address a list is scoped to: anything for staff; for an account itself (naming another is a 403)."""
    if who.staff:
        return asked
    if asked is not None and not same(asked, who.subject):
        raise HTTPException(403, f"an account sees only its own {what}")
    return who.subject


def given(**filters: Any) -> dict[str, Any]:
    """The filters that are set, as keyword arguments for the read model."""
    return {name: value for name, value in filters.items() if value is not None}


router = APIRouter(prefix="/api/v1")


@router.get("/vehicles", tags=["fleet"], responses={**SIGNED, **FORBIDDEN, **INVALID})
def list_vehicles(
    model: Model,
    who: Staff,
    limit: Limit = 100,
    cursor: Cursor = None,
    state: Annotated[VehicleState | None, Query(description="Only vehicles in this MDS state.")] = None,
    kind: Kind = None,
    owner: Address40 = None,
    online: Annotated[bool | None, Query(description="Only vehicles online (true) or offline (false).")] = None,
    q: Annotated[str | None, Query(max_length=64, description="Vehicle ids containing this text.")] = None,
    sort: Annotated[VehicleSort, Query(description="Order: a field, descending with a leading '-'.")] = "vehicle_id",
) -> VehicleList:
    """The vehicles of the fleet as last seen (staff only), filtered and sorted, a page at a time."""
    filters = given(state=state, kind=kind, owner=as_address(owner), online=online, search=q or None)
    if sort != "vehicle_id":
        filters["sort"] = sort

    def read(n: int, after: str | None) -> Sequence[Any]:
        return model.vehicles(limit=n, cursor=after, **filters)

    views, next_cursor = paged(read, limit, cursor)
    return VehicleList(items=[Vehicle.model_validate(v) for v in views], next_cursor=next_cursor)


@router.get("/vehicles/{vehicle_id}", tags=["fleet"], responses={**SIGNED, **FORBIDDEN, **NOT_FOUND})
def get_vehicle(vehicle_id: str, model: Model, who: Staff) -> Vehicle:
    """One vehicle as last seen (staff only)."""
    view = model.vehicle(vehicle_id)
    if view is None:
        raise HTTPException(404, f"no vehicle with id {vehicle_id!r}")
    return Vehicle.model_validate(view)


@router.get("/vehicles/{vehicle_id}/registry", tags=["fleet"], responses={**SIGNED, **FORBIDDEN, **NOT_FOUND})
def get_vehicle_registry(vehicle_id: str, model: Model, who: Staff) -> RegistryProof:
    """The vehicle's registry entry (device, payee, validity) with its Merkle proof against the registry root."""
    view = model.registry_proof(vehicle_id)
    if view is None:
        raise HTTPException(404, f"vehicle {vehicle_id!r} is not in the registry")
    return RegistryProof.model_validate(view)


@router.get("/trips", tags=["trips"], responses={**SIGNED, **FORBIDDEN, **INVALID})
def list_trips(
    model: Model,
    who: Signed,
    limit: Limit = 100,
    vehicle_id: Annotated[str | None, Query(max_length=128, description="Only this vehicle's trips.")] = None,
    rider: Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{40}$", description="Only this rider's trips.")] = None,
    status: Annotated[TripStatus | None, Query(description="Only trips in this state (e.g. rejected).")] = None,
    kind: Kind = None,
    owner: Address40 = None,
    epoch_id: Annotated[int | None, Query(ge=0, description="Only the trips of this epoch.")] = None,
    from_ms: Annotated[Ms, Query(description="Only trips that ended at or after this time.")] = None,
    to_ms: Annotated[Ms, Query(description="Only trips that ended before this time.")] = None,
    cursor: Cursor = None,
) -> TripList:
    """Trips, newest first: staff see all, an account only its own rides (naming another rider is a 403)."""
    if from_ms is not None and to_ms is not None and from_ms > to_ms:
        raise HTTPException(422, "from_ms is after to_ms")
    scope = own(who, as_address(rider), "trips")
    filters = given(
        vehicle_id=vehicle_id, rider=scope, status=status.value if status else None, kind=kind,
        owner=as_address(owner), epoch_id=epoch_id, from_ms=from_ms, to_ms=to_ms,
    )  # fmt: skip

    def read(n: int, after: str | None) -> list[TripView]:
        return model.trips(limit=n, cursor=after, **filters)

    views, next_cursor = paged(read, limit, cursor)
    return TripList(items=[Trip.model_validate(t) for t in views], next_cursor=next_cursor)


def visible_trip(model: ReadModel, trip_id: str, who: Principal) -> TripView:
    """The trip if ``who`` may see it (staff, or its rider); a 404 otherwise, the same as for no such trip."""
    view = model.trip(trip_id)
    if view is None or not (who.staff or same(view.rider, who.subject)):
        raise HTTPException(404, f"no trip with id {trip_id!r}")
    return view


@router.get("/trips/{trip_id}", tags=["trips"], responses={**SIGNED, **NOT_FOUND})
def get_trip(trip_id: str, model: Model, who: Signed) -> Trip:
    """One trip, its fare and its settlement status (staff, or the trip's rider)."""
    return Trip.model_validate(visible_trip(model, trip_id, who))


@router.get("/trips/{trip_id}/receipt", tags=["trips"], responses={**SIGNED, **NOT_FOUND, **NOT_COMMITTED})
def get_trip_receipt(trip_id: str, model: Model, who: Signed) -> TripReceipt:
    """The trip's receipt (staff, or its rider): its fare and a Merkle proof anyone can check on chain."""
    if not who.staff:
        visible_trip(model, trip_id, who)
    try:
        receipt = model.trip_receipt(trip_id)
    except NotCommitted as exc:
        raise HTTPException(409, str(exc)) from None
    if receipt is None:
        raise HTTPException(404, f"no trip with id {trip_id!r}")
    return TripReceipt.model_validate(receipt)


@router.get("/epochs", tags=["settlement"], responses=INVALID)
def list_epochs(model: Model, limit: Limit = 100, cursor: Cursor = None) -> EpochList:
    """Epochs (batches of trips) and their settlement transactions, newest first: public chain data."""
    views, next_cursor = paged(model.epochs, limit, cursor)
    return EpochList(items=[Epoch.model_validate(e) for e in views], next_cursor=next_cursor)


@router.get("/accounts/{address}/balance-proof", tags=["settlement"], responses={**SIGNED, **FORBIDDEN, **NOT_FOUND})
def get_balance_proof(address: str, model: Model, who: Signed) -> BalanceProof:
    """The account's balance in the last epoch on chain with the proof to claim or withdraw with (operators, or
    that account)."""
    try:
        parsed = Address.parse(address)
    except InvalidAddress as exc:
        raise HTTPException(422, str(exc)) from None
    if who.role is not Role.OPERATOR and not (who.role is Role.ACCOUNT and same(str(parsed), who.subject)):
        raise HTTPException(403, "only operators and the account itself see its balance")
    document = model.balance_proof(parsed)
    if document is None:
        raise HTTPException(404, f"no epoch on chain holds a balance of {parsed}")
    return BalanceProof.model_validate(document)


@router.get("/payouts", tags=["settlement"], responses={**SIGNED, **FORBIDDEN, **INVALID})
def list_payouts(
    model: Model, who: Signed, limit: Limit = 100, cursor: Cursor = None, owner: Address40 = None
) -> PayoutList:
    """What each vehicle owner has earned, by owner address: operators see all, an account only its own."""
    if who.role is Role.RESEARCHER:
        raise HTTPException(403, "payouts are for operators and the owners themselves")
    scope = own(who, as_address(owner), "payouts")
    filters = given(owner=scope)

    def read(n: int, after: str | None) -> Sequence[Any]:
        return model.payouts(limit=n, cursor=after, **filters)

    views, next_cursor = paged(read, limit, cursor)
    return PayoutList(items=[Payout.model_validate(p) for p in views], next_cursor=next_cursor)


@router.get("/rejects", tags=["overview"])
def count_rejects(model: Model) -> dict[str, int]:
    """How many messages were dead-lettered, per reason code."""
    return model.rejects_by_code()


@router.get("/stats", tags=["overview"])
def get_stats(model: Model) -> Stats:
    """Counts of vehicles, messages, trips and epochs, and the total settled."""
    return Stats.model_validate(model.stats())
