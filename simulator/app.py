"""The rider's app as the simulator plays it: a consent to pay at unlock, a cumulative voucher per metering interval.

Pure functions of the rider's key, the EIP-712 domain and the ride: nothing is sent from here. The app never
signs more than the consent's cap, and never less than it signed before (a voucher supersedes the earlier
ones, µRaiden-style), so an honest app's vouchers are always accepted while the consent lasts. The running fare
comes from outside (``fare_at``: the composition root prices the ride with the vehicle's tariff), since the
simulator does not import the settlement package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from sensors.consent import RideConsent, Voucher, sign
from sensors.messages import VehicleKind
from sensors.signing import Domain, address_of

DEFAULT_CAP_MICRO = 20_000_000
"""The spending cap a rider sets by default: €20."""
DEFAULT_VALID_MS = 12 * 3600 * 1000
"""How long a consent allows payments by default: the longest plausible trip (``settlement.bounds``)."""
DEFAULT_INTERVAL_MS = 60_000
"""The metering interval: the app signs a voucher every minute of a ride, and once more at its end."""


def ride_consent(
    key: bytes,
    domain: Domain,
    *,
    vehicle_id: str,
    tariff_id: str,
    nonce: int,
    now_ms: int,
    cap_micro: int = DEFAULT_CAP_MICRO,
    valid_ms: int = DEFAULT_VALID_MS,
) -> RideConsent:
    """The consent the rider of ``key`` signs at ``now_ms`` to ride ``vehicle_id`` under ``tariff_id``.

    It expires ``valid_ms`` later; ``nonce`` must be one the rider has not used (see ``next_nonce``).
    """
    if valid_ms <= 0:
        raise ValueError(f"valid_ms must be positive, not {valid_ms!r}")
    consent = RideConsent(address_of(key), vehicle_id, tariff_id, cap_micro, now_ms + valid_ms, nonce)
    return sign(consent, key, domain)


def next_nonce(used: Iterable[int]) -> int:
    """A nonce above every one in ``used`` (0 for a rider's first consent)."""
    return max(used, default=-1) + 1


def next_voucher(
    key: bytes, domain: Domain, consent: RideConsent, trip_id: str, running_fare_micro: int, previous: Voucher | None
) -> Voucher:
    """The voucher after ``previous`` (None: the trip's first) for a running fare of ``running_fare_micro``.

    Its cumulative amount is the running fare, but never above the consent's cap nor below ``previous``'s;
    its ``seq`` is one above ``previous``'s (1 for the first).
    """
    if type(running_fare_micro) is not int or running_fare_micro < 0:
        raise ValueError(f"running_fare_micro must be a non-negative integer, not {running_fare_micro!r}")
    floor = 0 if previous is None else previous.cumulative_micro
    amount = min(max(running_fare_micro, floor), consent.cap_micro)
    seq = 1 if previous is None else previous.seq + 1
    return sign(Voucher(consent.rider, trip_id, amount, seq), key, domain)


@dataclass(frozen=True, slots=True)
class Metering:
    """How the simulated riders' app meters a ride: the tariff (pricing plan id) of each vehicle kind, the running
    fare ``fare_of(kind, distance_m, duration_ms)`` (the composition root prices it with the plans the aggregator
    uses), the spending cap each consent sets and how often a voucher is signed."""

    tariff_of: Callable[[VehicleKind], str]
    fare_of: Callable[[VehicleKind, int, int], int]
    cap_micro: int = DEFAULT_CAP_MICRO
    interval_ms: int = DEFAULT_INTERVAL_MS
    valid_ms: int = DEFAULT_VALID_MS

    def __post_init__(self) -> None:
        if self.cap_micro <= 0 or self.interval_ms <= 0 or self.valid_ms <= 0:
            raise ValueError("need a positive cap, metering interval and validity")


def nonce_at(now_ms: int, count: int) -> int:
    """A consent nonce that no earlier ride of the rider used, also across runs: the unlock's time in ms and the
    rider's ride count (mod 1000), so that runs of the same seed at another start never collide, and the same run
    gives the same nonces (deterministic payloads)."""
    return now_ms * 1000 + count % 1000


class Metered(NamedTuple):
    """A voucher and the time it was signed (milliseconds since the Unix epoch)."""

    at_ms: int
    voucher: Voucher


def metering_times(start_ms: int, end_ms: int, interval_ms: int = DEFAULT_INTERVAL_MS) -> list[int]:
    """When the app signs during a ride from ``start_ms`` to ``end_ms``: every ``interval_ms``, and at the end."""
    if interval_ms <= 0 or end_ms < start_ms:
        raise ValueError(f"need interval_ms > 0 and end_ms >= start_ms, not {interval_ms}, {start_ms}..{end_ms}")
    times = list(range(start_ms + interval_ms, end_ms, interval_ms))
    return [*times, end_ms]


def meter_ride(
    key: bytes,
    domain: Domain,
    consent: RideConsent,
    trip_id: str,
    *,
    start_ms: int,
    end_ms: int,
    fare_at: Callable[[int], int],
    interval_ms: int = DEFAULT_INTERVAL_MS,
) -> list[Metered]:
    """The vouchers the app signs over a ride, one per metering time; ``fare_at(elapsed_ms)`` is the running fare.

    The app stops signing once the consent has expired (a voucher signed then would be refused anyway).
    """
    out: list[Metered] = []
    previous: Voucher | None = None
    for at in metering_times(start_ms, end_ms, interval_ms):
        if at >= consent.expiry_ms:
            break
        previous = next_voucher(key, domain, consent, trip_id, fare_at(at - start_ms), previous)
        out.append(Metered(at, previous))
    return out
