"""GBFS 3.0 pricing plans: per started interval, exact micro-units, no negative total, the owner/fee split."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.fares import DEFAULT_PLANS
from settlement.pricing import (
    FareBreakdown,
    PricingPlan,
    Segment,
    Text,
    flat_plan,
    plan_from_gbfs,
    plan_to_gbfs,
    plans_feed,
    price,
    split,
)

SCHEMAS = Path(__file__).resolve().parents[3] / "shared" / "gbfs-json-schema" / "v3.0"
EUR = 1_000_000


def per_min(*segments: Segment, base: int = 0) -> PricingPlan:
    return PricingPlan("p", base, per_min_pricing=segments)


def per_km(*segments: Segment, base: int = 0) -> PricingPlan:
    return PricingPlan("p", base, per_km_pricing=segments)


@pytest.mark.parametrize(("duration_s", "minutes"), [(0, 0), (1, 1), (59, 1), (60, 1), (61, 2), (600, 10), (601, 11)])
def test_time_is_charged_per_started_minute(duration_s: int, minutes: int) -> None:
    assert price(per_min(Segment(0, 7, 1)), 0, duration_s).time_micro == 7 * minutes


@pytest.mark.parametrize(
    ("distance_m", "kms"), [(0, 0), (1, 1), (999, 1), (1000, 1), (1001, 2), (10_000, 10), (10_001, 11)]
)
def test_distance_is_charged_per_started_km(distance_m: int, kms: int) -> None:
    assert price(per_km(Segment(0, 3, 1)), distance_m, 0).distance_micro == 3 * kms


@pytest.mark.parametrize(
    ("duration_s", "charges"),
    [(600, 0), (601, 1), (660, 1), (661, 2), (1140, 9), (1141, 10), (1199, 10), (1200, 10), (1201, 10), (99_999, 10)],
)
def test_a_segment_starts_at_its_start_and_stops_before_its_end(duration_s: int, charges: int) -> None:
    # GBFS: start inclusive; "if end is 20 the rate no longer applies after 19:59"
    assert price(per_min(Segment(10, 1, 1, end=20)), 0, duration_s).time_micro == charges


@pytest.mark.parametrize(("duration_s", "charges"), [(0, 0), (300, 0), (301, 1), (3600, 1), (10**6, 1)])
def test_an_interval_of_zero_is_charged_once_when_the_trip_goes_past_the_start(duration_s: int, charges: int) -> None:
    assert price(per_min(Segment(5, EUR, 0)), 0, duration_s).time_micro == charges * EUR


@pytest.mark.parametrize(("duration_s", "charges"), [(1, 1), (1800, 1), (1801, 2), (2700, 2), (10**6, 2)])
def test_an_interval_is_charged_if_it_begins_before_the_end(duration_s: int, charges: int) -> None:
    assert price(per_min(Segment(0, 1, 30, end=45)), 0, duration_s).time_micro == charges


GBFS_EXAMPLE_1 = """{"plan_id": "plan2", "name": [{"text": "One-Way", "language": "en"}], "currency": "USD",
  "price": 2.00, "is_taxable": false, "description": [{"text": "Includes 10km", "language": "en"}],
  "per_km_pricing": [{"start": 10, "rate": 1.00, "interval": 1, "end": 25},
                     {"start": 25, "rate": 0.50, "interval": 1}, {"start": 25, "rate": 3.00, "interval": 5}]}"""


@pytest.mark.parametrize(
    ("distance_m", "total"),
    [(10_000, 2), (10_001, 3), (25_000, 17), (25_001, Decimal("20.5")), (30_000, Decimal("22.5")), (30_001, 26)],
)
def test_the_first_example_of_the_gbfs_reference_prices_as_it_describes(distance_m: int, total: Decimal) -> None:
    plan = plan_from_gbfs(json.loads(GBFS_EXAMPLE_1, parse_float=Decimal))
    assert price(plan, distance_m, 3600).total_micro == total * EUR


GBFS_EXAMPLE_2 = """{"plan_id": "plan3", "name": [], "currency": "CAD", "price": 3.00, "is_taxable": true,
  "description": [], "per_km_pricing": [{"start": 0, "rate": 0.25, "interval": 1}],
  "per_min_pricing": [{"start": 0, "rate": 0.50, "interval": 1}]}"""


def test_a_plan_of_the_second_gbfs_example_charges_time_and_distance_side_by_side() -> None:
    plan = plan_from_gbfs(json.loads(GBFS_EXAMPLE_2))  # floats, read by their shortest repr
    assert price(plan, 2500, 630) == FareBreakdown(3_000_000, 5_500_000, 750_000)


def test_a_discount_is_allowed_while_no_trip_can_cost_less_than_zero() -> None:
    plan = per_min(Segment(0, -100_000, 1, end=10), base=EUR)
    assert plan.lowest_micro == 0
    assert [price(plan, 0, s).total_micro for s in (0, 1, 540, 541, 600, 10**6)] == [EUR, 900_000, 100_000, 0, 0, 0]
    saw_tooth = per_min(Segment(0, 1, 1), Segment(0, -5, 5), base=4)
    assert saw_tooth.lowest_micro == 0 and price(saw_tooth, 0, 1).total_micro == 0


@pytest.mark.parametrize(
    "plan",
    [
        lambda: per_min(Segment(0, -1, 1)),  # unbounded discount
        lambda: per_min(Segment(0, -101, 0), base=100),  # one-off discount above the unlock price
        lambda: per_min(Segment(0, -100_001, 1, end=10), base=EUR),
        lambda: per_min(Segment(0, 1, 1), Segment(0, -5, 5), base=3),  # dips to -1 within each 5 minutes
        lambda: per_min(Segment(0, 100_000, 1), Segment(60, -200_000, 1), base=10 * EUR),  # goes down after 1 h
        lambda: per_km(Segment(10**6, -1, 0), base=10 * EUR),  # too far out to be shown safe
    ],
)
def test_a_plan_that_could_give_a_negative_total_is_refused(plan: Any) -> None:
    with pytest.raises(ValueError, match="negative total"):
        plan()


@pytest.mark.parametrize(
    "make",
    [
        lambda: PricingPlan("", 0),
        lambda: PricingPlan("p", -1),
        lambda: PricingPlan("p", 10**15),
        lambda: PricingPlan("p", 0, currency="euro"),
        lambda: Segment(-1, 1, 1),
        lambda: Segment(0, 1, -1),
        lambda: Segment(0, 0.5, 1),  # type: ignore[arg-type]
        lambda: Segment(5, 1, 1, end=5),
        lambda: Segment(0, 1, True),
    ],
)
def test_a_plan_or_segment_refuses_what_gbfs_does_not_allow(make: Any) -> None:
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize(("distance_m", "duration_s"), [(-1, 0), (0, -1), (0.5, 0), (0, 1.0), (False, 0)])
def test_only_whole_non_negative_trips_are_priced(distance_m: Any, duration_s: Any) -> None:
    with pytest.raises(ValueError):
        price(DEFAULT_PLANS[next(iter(DEFAULT_PLANS))], distance_m, duration_s)


def test_the_zone_fee_is_rounded_down_and_the_owner_gets_the_rest_for_every_small_total() -> None:
    for total in range(0, 41):
        last_fee = 0
        for bps in range(0, 10_001):
            owner, fee = split(total, bps)
            assert owner + fee == total and fee == int(Fraction(total * bps, 10_000)) and fee >= last_fee
            last_fee = fee
    assert split(999, 10_000) == (0, 999) and split(999, 0) == (999, 0) and split(19_999, 5) == (19_990, 9)


@pytest.mark.parametrize(("total", "bps"), [(-1, 0), (1, -1), (1, 10_001), (1.0, 5), (1, True)])
def test_a_split_refuses_a_negative_total_or_a_share_outside_0_to_10000_bps(total: Any, bps: Any) -> None:
    with pytest.raises(ValueError):
        split(total, bps)


@pytest.mark.parametrize(
    ("amount", "micro"),
    [(Decimal("0.05"), 50_000), (0.05, 50_000), (0.1, 100_000), (3, 3 * EUR), ("1.000001", 1_000_001), (0, 0)],
)
def test_a_gbfs_amount_becomes_exact_micro_units(amount: Any, micro: int) -> None:
    doc = plan_to_gbfs(DEFAULT_PLANS[next(iter(DEFAULT_PLANS))]) | {"price": amount}
    assert plan_from_gbfs(doc).price_micro == micro


@pytest.mark.parametrize("amount", [Decimal("0.0000001"), 1e-7, "NaN", Decimal("Infinity"), True, None, "x", -1])
def test_a_gbfs_amount_finer_than_a_micro_unit_or_not_a_number_is_refused(amount: Any) -> None:
    doc = plan_to_gbfs(DEFAULT_PLANS[next(iter(DEFAULT_PLANS))]) | {"price": amount}
    with pytest.raises(ValueError):
        plan_from_gbfs(doc)


@pytest.mark.parametrize(
    "change",
    [
        {"name": "Bike"},  # a GBFS 2.x string, not a list of translations
        {"is_taxable": "no"},
        {"per_min_pricing": [{"start": 0, "rate": 0.1}]},
        {"per_min_pricing": [{"start": 0, "rate": 0.1, "interval": 1.5}]},
        {"per_min_pricing": [{"start": 0, "rate": -0.1, "interval": 1}]},
    ],
)
def test_a_malformed_gbfs_plan_is_refused_with_its_field(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        plan_from_gbfs(plan_to_gbfs(DEFAULT_PLANS[next(iter(DEFAULT_PLANS))]) | change)
    with pytest.raises(ValueError, match="lacks"):
        plan_from_gbfs({"plan_id": "p", "price": 1})


def test_the_default_plans_go_to_gbfs_and_back_unchanged_through_json_text() -> None:
    for plan in DEFAULT_PLANS.values():
        text = json.dumps(plan_to_gbfs(plan), default=float)
        assert plan_from_gbfs(json.loads(text)) == plan
        assert plan_from_gbfs(json.loads(text, parse_float=Decimal)) == plan
    assert plan_to_gbfs(DEFAULT_PLANS[next(iter(DEFAULT_PLANS))])["per_min_pricing"] == [
        {"start": 0, "rate": Decimal("0.05"), "interval": 1}
    ]


def pricing_plans_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    referencing = pytest.importorskip("referencing")
    if not SCHEMAS.is_dir():
        pytest.skip(f"the official GBFS 3.0 schemas are not at {SCHEMAS}")
    schemas = [json.loads(p.read_text()) for p in sorted(SCHEMAS.glob("*.json"))]
    registry = referencing.Registry().with_resources(
        (s["$id"], referencing.Resource.from_contents(s, default_specification=referencing.jsonschema.DRAFT7))
        for s in schemas
    )  # offline: any $ref between the schemas resolves here, never over the network
    schema = json.loads((SCHEMAS / "system_pricing_plans.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


def test_the_default_plans_make_a_feed_valid_against_the_official_gbfs_3_schema() -> None:
    validator = pricing_plans_validator()
    feed = plans_feed(DEFAULT_PLANS.values(), datetime(2026, 11, 29, 12, 0, tzinfo=UTC), ttl=60)
    document = json.loads(json.dumps(feed, default=float))
    assert sorted(e.message for e in validator.iter_errors(document)) == []
    assert [p["plan_id"] for p in document["data"]["plans"]] == ["bike", "ebike", "scooter", "car"]
    broken = document | {"data": {"plans": [document["data"]["plans"][0] | {"price": -1}]}}
    assert not validator.is_valid(broken)


def test_a_feed_needs_a_timezone_aware_time() -> None:
    with pytest.raises(ValueError):
        plans_feed([], datetime(2026, 11, 29, 12, 0))


def test_a_flat_plan_names_and_describes_itself() -> None:
    plan = flat_plan("x", 1, 2, 3, name="X", about="one, two, three")
    assert (plan.name, plan.description) == ((Text("X"),), (Text("one, two, three"),))
    assert price(plan, 1, 1) == FareBreakdown(1, 2, 3)


# --- properties -----------------------------------------------------------------------------------------------


def segments(rates: st.SearchStrategy[int], bound: int = 40) -> st.SearchStrategy[tuple[Segment, ...]]:
    one = st.builds(
        lambda start, rate, interval, span: Segment(start, rate, interval, None if span is None else start + span),
        st.integers(0, bound),
        rates,
        st.integers(0, 6),
        st.none() | st.integers(1, bound),
    )
    return st.lists(one, max_size=4).map(tuple)


plans = st.builds(
    lambda base, mins, kms: PricingPlan("p", base, per_min_pricing=mins, per_km_pricing=kms),
    st.integers(0, 10 * EUR),
    segments(st.integers(0, EUR)),
    segments(st.integers(0, EUR)),
)


@settings(max_examples=300, deadline=None)
@given(
    plans,
    st.integers(0, 500_000),
    st.integers(0, 200_000),
    st.integers(0, 500_000),
    st.integers(0, 200_000),
    st.integers(0, 10_000),
)
def test_a_fare_is_never_negative_never_falls_as_a_trip_grows_and_splits_whole(
    plan: PricingPlan, distance_m: int, duration_s: int, more_m: int, more_s: int, bps: int
) -> None:
    fare = price(plan, distance_m, duration_s)
    assert fare.total_micro >= plan.price_micro >= 0
    assert price(plan, distance_m + more_m, duration_s).total_micro >= fare.total_micro
    assert price(plan, distance_m, duration_s + more_s).total_micro >= fare.total_micro
    owner, fee = split(fare.total_micro, bps)
    assert owner + fee == fare.total_micro and 0 <= fee <= fare.total_micro * bps / 10_000 and owner >= 0


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 50), segments(st.integers(-30, 30), bound=8))
def test_a_plan_with_discounts_is_accepted_exactly_when_no_trip_costs_less_than_zero(
    base: int, mins: tuple[Segment, ...]
) -> None:
    # boundaries here are at most 16 minutes and every period divides 60, so 3 hours show the lowest fare; a
    # fare is constant on each (n, n + 1] minutes, so a sample every 7 s sees every value
    lowest = base + min(sum(s.rate_micro * s.charges(t, 60) for s in mins) for t in range(0, 3 * 3600, 7))
    endless_drift = sum(s.rate_micro * (60 // s.interval) for s in mins if s.end is None and s.interval)
    try:
        plan = PricingPlan("p", base, per_min_pricing=mins)
    except ValueError:
        assert lowest < 0 or endless_drift < 0
    else:
        assert lowest >= 0 and endless_drift >= 0 and plan.lowest_micro == lowest
