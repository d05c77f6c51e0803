"""The device registry: who speaks for each vehicle and who is paid for it, its rules and its Merkle tree (pure).

An entry is an operator-signed ``Registration`` (vehicle id -> operator, kind, device address, payee address,
validity period) plus when it was revoked, if it was. The operators (id -> address) are the trust root: an entry
is admitted only if its signature recovers to its operator's address and its period overlaps no other entry of
the same vehicle. An entry is in force from ``valid_from_ms`` (inclusive) up to ``valid_until_ms`` (exclusive;
0 = open-ended) or its revocation, whichever comes first; a revoked entry still answers for the time before its
revocation (so the payee of trips already settled stays provable) but the device it names is no longer trusted.

Each epoch commits the root of ``registry_tree`` on chain next to its trips root: an OpenZeppelin
StandardMerkleTree of one ``REGISTRY_LEAF_TYPES`` row per entry. With a proof from ``Registry.proof`` anyone
can check a vehicle's payee against the root read from the contract (``verify_proof``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sensors.address import Address
from sensors.errors import InvalidReading
from sensors.registration import Registration, valid_at
from sensors.signing import Domain, signer
from settlement.errors import SettlementError
from settlement.merkle import StandardMerkleTree, leaf_hash, verify
from settlement.reasons import RejectCode

REGISTRY_LEAF_TYPES: tuple[str, ...] = ("string", "string", "string", "address", "address", "uint64", "uint64", "bool")
"""vehicleId, operator, kind, device, payee, validFrom ms, validUntil ms (0 = open-ended), revoked."""

OVERLAPPING_PERIOD = RejectCode.OVERLAPPING_PERIOD
"""The code of a registration whose period overlaps another entry of the same vehicle."""


class RegistryError(SettlementError):
    """A registration the registry refuses; ``code`` names the rule (``unknown_operator``, ``bad_signature``, ...)."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """A registration the registry holds, and when it was revoked (``None``: it was not)."""

    registration: Registration
    revoked_ms: int | None = None

    @property
    def vehicle_id(self) -> str:
        return self.registration.vehicle_id

    @property
    def revoked(self) -> bool:
        return self.revoked_ms is not None

    @property
    def ends_ms(self) -> int | None:
        """Where the entry stops being in force (exclusive): its period's end or its revocation; ``None``: never."""
        ends = [t for t in (self.registration.valid_until_ms or None, self.revoked_ms) if t is not None]
        return min(ends, default=None)

    def in_force_at(self, at_ms: int) -> bool:
        """Whether the entry answers for ``at_ms``: within its period and before its revocation."""
        return valid_at(self.registration, at_ms) and (self.revoked_ms is None or at_ms < self.revoked_ms)

    def overlaps(self, other: RegistryEntry) -> bool:
        """Whether the two entries are in force at a common instant."""
        a_end, b_end = self.ends_ms, other.ends_ms
        a_start, b_start = self.registration.valid_from_ms, other.registration.valid_from_ms
        a_live = a_end is None or a_start < a_end
        b_live = b_end is None or b_start < b_end
        return a_live and b_live and (b_end is None or a_start < b_end) and (a_end is None or b_start < a_end)

    def revoke(self, at_ms: int) -> RegistryEntry:
        """This entry revoked at ``at_ms`` (an entry revoked already keeps its first revocation)."""
        return self if self.revoked_ms is not None else dataclasses.replace(self, revoked_ms=at_ms)

    def leaf(self) -> list[object]:
        """The entry's row in the registry tree, as ``REGISTRY_LEAF_TYPES`` (addresses in EIP-55 form)."""
        reg = self.registration
        return [
            reg.vehicle_id,
            reg.operator,
            reg.kind.value,
            str(reg.device),
            str(reg.payee),
            reg.valid_from_ms,
            reg.valid_until_ms,
            self.revoked,
        ]


def registry_tree(entries: Iterable[RegistryEntry]) -> StandardMerkleTree:
    """The StandardMerkleTree of ``entries``, one leaf each, in order of vehicle id and start."""
    ordered = sorted(entries, key=lambda e: (e.vehicle_id, e.registration.valid_from_ms))
    return StandardMerkleTree.of([e.leaf() for e in ordered], REGISTRY_LEAF_TYPES)


def registry_root(entries: Iterable[RegistryEntry]) -> bytes:
    """The 32-byte root of ``registry_tree(entries)``; 32 zero bytes for an empty registry."""
    return registry_tree(entries).root


def verify_proof(entry: RegistryEntry, proof: Sequence[bytes], root: bytes) -> bool:
    """True when ``proof`` shows ``entry``, exactly as given (revocation included), is in the registry of ``root``."""
    return verify(root, leaf_hash(REGISTRY_LEAF_TYPES, entry.leaf()), proof)


class Registry:
    """An in-memory snapshot of the registry: the operators it trusts and the entries they signed.

    Raises ``RegistryError`` if two entries of one vehicle are in force at a common instant.
    """

    def __init__(self, operators: Mapping[str, Address], entries: Iterable[RegistryEntry] = ()) -> None:
        self.operators = dict(operators)
        by_vehicle: dict[str, list[RegistryEntry]] = {}
        for entry in entries:
            held = by_vehicle.setdefault(entry.vehicle_id, [])
            _refuse_overlap(entry, held)
            held.append(entry)
        self._by_vehicle = {
            vehicle: tuple(sorted(held, key=lambda e: e.registration.valid_from_ms))
            for vehicle, held in by_vehicle.items()
        }
        self._tree: StandardMerkleTree | None = None

    @property
    def entries(self) -> tuple[RegistryEntry, ...]:
        """Every entry, by vehicle id and start."""
        return tuple(e for vehicle in sorted(self._by_vehicle) for e in self._by_vehicle[vehicle])

    def __len__(self) -> int:
        return sum(len(held) for held in self._by_vehicle.values())

    def history(self, vehicle_id: str) -> tuple[RegistryEntry, ...]:
        """The entries of ``vehicle_id``, oldest start first (empty for a vehicle never registered)."""
        return self._by_vehicle.get(vehicle_id, ())

    def entry_at(self, vehicle_id: str, at_ms: int) -> RegistryEntry | None:
        """The entry of ``vehicle_id`` in force at ``at_ms``, or ``None``.

        A revoked entry is returned for instants before its revocation: a verifier must refuse what its device
        signed (``RegistryEntry.revoked``), whatever timestamp the message claims.
        """
        return next((e for e in self.history(vehicle_id) if e.in_force_at(at_ms)), None)

    def payee_at(self, vehicle_id: str, at_ms: int) -> Address | None:
        """Who is paid for a trip of ``vehicle_id`` at ``at_ms``, or ``None`` when no entry is in force then."""
        entry = self.entry_at(vehicle_id, at_ms)
        return None if entry is None else entry.registration.payee

    def latest(self, vehicle_id: str) -> RegistryEntry | None:
        """The entry of ``vehicle_id`` with the latest start, or ``None`` for a vehicle never registered."""
        held = self.history(vehicle_id)
        return held[-1] if held else None

    def check_registration(self, reg: Registration, domain: Domain) -> RegistryEntry:
        """The entry ``reg`` would become, or ``RegistryError`` saying why the registry refuses it.

        Refused: an operator the registry does not know (``unknown_operator``); no signature
        (``missing_signature``); a signature that does not recover to the operator's address under ``domain``
        (``bad_signature``); a zero device or payee (``bad_address``); a period overlapping another entry of the
        vehicle (``overlapping_period``). A properly signed registration already held (signature aside) is not
        refused: the held entry is returned as it is, revocation included, so loading one fleet file twice
        changes nothing.
        """
        operator = self.operators.get(reg.operator)
        if operator is None:
            raise RegistryError(f"operator {reg.operator!r} is not known to the registry", RejectCode.UNKNOWN_OPERATOR)
        if reg.signature is None:
            raise RegistryError(f"the registration of {reg.vehicle_id} is not signed", RejectCode.MISSING_SIGNATURE)
        try:
            signed_by = signer(reg, domain)
        except InvalidReading as exc:
            raise RegistryError(f"the registration of {reg.vehicle_id}: {exc.reason}", exc.code) from None
        if signed_by != operator:
            raise RegistryError(
                f"the registration of {reg.vehicle_id} is signed by {signed_by}, not by operator "
                f"{reg.operator} ({operator})",
                RejectCode.BAD_SIGNATURE,
            )
        for role, address in (("device", reg.device), ("payee", reg.payee)):
            if address.raw == bytes(20):
                raise RegistryError(f"the {role} of {reg.vehicle_id} is the zero address", RejectCode.BAD_ADDRESS)
        for held in self.history(reg.vehicle_id):
            if _unsigned(held.registration) == _unsigned(reg):
                return held
        entry = RegistryEntry(reg)
        _refuse_overlap(entry, self.history(reg.vehicle_id))
        return entry

    def with_entry(self, entry: RegistryEntry) -> Registry:
        """A new snapshot holding ``entry`` too; it replaces a held entry of the same registration (a revocation)."""
        kept = [e for e in self.entries if _unsigned(e.registration) != _unsigned(entry.registration)]
        return Registry(self.operators, [*kept, entry])

    @property
    def tree(self) -> StandardMerkleTree:
        """The registry's Merkle tree (built once per snapshot)."""
        if self._tree is None:
            self._tree = registry_tree(self.entries)
        return self._tree

    @property
    def root(self) -> bytes:
        """The root to commit on chain; 32 zero bytes for an empty registry."""
        return self.tree.root

    def proof(self, entry: RegistryEntry) -> list[bytes]:
        """The proof of ``entry`` against ``root``; ``ValueError`` if the registry does not hold it."""
        return self.tree.proof(entry.leaf())

    verify_proof = staticmethod(verify_proof)


def _unsigned(reg: Registration) -> Registration:
    return dataclasses.replace(reg, signature=None)


def _refuse_overlap(entry: RegistryEntry, held: Iterable[RegistryEntry]) -> None:
    for other in held:
        if entry.overlaps(other):
            reg, old = entry.registration, other.registration
            raise RegistryError(
                f"{reg.vehicle_id}: the period from {reg.valid_from_ms} overlaps the entry from "
                f"{old.valid_from_ms} (until {other.ends_ms or 'open-ended'})",
                OVERLAPPING_PERIOD,
            )
