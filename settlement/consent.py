"""Riders pay with consent: the rules that accept or refuse a ride consent and its vouchers, and the fare they allow.

An unlock carries the rider's ``RideConsent`` (``sensors.consent``: the EIP-712 structs, their signing and
signer recovery, re-exported here). ``check_consent`` accepts it or names the first rule it breaks, in this
order: no consent; a signature missing or malformed; signed by another key than its ``rider``; a ``rider``
other than the unlock's; a vehicle other than the unlocked one; a tariff unknown, or not the vehicle's; a cap
of 0; expired at the unlock (``expiry_ms <= unlock_ms``: the expiry is exclusive); a nonce the rider has used.

During the ride the rider's app signs cumulative ``Voucher`` s (µRaiden's balance proofs). ``check_voucher``
accepts one for a trip or names the first rule it breaks: a signature missing or malformed; signed by another
key than its ``rider``; a trip without an accepted consent; a rider other than the consent's; another trip's
id; received at or after the consent's expiry; a cumulative amount above the cap; a ``seq`` not above the last
accepted one (a replay, an exact duplicate included); a cumulative amount below the last accepted one.

The fare charged is ``min(metered fare, last voucher, cap)`` (``chargeable``): with no voucher it is 0, so a
trip never costs more than the rider signed for. ``ConsentLedger`` keeps the accepted consents per trip and the
nonces used per rider, and feeds these rules; it does no I/O.

The reason codes (``ConsentCode``) are strings like ``settlement.reasons.RejectCode``'s, to be merged there.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace

from sensors.address import Address, InvalidAddress
from sensors.consent import RideConsent, Voucher, digest, sign, signer, typed_data
from sensors.errors import InvalidReading
from sensors.signing import Domain

__all__ = [
    "ACCEPTED",
    "Chargeable",
    "ConsentCode",
    "ConsentLedger",
    "RideConsent",
    "TripConsent",
    "Verdict",
    "Voucher",
    "chargeable",
    "check_consent",
    "check_voucher",
    "digest",
    "sign",
    "signer",
    "typed_data",
]


class ConsentCode(enum.StrEnum):
    """Why a trip's consent or one of its vouchers was refused (new codes for ``RejectCode``)."""

    # the consent carried by an unlock: a refusal rejects the trip
    NO_CONSENT = "no_consent"  # an unlock without a consent
    CONSENT_BAD_SIGNATURE = "consent_bad_signature"  # missing, malformed, or recovers no key
    CONSENT_WRONG_SIGNER = "consent_wrong_signer"  # signed by another key than its rider's
    CONSENT_OTHER_RIDER = "consent_other_rider"  # names another rider than the unlock's
    CONSENT_OTHER_VEHICLE = "consent_other_vehicle"  # names another vehicle than the unlocked one
    UNKNOWN_TARIFF = "unknown_tariff"  # a tariff id no pricing plan has
    TARIFF_MISMATCH = "tariff_mismatch"  # a known tariff, but not the one of the unlocked vehicle
    CONSENT_ZERO_CAP = "consent_zero_cap"
    CONSENT_EXPIRED = "consent_expired"  # expiry at or before the unlock
    NONCE_REUSED = "nonce_reused"  # the rider's nonce was used by an earlier accepted consent
    CONSENT_TWICE = "consent_twice"  # another consent for a trip that already has one
    # a voucher: a refusal drops the voucher, the trip keeps its last accepted one
    VOUCHER_BAD_SIGNATURE = "voucher_bad_signature"  # missing, malformed, or recovers no key
    VOUCHER_WRONG_SIGNER = "voucher_wrong_signer"  # signed by another key than its rider's
    VOUCHER_NO_CONSENT = "voucher_no_consent"  # for a trip without an accepted consent
    VOUCHER_OTHER_RIDER = "voucher_other_rider"  # from another rider than the consent's
    VOUCHER_OTHER_TRIP = "voucher_other_trip"  # names another trip than the one it was given for
    VOUCHER_EXPIRED = "voucher_expired"  # received at or after the consent's expiry
    VOUCHER_ABOVE_CAP = "voucher_above_cap"
    VOUCHER_REPLAYED = "voucher_replayed"  # seq not above the last accepted voucher's
    VOUCHER_DECREASING = "voucher_decreasing"  # cumulative amount below the last accepted voucher's


@dataclass(frozen=True, slots=True)
class Verdict:
    """Accepted (``code`` None), or refused with its ``code`` and a one-line ``reason``."""

    code: ConsentCode | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.code is None


ACCEPTED = Verdict(None, "accepted")


def _refuse(code: ConsentCode, reason: str) -> Verdict:
    return Verdict(code, reason)


@dataclass(frozen=True, slots=True)
class TripConsent:
    """One trip's accepted consent and the last voucher accepted for it (None before the first)."""

    trip_id: str
    consent: RideConsent
    consent_digest: bytes
    voucher: Voucher | None = None
    voucher_digest: bytes | None = None

    @property
    def paid_micro(self) -> int:
        """What the rider has signed for so far: the last voucher's cumulative amount, 0 without one."""
        return 0 if self.voucher is None else self.voucher.cumulative_micro


@dataclass(frozen=True, slots=True)
class Chargeable:
    """A trip's fare as its consent allows it: ``fare_micro = min(metered, voucher, cap)``.

    ``limited_by`` names the smallest of the three (``metered`` when they tie), ``unpaid_micro`` what the
    meter asked beyond it.
    """

    metered_micro: int
    voucher_micro: int
    cap_micro: int
    fare_micro: int = field(init=False)
    limited_by: str = field(init=False)

    def __post_init__(self) -> None:
        for name in ("metered_micro", "voucher_micro", "cap_micro"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
        fare = min(self.metered_micro, self.voucher_micro, self.cap_micro)
        bounds = (("metered", self.metered_micro), ("voucher", self.voucher_micro), ("cap", self.cap_micro))
        limit = next(name for name, value in bounds if value == fare)
        object.__setattr__(self, "fare_micro", fare)
        object.__setattr__(self, "limited_by", limit)

    @property
    def unpaid_micro(self) -> int:
        return self.metered_micro - self.fare_micro


def chargeable(trip: TripConsent, metered_micro: int) -> Chargeable:
    """What ``trip`` may be charged for a metered fare of ``metered_micro``: never above its last voucher or cap."""
    return Chargeable(metered_micro, trip.paid_micro, trip.consent.cap_micro)


def _signature_verdict(item: RideConsent | Voucher, domain: Domain, bad: ConsentCode, wrong: ConsentCode) -> Verdict:
    try:
        by = signer(item, domain)
    except InvalidReading as error:
        return _refuse(bad, error.reason)
    if by != item.rider:
        return _refuse(wrong, f"signed by {by}, not by its rider {item.rider}")
    return ACCEPTED


def _as_address(rider: Address | str) -> Address | None:
    if isinstance(rider, Address):
        return rider
    try:
        return Address.parse(rider)
    except InvalidAddress:
        return None


def check_consent(
    consent: RideConsent | None,
    *,
    rider: Address | str,
    vehicle_id: str,
    unlock_ms: int,
    tariffs: Collection[str],
    used_nonces: Collection[int],
    domain: Domain,
    vehicle_tariff: str | None = None,
) -> Verdict:
    """Whether ``consent`` lets ``rider`` start a trip on ``vehicle_id`` at ``unlock_ms``; else the first reason.

    ``tariffs`` are the known plan ids (a mapping of them will do), ``vehicle_tariff`` the vehicle's own plan
    (None: any known one), ``used_nonces`` the nonces of ``rider``'s earlier accepted consents. ``rider`` is the
    unlock's rider, an address (text that is none matches no consent).
    """
    if consent is None:
        return _refuse(ConsentCode.NO_CONSENT, f"the unlock of {vehicle_id} carries no consent to pay")
    verdict = _signature_verdict(consent, domain, ConsentCode.CONSENT_BAD_SIGNATURE, ConsentCode.CONSENT_WRONG_SIGNER)
    if not verdict.ok:
        return verdict
    if consent.rider != _as_address(rider):
        return _refuse(ConsentCode.CONSENT_OTHER_RIDER, f"consent of {consent.rider}, unlocked by {rider}")
    if consent.vehicle_id != vehicle_id:
        return _refuse(ConsentCode.CONSENT_OTHER_VEHICLE, f"consent for {consent.vehicle_id}, not {vehicle_id}")
    if consent.tariff_id not in tariffs:
        return _refuse(ConsentCode.UNKNOWN_TARIFF, f"no tariff {consent.tariff_id!r}")
    if vehicle_tariff is not None and consent.tariff_id != vehicle_tariff:
        return _refuse(
            ConsentCode.TARIFF_MISMATCH, f"consent to tariff {consent.tariff_id!r}, {vehicle_id} has {vehicle_tariff!r}"
        )
    if consent.cap_micro == 0:
        return _refuse(ConsentCode.CONSENT_ZERO_CAP, "a spending cap of 0 allows no fare")
    if consent.expiry_ms <= unlock_ms:
        return _refuse(ConsentCode.CONSENT_EXPIRED, f"consent expired at {consent.expiry_ms}, unlock at {unlock_ms}")
    if consent.nonce in used_nonces:
        return _refuse(ConsentCode.NONCE_REUSED, f"nonce {consent.nonce} of {consent.rider} was used before")
    return ACCEPTED


def check_voucher(voucher: Voucher, trip_id: str, trip: TripConsent | None, *, at_ms: int, domain: Domain) -> Verdict:
    """Whether ``voucher``, given for ``trip_id`` at ``at_ms``, may follow ``trip``'s state; else the first reason.

    ``trip`` is the trip's accepted consent and last voucher (None: the trip has no accepted consent).
    """
    verdict = _signature_verdict(voucher, domain, ConsentCode.VOUCHER_BAD_SIGNATURE, ConsentCode.VOUCHER_WRONG_SIGNER)
    if not verdict.ok:
        return verdict
    if trip is None:
        return _refuse(ConsentCode.VOUCHER_NO_CONSENT, f"trip {trip_id} has no accepted consent")
    consent = trip.consent
    if voucher.rider != consent.rider:
        return _refuse(ConsentCode.VOUCHER_OTHER_RIDER, f"voucher of {voucher.rider}, consent of {consent.rider}")
    if voucher.trip_id != trip_id:
        return _refuse(ConsentCode.VOUCHER_OTHER_TRIP, f"voucher for trip {voucher.trip_id}, given for {trip_id}")
    if at_ms >= consent.expiry_ms:
        return _refuse(ConsentCode.VOUCHER_EXPIRED, f"consent expired at {consent.expiry_ms}, voucher at {at_ms}")
    if voucher.cumulative_micro > consent.cap_micro:
        return _refuse(
            ConsentCode.VOUCHER_ABOVE_CAP, f"voucher of {voucher.cumulative_micro} above the cap {consent.cap_micro}"
        )
    last = trip.voucher
    if last is not None and voucher.seq <= last.seq:
        return _refuse(ConsentCode.VOUCHER_REPLAYED, f"voucher seq {voucher.seq} not above the last, {last.seq}")
    if last is not None and voucher.cumulative_micro < last.cumulative_micro:
        return _refuse(
            ConsentCode.VOUCHER_DECREASING,
            f"voucher of {voucher.cumulative_micro} below the last, {last.cumulative_micro}",
        )
    return ACCEPTED


class ConsentLedger:
    """The accepted consents of open trips and the nonces each rider has used (in memory, no I/O).

    Built with the known ``tariffs`` (plan ids) and the nonces already used (from storage); ``unlock`` and
    ``voucher`` apply ``check_consent`` and ``check_voucher`` and keep what they accept. A nonce counts as used
    only once its consent is accepted. An unlock delivered again with the same consent is accepted again.
    """

    def __init__(
        self,
        domain: Domain,
        tariffs: Collection[str],
        used_nonces: Mapping[Address, Iterable[int]] | None = None,
    ) -> None:
        self.domain = domain
        self.tariffs = frozenset(tariffs)
        self._nonces: dict[Address, set[int]] = {rider: set(n) for rider, n in (used_nonces or {}).items()}
        self._trips: dict[str, TripConsent] = {}

    def unlock(
        self,
        trip_id: str,
        consent: RideConsent | None,
        *,
        rider: Address | str,
        vehicle_id: str,
        unlock_ms: int,
        vehicle_tariff: str | None = None,
    ) -> Verdict:
        """Accept ``consent`` for the trip ``trip_id`` unlocked by ``rider`` at ``unlock_ms``, or say why not."""
        known = self._trips.get(trip_id)
        if known is not None:
            if consent is not None and digest(consent, self.domain) == known.consent_digest:
                return ACCEPTED
            return _refuse(ConsentCode.CONSENT_TWICE, f"trip {trip_id} already has a consent")
        verdict = check_consent(
            consent,
            rider=rider,
            vehicle_id=vehicle_id,
            unlock_ms=unlock_ms,
            tariffs=self.tariffs,
            used_nonces=self._nonces.get(consent.rider, set()) if consent is not None else set(),
            domain=self.domain,
            vehicle_tariff=vehicle_tariff,
        )
        if verdict.ok:
            assert consent is not None
            self._nonces.setdefault(consent.rider, set()).add(consent.nonce)
            self._trips[trip_id] = TripConsent(trip_id, consent, digest(consent, self.domain))
        return verdict

    def voucher(self, trip_id: str, voucher: Voucher, *, at_ms: int) -> Verdict:
        """Accept ``voucher`` for ``trip_id``, received at ``at_ms``, as the trip's last; or say why not."""
        trip = self._trips.get(trip_id)
        verdict = check_voucher(voucher, trip_id, trip, at_ms=at_ms, domain=self.domain)
        if verdict.ok:
            assert trip is not None
            self._trips[trip_id] = replace(trip, voucher=voucher, voucher_digest=digest(voucher, self.domain))
        return verdict

    def trip(self, trip_id: str) -> TripConsent | None:
        """The trip's accepted consent and last voucher, None if it has none."""
        return self._trips.get(trip_id)

    def fare(self, trip_id: str, metered_micro: int) -> Chargeable:
        """The fare ``trip_id`` may be charged for ``metered_micro``; ``KeyError`` if it has no accepted consent."""
        return chargeable(self._trips[trip_id], metered_micro)

    def close(self, trip_id: str) -> TripConsent:
        """Forget the settled trip ``trip_id`` and give its final state; its nonce stays used."""
        return self._trips.pop(trip_id)

    def used_nonces(self, rider: Address) -> frozenset[int]:
        """The nonces of ``rider``'s accepted consents (including those given at construction)."""
        return frozenset(self._nonces.get(rider, ()))
