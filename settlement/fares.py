"""Fares: a trip's distance and duration priced by its vehicle kind's plan, in integer micro-euro (pure).

The plans are GBFS 3.0 pricing plans (``settlement.pricing``, where the rules are written): the unlock price
once, then each rate per *started* minute or kilometre, so a fare is a whole number of micro-euro with no
rounding of money. ``Tariff`` and ``Fare`` are the older names of ``PricingPlan`` and ``FareBreakdown``.
"""

from __future__ import annotations

from collections.abc import Mapping

from sensors.messages import VehicleKind
from settlement import pricing
from settlement.pricing import FareBreakdown, PricingPlan, flat_plan

__all__ = ["DEFAULT_PLANS", "DEFAULT_TARIFFS", "MICRO_PER_EUR", "Fare", "Tariff", "format_eur", "price"]

MICRO_PER_EUR = 1_000_000

Tariff = PricingPlan
Fare = FareBreakdown

DEFAULT_PLANS: Mapping[VehicleKind, PricingPlan] = {
    VehicleKind.BIKE: flat_plan("bike", 500_000, 50_000, name="Bike", about="€0.50 to unlock, €0.05 per minute."),
    VehicleKind.EBIKE: flat_plan(
        "ebike", 1_000_000, 150_000, name="E-bike", about="€1.00 to unlock, €0.15 per minute."
    ),
    VehicleKind.SCOOTER: flat_plan(
        "scooter", 1_000_000, 200_000, name="Scooter", about="€1.00 to unlock, €0.20 per minute."
    ),
    VehicleKind.CAR: flat_plan(
        "car", 0, 300_000, 250_000, name="Car", about="No unlock fee, €0.30 per minute and €0.25 per km."
    ),
}
DEFAULT_TARIFFS = DEFAULT_PLANS


def price(distance_m: int, duration_s: int, tariff: PricingPlan) -> FareBreakdown:
    """The fare under ``tariff`` of a trip of ``distance_m`` metres lasting ``duration_s`` (started) seconds.

    Raises ``ValueError`` for a negative or fractional distance or duration: only a plausible trip is priced.
    """
    return pricing.price(tariff, distance_m, duration_s)


def format_eur(micro: int) -> str:
    """Micro-euro as euro with two decimals, rounded half up (for display only)."""
    cents = (abs(micro) + 5_000) // 10_000
    sign = "-" if micro < 0 else ""
    return f"{sign}€{cents // 100}.{cents % 100:02d}"
