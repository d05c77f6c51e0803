"""Scenario files: every knob read from TOML, each refusal naming its key path and reason; the shipped examples;
the command line's overrides."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from sensors.messages import Position, VehicleKind
from simulator.scenario import (
    FLAT_PROFILE,
    Scenario,
    ScenarioError,
    StationSpec,
    hour_of_day,
    load_scenario,
    shipped_scenario,
)
from smartzone.cli import main
from smartzone.parts import fleet_config, make_fleet, scenario_plans
from smartzone.settings import Settings
from smartzone.simulate import chosen_scenario, scenario_of

FULL = """
name = "full"
seed = 3
start = 2026-12-01T07:30:00+01:00
minutes = 90
speed = 20

[fleet]
vehicles = 12
owners = 3
docked_share = 0.25
mix = { bike = 1, scooter = 2.5 }

[demand]
riders = 30
rate_per_hour = 45.5
walk_m = 250
profile = [0, 0, 0, 0, 0, 0, 1, 2, 3, 2, 1, 1, 1, 1, 1, 1, 2, 3, 2, 1, 1, 0.5, 0.2, 0]

[tariffs.scooter]
plan_id = "scooter-lab"
name = [{ text = "Lab scooter", language = "en" }]
currency = "EUR"
price = 0.5
is_taxable = false
description = [{ text = "0.50 to unlock, 0.30 a minute", language = "en" }]
per_min_pricing = [{ start = 0, rate = 0.3, interval = 1 }]

[faults]
gps_jitter = 0.1
gps_jitter_m = 20
drop = 0.01
duplicate = 0.02
reorder = 0.03
offline = 0.004
offline_mean_s = 120
sensor_fault = 0.005
"""


STATION = """name = "x"
[[fleet.stations]]
name = "a"
lat = 51.2149
lon = 4.3963
[[fleet.stations]]
name = "b"
lat = {lat}
lon = {lon}
"""
"""Two stations of a scenario; the first inside the zone, the second where the test puts it."""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text, "utf-8")
    return path


def test_every_knob_is_read_from_the_file(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, FULL))
    assert (scenario.name, scenario.seed, scenario.minutes, scenario.speed) == ("full", 3, 90.0, 20.0)
    assert scenario.start == datetime(2026, 12, 1, 6, 30, tzinfo=UTC)
    assert scenario.start_ms == round(datetime(2026, 12, 1, 6, 30, tzinfo=UTC).timestamp() * 1000)
    fleet = scenario.fleet
    assert (fleet.vehicles, fleet.owners, fleet.docked_share) == (12, 3, 0.25)
    assert fleet.mix == ((VehicleKind.BIKE, 1.0), (VehicleKind.SCOOTER, 2.5))
    assert scenario.demand is not None
    assert (scenario.demand.riders, scenario.demand.rate_per_hour, scenario.demand.walk_m) == (30, 45.5, 250.0)
    assert scenario.demand.profile[8] == 3.0 and len(scenario.demand.profile) == 24
    assert scenario.tariffs[VehicleKind.SCOOTER]["plan_id"] == "scooter-lab"
    faults = scenario.faults
    assert (faults.gps_jitter, faults.gps_jitter_m, faults.drop, faults.duplicate, faults.reorder) == (
        0.1,
        20.0,
        0.01,
        0.02,
        0.03,
    )
    assert (faults.offline, faults.offline_mean_s, faults.sensor_fault) == (0.004, 120.0, 0.005)


def test_a_scenario_describes_itself_as_json_data(tmp_path: Path) -> None:
    described = load_scenario(write(tmp_path, FULL)).describe()
    assert json.loads(json.dumps(described)) == described
    assert described["start"] == "2026-12-01T07:30:00+01:00" and described["fleet"]["mix"] == {
        "bike": 1,
        "scooter": 2.5,
    }
    assert described["tariffs"] == {"scooter": "scooter-lab"} and described["faults"]["drop"] == 0.01
    assert described["demand"]["profile"][8] == 3


def test_a_file_with_a_name_only_takes_the_defaults(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, 'name = "bare"\n'))
    assert scenario == Scenario(name="bare")
    assert scenario.demand is None and scenario.start is None and not scenario.faults.on_the_wire


def test_the_composition_root_parses_the_tariffs_and_builds_the_fleet_of_the_scenario(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, FULL))
    plans = scenario_plans(scenario)
    assert plans[VehicleKind.SCOOTER].plan_id == "scooter-lab" and plans[VehicleKind.SCOOTER].price_micro == 500_000
    assert plans[VehicleKind.BIKE] == scenario_plans(None)[VehicleKind.BIKE]
    config = fleet_config(Settings(chain_id=5), 5, scenario)
    assert (config.vehicles, config.seed, config.owners, config.riders) == (12, 3, 3, 30)
    assert config.utc_offset_s == 3600 and config.demand == scenario.demand and config.faults == scenario.faults


def test_a_tariff_that_is_no_pricing_plan_is_refused_by_the_composition_root_naming_its_kind(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, 'name = "t"\n[tariffs.car]\nplan_id = "car-x"\n'))
    with pytest.raises(ScenarioError, match=r"^tariffs\.car: pricing plan lacks "):
        scenario_plans(scenario)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('name = "x"\n[faults]\ndrop = 1.5\n', "faults.drop: must be between 0 and 1, not 1.5"),
        ('name = "x"\n[faults]\nreorder = -0.1\n', "faults.reorder: must be between 0 and 1, not -0.1"),
        ('name = "x"\n[faults]\nduplicate = "often"\n', "faults.duplicate: must be a number, not 'often'"),
        ('name = "x"\n[faults]\nlatency = 0.1\n', "faults.latency: unknown key"),
        ('name = "x"\ncolour = "red"\n', "colour: unknown key"),
        ("seed = 1\n", "name: is required"),
        ('name = " "\n', "name: must not be empty"),
        ('name = "x"\nseed = -1\n', "seed: must be at least 0, not -1"),
        ('name = "x"\nseed = 1.5\n', "seed: must be an integer, not 1.5"),
        ('name = "x"\nstart = 2026-12-01T08:00:00\n', "start: must name its UTC offset"),
        ('name = "x"\nstart = "tomorrow"\n', "start: must be a date-time, not 'tomorrow'"),
        ('name = "x"\nspeed = 0\n', "speed: 0 (as fast as possible) needs a number of minutes (--minutes)"),
        ('name = "x"\nminutes = -5\n', "minutes: must be at least 0, not -5"),
        ('name = "x"\n[fleet]\nvehicles = 0\n', "fleet.vehicles: must be at least 1, not 0"),
        ('name = "x"\n[fleet]\nvehicles = true\n', "fleet.vehicles: must be an integer, not True"),
        ('name = "x"\n[fleet]\ndocked_share = 2\n', "fleet.docked_share: must be between 0 and 1, not 2"),
        ('name = "x"\n[fleet]\nmix = { bike = -1 }\n', "fleet.mix.bike: must be at least 0, not -1"),
        ('name = "x"\n[fleet]\nmix = { unicycle = 1 }\n', "fleet.mix.unicycle: unknown key"),
        ('name = "x"\n[fleet]\nmix = { bike = 0 }\n', "fleet.mix: needs a positive weight"),
        ('name = "x"\nfleet = 3\n', "fleet: must be a table, not 3"),
        ('name = "x"\n[demand]\nprofile = [1, 2]\n', "demand.profile: must list 24 values, one per hour, not 2"),
        ('name = "x"\n[demand]\nprofile = [' + "1, " * 23 + "-1]\n", "demand.profile: hour 23: must be a non"),
        ('name = "x"\n[demand]\nwalk_m = 0\n', "demand.walk_m: must be positive, not 0"),
        ('name = "x"\n[demand]\nriders = 0\n', "demand.riders: must be at least 1, not 0"),
        ('name = "x"\n[tariffs.car]\nprice = 1\n', "tariffs.car: must be a GBFS pricing plan with a plan_id"),
        ('name = "x"\n[tariffs.boat]\nplan_id = "b"\n', "tariffs.boat: unknown key"),
        ('name = "x"\n[faults]\noffline_mean_s = 0\n', "faults.offline_mean_s: must be positive, not 0"),
        ('name = "x"\nnot toml at all\n', "not TOML"),
        (STATION.format(lat=51.2200, lon=4.3963), "fleet.stations[1]: station 'b' at lat 51.22, lon 4.3963 is outside"),
        (STATION.format(lat=95, lon=4.3963), "fleet.stations[1].lat: must be between -90 and 90, not 95"),
        ('name = "x"\n[[fleet.stations]]\nname = "a"\nlat = 51.2149\n', "fleet.stations[0].lon: is required"),
        (STATION.format(lat='"north"', lon=4.3963), "fleet.stations[1].lat: must be a number, not 'north'"),
        (STATION.format(lat=51.2125, lon=4.394) + "capacity = 12\n", "fleet.stations[1].capacity: unknown key"),
        ('name = "x"\n[fleet]\nstations = []\n', "fleet.stations: must list at least one station"),
        ('name = "x"\n[fleet]\nstations = [3]\n', "fleet.stations[0]: must be a table with name, lat and lon"),
    ],
)
def test_a_bad_scenario_is_refused_naming_the_file_the_key_path_and_the_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as refused:
        load_scenario(path)
    assert str(refused.value).startswith(f"{path}: ")
    assert message in str(refused.value)


def test_a_bad_scenario_file_is_one_line_of_the_simulate_command_naming_the_file_and_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMARTZONE_DATA_DIR", str(tmp_path))
    path = write(tmp_path, STATION.format(lat=51.2300, lon=4.3963))
    assert main(["simulate", "--scenario", str(path), "--no-register"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"smartzone: error: {path}: fleet.stations[1]: station 'b' at lat 51.23, lon 4.3963 is outside the zone"
    ]


def test_the_scenarios_stations_are_where_its_docked_bikes_stand(tmp_path: Path) -> None:
    text = STATION.format(lat=51.2125, lon=4.3940).replace('name = "x"', 'name = "x"\nminutes = 5')
    text += "[fleet]\nvehicles = 8\ndocked_share = 1.0\nmix = { bike = 1 }\n"
    scenario = load_scenario(write(tmp_path, text))
    assert scenario.fleet.stations == (
        StationSpec("a", Position(51.2149, 4.3963)),
        StationSpec("b", Position(51.2125, 4.394)),
    )
    assert scenario.describe()["fleet"]["stations"] == [
        {"name": "a", "lat": 51.2149, "lon": 4.3963},
        {"name": "b", "lat": 51.2125, "lon": 4.394},
    ]
    fleet = make_fleet(Settings(data_dir=tmp_path), 31337, first_seq=1, scenario=scenario)
    stood = Counter(v.position for v in fleet.vehicles)
    assert stood == {Position(51.2149, 4.3963): 4, Position(51.2125, 4.394): 4}


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="nowhere.toml: cannot read"):
        load_scenario(tmp_path / "nowhere.toml")


@pytest.mark.parametrize("name", ["weekday", "tiny", "stress-10k"])
def test_the_shipped_examples_load(name: str) -> None:
    scenario = load_scenario(shipped_scenario(name))
    assert scenario.name == name and scenario.start is not None and scenario.minutes > 0
    assert scenario.demand is not None and len(scenario.demand.profile) == 24


def test_the_shipped_examples_are_a_weekday_a_tiny_run_and_ten_thousand_vehicles() -> None:
    weekday, tiny, stress = (load_scenario(shipped_scenario(n)) for n in ("weekday", "tiny", "stress-10k"))
    assert weekday.minutes == 24 * 60 and weekday.start is not None and weekday.start.weekday() < 5
    assert weekday.fleet.docked_share > 0 and VehicleKind.SCOOTER in dict(weekday.fleet.mix)
    assert tiny.fleet.vehicles <= 10 and tiny.faults == type(tiny.faults)()
    assert stress.fleet.vehicles == 10_000
    with pytest.raises(ScenarioError, match="no such shipped scenario"):
        shipped_scenario("holiday")


def test_the_profile_hour_is_local_to_the_starts_offset() -> None:
    at = round(datetime(2026, 12, 1, 7, 59, tzinfo=UTC).timestamp() * 1000)
    assert hour_of_day(at, 0) == 7 and hour_of_day(at, 3600) == 8 and hour_of_day(at, -8 * 3600) == 23


def args(**given: object) -> argparse.Namespace:
    defaults = {"scenario_file": None, "run_seed": None, "run_start": None, "run_minutes": None}
    return argparse.Namespace(**{**defaults, "run_speed": None, "run_vehicles": None, **given})


def test_the_command_line_overrides_the_scenario_file(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    chosen = chosen_scenario(
        Settings(),
        args(scenario_file=path, run_seed=9, run_start="2027-01-04T06:00:00Z", run_minutes=5, run_speed=0),
    )
    assert (chosen.seed, chosen.minutes, chosen.speed, chosen.fleet.vehicles) == (9, 5.0, 0.0, 12)
    assert chosen.start == datetime(2027, 1, 4, 6, tzinfo=UTC)
    assert chosen_scenario(Settings(), args(scenario_file=path, run_vehicles=3)).fleet.vehicles == 3
    assert chosen_scenario(Settings(), args(scenario_file=path)) == load_scenario(path)


def test_a_shipped_scenario_may_be_named_on_the_command_line() -> None:
    assert chosen_scenario(Settings(), args(scenario_file=Path("tiny"))).name == "tiny"


def test_without_a_file_the_scenario_is_the_settings_fleet_with_the_overrides() -> None:
    settings = Settings(seed=4, vehicles=7, owners=2, sim_minutes=3, speed=5)
    base = scenario_of(settings)
    assert (base.seed, base.fleet.vehicles, base.fleet.owners, base.minutes, base.speed) == (4, 7, 2, 3.0, 5.0)
    assert base.demand is None and base.start is None
    assert chosen_scenario(settings, args(run_start="2026-12-01T08:00:00+01:00")).start_ms == round(
        datetime(2026, 12, 1, 8, tzinfo=timezone(timedelta(hours=1))).timestamp() * 1000
    )


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (args(run_start="2026-12-01T08:00:00"), "--start: must name its UTC offset"),
        (args(run_start="yesterday"), "--start: not an ISO 8601 date-time"),
        (args(run_vehicles=0), "fleet.vehicles: must be at least 1"),
        (args(run_speed=0, run_minutes=0), "needs a number of minutes (--minutes)"),
        (args(run_seed=-3), "seed: must be at least 0, not -3"),
        (args(run_speed=float("nan")), "speed: must be at least 0, not nan"),
    ],
)
def test_a_bad_override_is_refused_with_its_reason(given: argparse.Namespace, message: str) -> None:
    with pytest.raises(ScenarioError) as refused:
        chosen_scenario(Settings(), given)
    assert message in str(refused.value)


def test_the_flat_profile_is_one_every_hour() -> None:
    assert FLAT_PROFILE == (1.0,) * 24
