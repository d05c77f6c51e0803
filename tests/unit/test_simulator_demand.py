"""Demand and the fleet's make-up: Poisson arrivals following the time-of-day profile, the nearest vehicle within
a walk, trips that fail (flat battery, faulty vehicle), docked bikes at stations, kinds and their speeds."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime

import pytest

from sensors.messages import Event, EventType, Message, Position, VehicleKind
from simulator.app import Metering
from simulator.demand import Arrivals, demand_rng, nearest
from simulator.fleet import Fleet, FleetConfig
from simulator.scenario import DemandSpec, hour_of_day
from simulator.stations import parse_stations
from simulator.vehicle import PROFILES, Status
from simulator.zone import load_zone

MIDNIGHT_MS = round(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
RUSH = tuple(1.0 if h in (7, 8, 17) else 0.05 for h in range(24))
INSIDE = Position(51.2164, 4.3981)  # inside the zone (simulator/data/README.md)


def per_hour(times_ms: list[int]) -> Counter[int]:
    return Counter(hour_of_day(t, 0) for t in times_ms)


def test_arrivals_follow_the_time_of_day_profile() -> None:
    spec = DemandSpec(rate_per_hour=60, profile=RUSH)
    arrivals = Arrivals(spec, load_zone(), demand_rng(1), MIDNIGHT_MS).until(MIDNIGHT_MS + 24 * 3_600_000)
    hours = per_hour([a.at_ms for a in arrivals])
    for rush in (7, 8, 17):
        assert 40 <= hours[rush] <= 85  # 60 expected
    assert sum(hours[h] for h in range(24) if h not in (7, 8, 17)) <= 21 * 60 * 0.05 * 1.6  # 63 expected
    assert [a.at_ms for a in arrivals] == sorted(a.at_ms for a in arrivals)
    assert all(load_zone().near(a.position) for a in arrivals)  # on the streets: the border streets run along it


def test_arrivals_depend_only_on_the_seed_and_come_once_however_the_time_is_cut() -> None:
    spec = DemandSpec(rate_per_hour=120)
    whole = Arrivals(spec, load_zone(), demand_rng(4), MIDNIGHT_MS).until(MIDNIGHT_MS + 3_600_000)
    stepped = Arrivals(spec, load_zone(), demand_rng(4), MIDNIGHT_MS)
    pieces = [a for t in range(0, 3_600_001, 7_000) for a in stepped.until(MIDNIGHT_MS + t)]
    pieces += stepped.until(MIDNIGHT_MS + 3_600_000)
    assert pieces == whole and len(whole) > 60
    other = Arrivals(spec, load_zone(), demand_rng(5), MIDNIGHT_MS).until(MIDNIGHT_MS + 3_600_000)
    assert other != whole


def test_no_rate_or_a_zero_profile_means_nobody_comes() -> None:
    zero = DemandSpec(rate_per_hour=0)
    assert Arrivals(zero, load_zone(), demand_rng(1), MIDNIGHT_MS).until(MIDNIGHT_MS + 86_400_000) == []
    closed = DemandSpec(rate_per_hour=500, profile=(0.0,) * 24)
    assert Arrivals(closed, load_zone(), demand_rng(1), MIDNIGHT_MS).until(MIDNIGHT_MS + 86_400_000) == []


def demand_fleet(hours: float, **config: object) -> tuple[Fleet, list[Message]]:
    spec = config.pop("demand", DemandSpec(riders=40, rate_per_hour=30, profile=RUSH, walk_m=800))
    fleet = Fleet(FleetConfig(vehicles=20, seed=2, demand=spec, **config))  # type: ignore[arg-type]
    out: list[Message] = [*fleet.birth_messages(MIDNIGHT_MS)]
    for t in range(5_000, round(hours * 3_600_000) + 1, 5_000):
        out += fleet.step(MIDNIGHT_MS + t)
    return fleet, out


def events_of(messages: list[Message], kind: EventType) -> list[Event]:
    return [m for m in messages if isinstance(m, Event) and m.event_type is kind]


def test_a_seeded_day_has_more_unlocks_in_the_rush_hours_than_in_the_others() -> None:
    fleet, out = demand_fleet(12)
    unlocks = per_hour([e.timestamp for e in events_of(out, EventType.UNLOCK)])
    rush = unlocks[7] + unlocks[8]
    quiet = [unlocks[h] for h in range(12) if h not in (7, 8)]
    assert rush >= 30 and rush > 3 * max(quiet)
    assert fleet.demand_stats["unlocked"] == sum(unlocks.values())
    assert fleet.demand_stats["arrivals"] == sum(fleet.demand_stats[k] for k in fleet.demand_stats if k != "arrivals")


def test_with_demand_a_vehicle_is_only_taken_by_an_arriving_rider() -> None:
    fleet, out = demand_fleet(3, demand=DemandSpec(rate_per_hour=0))
    assert events_of(out, EventType.UNLOCK) == [] and fleet.demand_stats == Counter()


def test_the_rider_takes_the_nearest_vehicle_within_the_walk_not_one_on_a_trip_or_offline() -> None:
    fleet = Fleet(FleetConfig(vehicles=4, seed=1))
    a, b, c, d = fleet.vehicles
    a.position, b.position = Position(51.2164, 4.3990), Position(51.2164, 4.3984)
    c.position, d.position = Position(51.2164, 4.3982), Position(51.2164, 4.3983)
    c.status = Status.RIDING
    assert nearest(fleet.vehicles, INSIDE, 500, away=[d.vehicle_id]) is b
    assert nearest(fleet.vehicles, INSIDE, 500) is d
    assert nearest(fleet.vehicles, INSIDE, 10, away=[d.vehicle_id]) is None


def test_a_flat_battery_refuses_the_unlock_with_a_battery_low_event() -> None:
    fleet = Fleet(FleetConfig(vehicles=5, seed=1, mix=((VehicleKind.SCOOTER, 1.0),), demand=DemandSpec(walk_m=5000)))
    for v in fleet.vehicles:
        v.battery = 4.0
    fleet.birth_messages(MIDNIGHT_MS)
    out = [m for t in range(1, 3601) for m in fleet.step(MIDNIGHT_MS + t * 1000)]
    assert events_of(out, EventType.UNLOCK) == []
    assert len(events_of(out, EventType.BATTERY_LOW)) == fleet.demand_stats["battery_low"] > 0


def test_a_faulty_vehicle_refuses_the_rider() -> None:
    fleet = Fleet(FleetConfig(vehicles=3, seed=1, demand=DemandSpec(walk_m=5000), faults_per_hour=0.0))
    for v in fleet.vehicles:
        v.status, v.fault, v.fault_until = Status.FAULTY, "brakes", 10**9
    fleet.birth_messages(MIDNIGHT_MS)
    out = [m for t in range(1, 3601) for m in fleet.step(MIDNIGHT_MS + t * 1000)]
    assert events_of(out, EventType.UNLOCK) == [] and fleet.demand_stats["faulty"] > 0


def test_demand_keeps_the_riders_app_consent_on_every_unlock() -> None:
    metering = Metering(tariff_of=lambda kind: kind.value, fare_of=lambda kind, m, ms: m + ms // 1000)
    spec = DemandSpec(riders=10, rate_per_hour=120, walk_m=2000)
    fleet = Fleet(FleetConfig(vehicles=6, seed=9, demand=spec), metering=metering)
    fleet.birth_messages(MIDNIGHT_MS)
    out = [m for t in range(1, 1801) for m in fleet.step(MIDNIGHT_MS + t * 1000)]
    unlocks = events_of(out, EventType.UNLOCK)
    assert unlocks and all(u.consent is not None and u.consent.rider.checksum == u.rider for u in unlocks)


STATIONS = json.dumps(
    {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"station_id": "1"}, "geometry": {"type": "Point", "coordinates": c}}
            for c in ([4.3981, 51.2164], [4.3960, 51.2150], [4.41, 51.23])  # the last is outside the zone
        ],
    }
)


def test_stations_are_read_from_geojson_and_kept_inside_the_zone() -> None:
    assert parse_stations(STATIONS) == (Position(51.2164, 4.3981), Position(51.215, 4.396), Position(51.23, 4.41))
    assert parse_stations(STATIONS, load_zone()) == (Position(51.2164, 4.3981), Position(51.215, 4.396))


def test_the_docked_share_of_bikes_starts_at_stations_inside_the_zone_and_the_rest_float() -> None:
    stations = parse_stations(STATIONS)
    mix = ((VehicleKind.BIKE, 1.0), (VehicleKind.EBIKE, 1.0))
    fleet = Fleet(FleetConfig(vehicles=20, seed=1, mix=mix, docked_share=0.6), stations=stations)
    bikes = [v for v in fleet.vehicles if v.kind is VehicleKind.BIKE]
    docked = [v for v in bikes if v.position in stations[:2]]
    assert len(docked) == 6 and len(bikes) == 10
    assert not any(v.position in stations for v in fleet.vehicles if v.kind is not VehicleKind.BIKE)
    assert Counter(v.position for v in docked) == {stations[0]: 3, stations[1]: 3}


def test_docking_without_a_station_in_the_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="station inside the zone"):
        Fleet(FleetConfig(vehicles=4, seed=1, docked_share=1.0), stations=[Position(51.23, 4.41)])


def test_a_mix_with_scooters_gives_scooters_with_a_battery() -> None:
    mix = ((VehicleKind.BIKE, 1.0), (VehicleKind.SCOOTER, 1.0))
    fleet = Fleet(FleetConfig(vehicles=10, seed=1, mix=mix))
    scooters = [v for v in fleet.vehicles if v.kind is VehicleKind.SCOOTER]
    assert len(scooters) == 5 and all(v.vehicle_id.startswith("scooter-") and v.battery for v in scooters)


def test_bikes_ride_at_about_15_kmh_and_cars_never_above_30_kmh() -> None:
    kmh = {kind: profile.speed_mps * 3.6 for kind, profile in PROFILES.items()}
    assert 14 <= kmh[VehicleKind.BIKE] <= 16
    assert kmh[VehicleKind.CAR] * 1.15 <= 30  # a ride's speed varies by up to 15 %
    fleet, out = demand_fleet(9, mix=((VehicleKind.CAR, 1.0),))
    speeds = [m.speed_mps for m in out if hasattr(m, "speed_mps")]
    assert speeds and max(speeds) * 3.6 <= 30


def test_a_parked_vehicle_recharges_and_a_ride_drains_it() -> None:
    fleet, out = demand_fleet(9, mix=((VehicleKind.EBIKE, 1.0),))
    by_vehicle: dict[str, list[tuple[int, float]]] = {}
    for m in out:
        pct = getattr(m, "battery_pct", None)
        if pct is not None:
            by_vehicle.setdefault(m.vehicle_id, []).append((m.timestamp, pct))
    rises = falls = 0
    for readings in by_vehicle.values():
        for (_, a), (_, b) in zip(readings, readings[1:], strict=False):
            rises += b > a
            falls += b < a
    assert rises > 0 and falls > 0


def test_the_demand_rng_is_apart_from_the_fleets() -> None:
    assert demand_rng(2).random() == demand_rng(2).random() != random.Random(2).random()
