"""Pricing plans in the GBFS 3.0 ``system_pricing_plans`` model, priced in integer micro-units (pure).

A plan has a base ``price`` (charged once per trip: the unlock) and segments ``per_min_pricing`` and
``per_km_pricing``; the fare is the base price plus every segment's charge (GBFS: "Total cost is the addition of
price and all segments"). Amounts are integers in millionths of the plan's currency (micro-euro for the zone's
plans, which are in EUR); ``start``, ``interval`` and ``end`` stay in the GBFS units, minutes or kilometres.

One segment's charge, for a trip of duration ``t`` or distance ``d`` (``a``, in seconds or metres):

- the segment covers ``[start, end)`` (start inclusive, end exclusive, no end: up to the end of the trip);
- ``interval > 0``: ``rate`` is charged once for each interval *started* inside it, the intervals beginning at
  ``start``, ``start + interval``, … and before ``end``; an interval is started when the trip goes past its
  beginning. So the count is ``ceil((min(a, end) - start) / interval)`` when ``min(a, end) > start``, else 0;
- ``interval == 0``: ``rate`` is charged once, as soon as the trip goes past ``start``.

Hence a trip of exactly 10:00 pays 10 started minutes and one of 10:01 pays 11; a trip of exactly ``start``
pays nothing of the segment; the interval beginning at ``end`` is never charged. Time is counted from whole
seconds, distance from whole metres; all boundaries are whole minutes or kilometres, so the count is exact
integer arithmetic and a fare is a sum of whole micro-units: there is no rounding of money at all.

Rates may be negative (GBFS: a discount), but a plan whose fare could be negative for some trip is refused at
construction: ``lowest fare`` is computed exactly (the charges are step functions that repeat after the last
boundary with the period of the intervals), and a plan for which that cannot be shown within a bounded search
is refused as well. ``price`` checks the total again and never returns a negative fare.

GBFS amounts are decimal numbers of the currency unit; ``plan_from_gbfs`` converts them with ``Decimal`` and
refuses anything finer than a micro-unit, and ``plan_to_gbfs`` gives ``Decimal`` amounts (read JSON with
``parse_float=Decimal``; a float read from JSON is taken by its shortest repr, which is exact for amounts of up
to 15 significant digits, and every amount here is below 10**15 micro-units).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

MICRO = 1_000_000
MAX_MICRO = 10**15 - 1  # a billion units: keeps every amount exact through a JSON float
BPS = 10_000
SECONDS_PER_MIN = 60
METRES_PER_KM = 1000
SEARCH_LIMIT = 100_000  # boundaries examined to prove a plan with discounts never goes below zero

__all__ = [
    "FareBreakdown",
    "PricingPlan",
    "Segment",
    "Text",
    "flat_plan",
    "plan_from_gbfs",
    "plan_to_gbfs",
    "plans_feed",
    "price",
    "split",
]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_amount(name: str, value: object, *, signed: bool = False) -> None:
    lowest = -MAX_MICRO if signed else 0
    if not isinstance(value, int) or isinstance(value, bool) or not lowest <= value <= MAX_MICRO:
        kind = "an integer" if signed else "a non-negative integer"
        raise ValueError(f"{name} must be {kind} of micro-units below 10**15, not {value!r}")


class Text(NamedTuple):
    """One translation of a customer-readable text (GBFS 3.0 localised string)."""

    text: str
    language: str = "en"


@dataclass(frozen=True, slots=True)
class Segment:
    """``rate_micro`` for each ``interval`` started from ``start`` up to ``end`` (GBFS minutes or kilometres)."""

    start: int
    rate_micro: int
    interval: int
    end: int | None = None

    def __post_init__(self) -> None:
        _check_amount("rate_micro", self.rate_micro, signed=True)
        for name in ("start", "interval"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise ValueError(f"segment {name} must be a non-negative integer, not {value!r}")
        if self.end is not None and (not _is_int(self.end) or self.end <= self.start):
            raise ValueError(f"segment end must be an integer after its start {self.start}, not {self.end!r}")

    def charges(self, amount: int, unit: int) -> int:
        """How many times the rate is charged for ``amount`` seconds or metres (``unit`` per minute or km)."""
        start = self.start * unit
        reach = amount if self.end is None else min(amount, self.end * unit)
        if reach <= start:
            return 0
        if self.interval == 0:
            return 1
        return -(-(reach - start) // (self.interval * unit))


def _charge(segments: Iterable[Segment], amount: int, unit: int) -> int:
    return sum(s.rate_micro * s.charges(amount, unit) for s in segments)


def _lowest(segments: Sequence[Segment]) -> int | None:
    """The lowest charge of ``segments`` over every trip, or None if unbounded below or not shown in the limit.

    Every boundary is a whole unit, so the charge is constant on each ``(n, n + 1]`` units; after the last
    ``start``/``end`` (``horizon``) it repeats every ``period`` (the intervals' lcm) plus a constant ``drift``.
    """
    if all(s.rate_micro >= 0 for s in segments):
        return 0
    endless = [s for s in segments if s.end is None and s.interval > 0]
    period = math.lcm(*(s.interval for s in endless)) if endless else 1
    if sum(s.rate_micro * (period // s.interval) for s in endless) < 0:
        return None
    horizon = max(max(s.start, s.end or 0) for s in segments)
    if horizon + period > SEARCH_LIMIT:
        return None
    return min([0] + [_charge(segments, n + 1, 1) for n in range(horizon + period)])


@dataclass(frozen=True, slots=True)
class PricingPlan:
    """A GBFS 3.0 pricing plan: ``price_micro`` once per trip plus its per-minute and per-km segments."""

    plan_id: str
    price_micro: int
    per_min_pricing: tuple[Segment, ...] = ()
    per_km_pricing: tuple[Segment, ...] = ()
    name: tuple[Text, ...] = ()
    description: tuple[Text, ...] = ()
    currency: str = "EUR"
    is_taxable: bool = False
    url: str | None = None
    surge_pricing: bool = False
    lowest_micro: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.plan_id, str) or not self.plan_id:
            raise ValueError(f"plan_id must be a non-empty string, not {self.plan_id!r}")
        _check_amount("price_micro", self.price_micro)
        if not isinstance(self.currency, str) or not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ValueError(f"currency must be an ISO 4217 code such as EUR, not {self.currency!r}")
        for name in ("per_min_pricing", "per_km_pricing", "name", "description"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for segment in self.per_min_pricing + self.per_km_pricing:
            if not isinstance(segment, Segment):
                raise ValueError(f"pricing segments must be Segment, not {segment!r}")
        by_time, by_distance = _lowest(self.per_min_pricing), _lowest(self.per_km_pricing)
        if by_time is None or by_distance is None:
            raise ValueError(f"plan {self.plan_id}: its discounts could make a fare negative (a negative total)")
        lowest = self.price_micro + by_time + by_distance
        if lowest < 0:
            raise ValueError(f"plan {self.plan_id}: a trip could cost {lowest} micro-units (a negative total)")
        object.__setattr__(self, "lowest_micro", lowest)


@dataclass(frozen=True, slots=True)
class FareBreakdown:
    """What one trip costs, by component, in micro-units: unlock (the plan's price), time and distance."""

    unlock_micro: int
    time_micro: int
    distance_micro: int

    @property
    def total_micro(self) -> int:
        return self.unlock_micro + self.time_micro + self.distance_micro


def price(plan: PricingPlan, distance_m: int, duration_s: int) -> FareBreakdown:
    """The fare under ``plan`` of a trip of ``distance_m`` metres lasting ``duration_s`` (started) seconds.

    Raises ``ValueError`` for a negative or fractional distance or duration (only a plausible trip is priced),
    and for a negative total, which a constructed plan cannot give.
    """
    for name, value in (("distance_m", distance_m), ("duration_s", duration_s)):
        if not _is_int(value) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, not {value!r}")
    fare = FareBreakdown(
        unlock_micro=plan.price_micro,
        time_micro=_charge(plan.per_min_pricing, duration_s, SECONDS_PER_MIN),
        distance_micro=_charge(plan.per_km_pricing, distance_m, METRES_PER_KM),
    )
    if fare.total_micro < 0:
        raise ValueError(f"plan {plan.plan_id} prices this trip at {fare.total_micro} micro-units (negative)")
    return fare


def split(total_micro: int, fee_bps: int) -> tuple[int, int]:
    """``(owner_micro, fee_micro)``: the zone fee is ``fee_bps`` of the total rounded down, the owner gets the rest."""
    if not _is_int(total_micro) or total_micro < 0:
        raise ValueError(f"total_micro must be a non-negative integer, not {total_micro!r}")
    if not _is_int(fee_bps) or not 0 <= fee_bps <= BPS:
        raise ValueError(f"fee_bps must be an integer from 0 to {BPS}, not {fee_bps!r}")
    fee = total_micro * fee_bps // BPS
    return total_micro - fee, fee


def flat_plan(
    plan_id: str, unlock_micro: int, per_min_micro: int, per_km_micro: int = 0, *, name: str = "", about: str = ""
) -> PricingPlan:
    """A plan with an unlock price and constant rates per started minute and per started km."""
    return PricingPlan(
        plan_id=plan_id,
        price_micro=unlock_micro,
        per_min_pricing=(Segment(0, per_min_micro, 1),) if per_min_micro else (),
        per_km_pricing=(Segment(0, per_km_micro, 1),) if per_km_micro else (),
        name=(Text(name or plan_id),),
        description=(Text(about or name or plan_id),),
    )


# --- GBFS JSON ------------------------------------------------------------------------------------------------


def _micro_from_decimal(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ValueError(f"{where} must be a number, not {value!r}")
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{where} must be a number, not {value!r}") from None
    micro = amount * MICRO if amount.is_finite() else None
    if micro is None or micro != micro.to_integral_value():
        raise ValueError(f"{where} must be a finite amount in whole micro-units, not {value!r}")
    return int(micro)


def _decimal_from_micro(micro: int) -> Decimal:
    amount = Decimal(micro).scaleb(-6)
    whole = amount.to_integral_value()
    return whole if amount == whole else amount.normalize()


def _texts(value: object, where: str) -> tuple[Text, ...]:
    if not isinstance(value, list) or not all(
        isinstance(t, Mapping) and isinstance(t.get("text"), str) and isinstance(t.get("language"), str) for t in value
    ):
        raise ValueError(f"{where} must be a list of {{text, language}} objects (GBFS 3.0), not {value!r}")
    return tuple(Text(t["text"], t["language"]) for t in value)


def _segments(value: object, where: str) -> tuple[Segment, ...]:
    if not isinstance(value, list) or not all(isinstance(s, Mapping) for s in value):
        raise ValueError(f"{where} must be a list of segments, not {value!r}")
    segments = []
    for i, s in enumerate(value):
        missing = {"start", "rate", "interval"} - set(s)
        if missing:
            raise ValueError(f"{where}[{i}] lacks {', '.join(sorted(missing))}")
        rate = _micro_from_decimal(s["rate"], f"{where}[{i}].rate")
        segments.append(Segment(s["start"], rate, s["interval"], s.get("end")))
    return tuple(segments)


def plan_from_gbfs(data: Mapping[str, Any]) -> PricingPlan:
    """The plan described by one GBFS 3.0 ``plans`` entry; ``ValueError`` names the first field it refuses."""
    missing = {"plan_id", "name", "currency", "price", "is_taxable", "description"} - set(data)
    if missing:
        raise ValueError(f"pricing plan lacks {', '.join(sorted(missing))}")
    where = f"plan {data['plan_id']!r}"
    for flag in ("is_taxable", "surge_pricing"):
        if not isinstance(data.get(flag, False), bool):
            raise ValueError(f"{where}: {flag} must be true or false, not {data[flag]!r}")
    return PricingPlan(
        plan_id=data["plan_id"],
        price_micro=_micro_from_decimal(data["price"], f"{where}: price"),
        per_min_pricing=_segments(data.get("per_min_pricing", []), f"{where}: per_min_pricing"),
        per_km_pricing=_segments(data.get("per_km_pricing", []), f"{where}: per_km_pricing"),
        name=_texts(data["name"], f"{where}: name"),
        description=_texts(data["description"], f"{where}: description"),
        currency=data["currency"],
        is_taxable=data["is_taxable"],
        url=data.get("url"),
        surge_pricing=data.get("surge_pricing", False),
    )


def _segments_to_gbfs(segments: Iterable[Segment]) -> list[dict[str, Any]]:
    out = []
    for s in segments:
        item: dict[str, Any] = {"start": s.start, "rate": _decimal_from_micro(s.rate_micro), "interval": s.interval}
        if s.end is not None:
            item["end"] = s.end
        out.append(item)
    return out


def plan_to_gbfs(plan: PricingPlan) -> dict[str, Any]:
    """``plan`` as a GBFS 3.0 ``plans`` entry, amounts as exact ``Decimal`` numbers of the currency unit."""
    doc: dict[str, Any] = {
        "plan_id": plan.plan_id,
        "name": [t._asdict() for t in plan.name],
        "currency": plan.currency,
        "price": _decimal_from_micro(plan.price_micro),
        "is_taxable": plan.is_taxable,
        "description": [t._asdict() for t in plan.description],
    }
    if plan.url is not None:
        doc["url"] = plan.url
    if plan.per_km_pricing:
        doc["per_km_pricing"] = _segments_to_gbfs(plan.per_km_pricing)
    if plan.per_min_pricing:
        doc["per_min_pricing"] = _segments_to_gbfs(plan.per_min_pricing)
    if plan.surge_pricing:
        doc["surge_pricing"] = True
    return doc


def plans_feed(plans: Iterable[PricingPlan], last_updated: datetime, ttl: int = 0) -> dict[str, Any]:
    """A GBFS 3.0 ``system_pricing_plans`` document of ``plans`` (``last_updated`` timezone-aware)."""
    if last_updated.tzinfo is None:
        raise ValueError("last_updated must be timezone-aware (GBFS 3.0 uses RFC 3339 with an offset)")
    return {
        "last_updated": last_updated.isoformat(timespec="seconds"),
        "ttl": ttl,
        "version": "3.0",
        "data": {"plans": [plan_to_gbfs(p) for p in plans]},
    }
