"""Enrolment: trusting operators, adding signed registry entries and revoking devices, in one unit of work."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sensors.address import Address
from sensors.registration import Registration
from sensors.signing import Domain
from settlement.errors import SettlementError
from settlement.registry import OVERLAPPING_PERIOD, Registry, RegistryEntry, RegistryError
from settlement.repositories import UnitOfWork


def trust_operator(uow: Callable[[], UnitOfWork], operator: str, address: Address, now_ms: int) -> None:
    """Let ``address`` sign registry entries for ``operator`` (replacing an earlier address)."""
    with uow() as work:
        work.registry.add_operator(operator, address, now_ms)
        work.commit()


def enrol(
    uow: Callable[[], UnitOfWork], registrations: Iterable[Registration], domain: Domain, now_ms: int
) -> tuple[int, int]:
    """Add each signed registration after checking it against the registry; (added, already held).

    All or nothing: the first registration the registry refuses raises ``RegistryError`` naming it, and none of
    the batch is added.
    """
    added = held = 0
    with uow() as work:
        registry = Registry(work.registry.operators(), work.registry.entries())
        batch: dict[str, list[RegistryEntry]] = {}  # what this call adds, per vehicle (linear, not a new snapshot)
        for registration in registrations:
            entry = registry.check_registration(registration, domain)
            earlier = batch.setdefault(registration.vehicle_id, [])
            clash = next((e for e in earlier if e.overlaps(entry)), None)
            if clash is not None and clash.registration.valid_from_ms != registration.valid_from_ms:
                raise RegistryError(
                    f"{registration.vehicle_id}: two registrations of this batch overlap", OVERLAPPING_PERIOD
                )
            if clash is not None or not work.registry.add(entry, now_ms):
                held += 1
                continue
            earlier.append(entry)
            added += 1
        work.commit()
    return added, held


def revoke(uow: Callable[[], UnitOfWork], vehicle_id: str, now_ms: int) -> int:
    """Revoke the vehicle's entries in force: nothing its device signs is accepted any more. How many."""
    with uow() as work:
        n = work.registry.revoke(vehicle_id, now_ms)
        work.commit()
    return n


def entries(uow: Callable[[], UnitOfWork]) -> Registry:
    """The registry as it is now."""
    with uow() as work:
        return Registry(work.registry.operators(), work.registry.entries())


def signing_domain(uow: Callable[[], UnitOfWork], configured: int | None) -> Domain:
    """The EIP-712 domain of this database's devices: the configured chain id, else its deployment's chain."""
    if configured is not None:
        return Domain(configured)
    with uow() as work:
        found = work.registry.any_deployment()
    if found is None:
        raise SettlementError(
            "this database has no settlement contract yet, so no chain id for signatures: start the aggregator "
            "once (it deploys the contract) or set SMARTZONE_CHAIN_ID"
        )
    return Domain(found[0])
