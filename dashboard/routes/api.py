"""The JSON API under ``/api/v1``: thin routes from the read model to the response models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from dashboard.problems import INVALID, NOT_COMMITTED, NOT_FOUND
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


def read_model(request: Request) -> ReadModel:
    """The read model ``create_app`` was given; tests may replace it with ``dependency_overrides``."""
    model: ReadModel = request.app.state.read_model
    return model


Model = Annotated[ReadModel, Depends(read_model)]
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


router = APIRouter(prefix="/api/v1")


@router.get("/vehicles", tags=["fleet"], responses=INVALID)
def list_vehicles(model: Model, limit: Limit = 100, cursor: Cursor = None) -> VehicleList:
    """The vehicles of the fleet as last seen, by id, a page at a time."""
    views, next_cursor = paged(model.vehicles, limit, cursor)
    return VehicleList(items=[Vehicle.model_validate(v) for v in views], next_cursor=next_cursor)


@router.get("/vehicles/{vehicle_id}", tags=["fleet"], responses=NOT_FOUND)
def get_vehicle(vehicle_id: str, model: Model) -> Vehicle:
    """One vehicle as last seen."""
    view = model.vehicle(vehicle_id)
    if view is None:
        raise HTTPException(404, f"no vehicle with id {vehicle_id!r}")
    return Vehicle.model_validate(view)


@router.get("/vehicles/{vehicle_id}/registry", tags=["fleet"], responses=NOT_FOUND)
def get_vehicle_registry(vehicle_id: str, model: Model) -> RegistryProof:
    """The vehicle's registry entry (device, payee, validity) with its Merkle proof against the registry root."""
    view = model.registry_proof(vehicle_id)
    if view is None:
        raise HTTPException(404, f"vehicle {vehicle_id!r} is not in the registry")
    return RegistryProof.model_validate(view)


@router.get("/trips", tags=["trips"], responses=INVALID)
def list_trips(
    model: Model,
    limit: Limit = 100,
    vehicle_id: Annotated[str | None, Query(description="Only this vehicle's trips.")] = None,
    rider: Annotated[str | None, Query(description="Only this rider's trips (wallet address).")] = None,
    status: Annotated[TripStatus | None, Query(description="Only trips in this state (e.g. rejected).")] = None,
    cursor: Cursor = None,
) -> TripList:
    """Priced and settled trips, newest first (or only those of one status), of one vehicle or one rider."""

    def read(n: int, after: str | None) -> list[TripView]:
        state = status.value if status else None
        return model.trips(limit=n, vehicle_id=vehicle_id, rider=rider, status=state, cursor=after)

    views, next_cursor = paged(read, limit, cursor)
    return TripList(items=[Trip.model_validate(t) for t in views], next_cursor=next_cursor)


@router.get("/trips/{trip_id}", tags=["trips"], responses=NOT_FOUND)
def get_trip(trip_id: str, model: Model) -> Trip:
    """One trip, its fare and its settlement status."""
    view = model.trip(trip_id)
    if view is None:
        raise HTTPException(404, f"no trip with id {trip_id!r}")
    return Trip.model_validate(view)


@router.get("/trips/{trip_id}/receipt", tags=["trips"], responses={**NOT_FOUND, **NOT_COMMITTED})
def get_trip_receipt(trip_id: str, model: Model) -> TripReceipt:
    """The trip's receipt: its fare and a Merkle proof that anyone can check against the contract on chain."""
    try:
        receipt = model.trip_receipt(trip_id)
    except NotCommitted as exc:
        raise HTTPException(409, str(exc)) from None
    if receipt is None:
        raise HTTPException(404, f"no trip with id {trip_id!r}")
    return TripReceipt.model_validate(receipt)


@router.get("/epochs", tags=["settlement"], responses=INVALID)
def list_epochs(model: Model, limit: Limit = 100, cursor: Cursor = None) -> EpochList:
    """Epochs (batches of trips) and their settlement transactions, newest first."""
    views, next_cursor = paged(model.epochs, limit, cursor)
    return EpochList(items=[Epoch.model_validate(e) for e in views], next_cursor=next_cursor)


@router.get("/accounts/{address}/balance-proof", tags=["settlement"], responses=NOT_FOUND)
def get_balance_proof(address: str, model: Model) -> BalanceProof:
    """The account's balance in the last epoch on chain with the proof to claim or withdraw with."""
    try:
        account = Address.parse(address)
    except InvalidAddress as exc:
        raise HTTPException(422, str(exc)) from None
    document = model.balance_proof(account)
    if document is None:
        raise HTTPException(404, f"no epoch on chain holds a balance of {account}")
    return BalanceProof.model_validate(document)


@router.get("/payouts", tags=["settlement"], responses=INVALID)
def list_payouts(model: Model, limit: Limit = 100, cursor: Cursor = None) -> PayoutList:
    """What each vehicle owner has earned, settled on chain and pending, by owner address."""
    views, next_cursor = paged(model.payouts, limit, cursor)
    return PayoutList(items=[Payout.model_validate(p) for p in views], next_cursor=next_cursor)


@router.get("/rejects", tags=["overview"])
def count_rejects(model: Model) -> dict[str, int]:
    """How many messages were dead-lettered, per reason code."""
    return model.rejects_by_code()


@router.get("/stats", tags=["overview"])
def get_stats(model: Model) -> Stats:
    """Counts of vehicles, messages, trips and epochs, and the total settled."""
    return Stats.model_validate(model.stats())
