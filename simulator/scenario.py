"""Scenarios: every knob of a simulated run in one frozen object, read from a TOML file and validated.

A scenario file looks like this (every key but ``name`` may be left out; see ``simulator/scenarios/``)::

    name = "weekday"
    seed = 7
    start = 2026-12-01T06:00:00+01:00   # with its UTC offset; left out: when the run starts
    minutes = 1440                      # simulated minutes; 0: until stopped
    speed = 0                           # simulated seconds per wall second; 0: as fast as possible

    [fleet]
    vehicles = 200
    owners = 8
    docked_share = 0.5                  # share of the bikes that start docked at a Velo station
    mix = { bike = 4, ebike = 3, scooter = 2, car = 1 }

    [[fleet.stations]]                  # left out: the shipped Velo stations; each must lie inside the zone
    name = "Sint-Andriesplaats"
    lat = 51.2149
    lon = 4.3963

    [demand]                            # left out: each vehicle is taken after an idle time of its own
    riders = 400
    rate_per_hour = 120                 # arrivals per hour at a profile value of 1
    walk_m = 400
    profile = [0.1, 0.05, ...]          # 24 values, one per hour of the day (local to the start's offset)

    [tariffs.ebike]                     # a GBFS 3.0 pricing plan replacing the ebike's default
    plan_id = "ebike-weekday"
    ...

    [faults]                            # each a rate per message, from 0 to 1
    gps_jitter = 0.05
    gps_jitter_m = 15
    drop = 0.001
    duplicate = 0.001
    reorder = 0.001
    offline = 0.0005
    offline_mean_s = 300
    sensor_fault = 0.0002

Every refusal is a ``ScenarioError`` naming the key path and the reason, such as
``faults.drop: must be between 0 and 1, not 1.5``, after the file when read from one (``load_scenario``); unknown
keys are refused. A tariff is checked for its shape
only (a table with a ``plan_id``): the composition root parses it, since the simulator does not import settlement.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sensors.errors import SmartZoneError
from sensors.messages import Position, VehicleKind

if TYPE_CHECKING:
    from simulator.zone import Zone

HOURS = 24
FLAT_PROFILE: tuple[float, ...] = (1.0,) * HOURS


class ScenarioError(SmartZoneError, ValueError):
    """A scenario that cannot be run; the message names the key path and the reason."""


@dataclass(frozen=True, slots=True)
class StationSpec:
    """A docking station of the scenario: its name and where it stands (inside the zone)."""

    name: str
    position: Position


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """The vehicles: how many, the mix of kinds (weights), how many owners share them, the docked share of bikes
    and the stations they stand at (None: the shipped Velo stations)."""

    vehicles: int = 20
    mix: tuple[tuple[VehicleKind, float], ...] = (
        (VehicleKind.BIKE, 5.0),
        (VehicleKind.EBIKE, 3.0),
        (VehicleKind.CAR, 2.0),
    )
    owners: int = 4
    docked_share: float = 0.0
    stations: tuple[StationSpec, ...] | None = None

    @property
    def station_positions(self) -> tuple[Position, ...] | None:
        """Where the scenario's stations stand, or None for the shipped ones."""
        return None if self.stations is None else tuple(s.position for s in self.stations)


@dataclass(frozen=True, slots=True)
class DemandSpec:
    """Riders arriving as a Poisson process of ``rate_per_hour * profile[hour]`` arrivals per hour; each takes
    the nearest vehicle within ``walk_m`` metres."""

    riders: int = 50
    rate_per_hour: float = 60.0
    profile: tuple[float, ...] = FLAT_PROFILE
    walk_m: float = 400.0


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Faults, each a probability per message: GPS jitter (up to ``gps_jitter_m`` metres), a dropped, duplicated
    or reordered message, a vehicle going offline (for ``offline_mean_s`` on average) and a sensor fault."""

    gps_jitter: float = 0.0
    gps_jitter_m: float = 10.0
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    offline: float = 0.0
    offline_mean_s: float = 300.0
    sensor_fault: float = 0.0

    @property
    def on_the_wire(self) -> bool:
        """Whether any fault acts on published messages (drop, duplicate, reorder)."""
        return self.drop > 0 or self.duplicate > 0 or self.reorder > 0


@dataclass(frozen=True, slots=True)
class Scenario:
    """Every knob of a run. ``start`` None: when the run starts (then payloads differ between runs);
    ``minutes`` 0: until stopped; ``speed`` 0: as fast as possible; ``demand`` None: each vehicle is taken after
    an idle time of its own. ``tariffs`` holds GBFS pricing-plan tables per kind, parsed by the composition root."""

    name: str
    seed: int = 7
    start: datetime | None = None
    minutes: float = 0.0
    speed: float = 10.0
    fleet: FleetSpec = FleetSpec()
    demand: DemandSpec | None = None
    tariffs: Mapping[VehicleKind, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    faults: FaultRates = FaultRates()

    @property
    def start_ms(self) -> int | None:
        """The start in milliseconds since the Unix epoch, if fixed."""
        return None if self.start is None else round(self.start.timestamp() * 1000)

    def describe(self) -> dict[str, Any]:
        """The scenario as JSON-able data (such as a recording's header names it): every knob but the tariffs,
        of which the plan ids."""
        demand = self.demand
        return {
            "name": self.name,
            "seed": self.seed,
            "start": self.start.isoformat() if self.start is not None else None,
            "minutes": self.minutes,
            "speed": self.speed,
            "fleet": {
                "vehicles": self.fleet.vehicles,
                "owners": self.fleet.owners,
                "docked_share": self.fleet.docked_share,
                "mix": {kind.value: weight for kind, weight in self.fleet.mix},
                **(
                    {}
                    if self.fleet.stations is None
                    else {
                        "stations": [
                            {"name": s.name, "lat": s.position.lat, "lon": s.position.lon} for s in self.fleet.stations
                        ]
                    }
                ),
            },
            "demand": None
            if demand is None
            else {
                "riders": demand.riders,
                "rate_per_hour": demand.rate_per_hour,
                "walk_m": demand.walk_m,
                "profile": list(demand.profile),
            },
            "tariffs": {kind.value: plan["plan_id"] for kind, plan in self.tariffs.items()},
            "faults": {name: getattr(self.faults, name) for name in FaultRates.__slots__},
        }

    def overridden(
        self,
        *,
        seed: int | None = None,
        start: datetime | None = None,
        minutes: float | None = None,
        speed: float | None = None,
        vehicles: int | None = None,
    ) -> Scenario:
        """This scenario with the given knobs replaced (None keeps the scenario's), validated like a file."""
        changed = replace(
            self,
            seed=self.seed if seed is None else seed,
            start=self.start if start is None else start,
            minutes=self.minutes if minutes is None else minutes,
            speed=self.speed if speed is None else speed,
            fleet=self.fleet if vehicles is None else replace(self.fleet, vehicles=vehicles),
        )
        check_scenario(changed)
        return changed


def load_scenario(path: Path | str, zone: Zone | None = None) -> Scenario:
    """The scenario in the TOML file at ``path``; ``ScenarioError`` names the file and the first key it refuses
    (``scenario.toml: faults.drop: must be between 0 and 1, not 1.5``)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: not TOML: {exc}") from None
    try:
        return parse_scenario(data, zone)
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


def parse_scenario(data: Mapping[str, Any], zone: Zone | None = None) -> Scenario:
    """The scenario described by ``data`` (a TOML document as ``tomllib`` reads it); its stations must lie inside
    ``zone`` (default: the shipped zone, loaded only when the scenario names stations)."""
    top = _Table(data, "")
    scenario = Scenario(
        name=top.required("name", str, _non_empty),
        seed=top.get("seed", int, 7, _at_least(0)),
        start=top.get("start", datetime, None, _aware),
        minutes=top.number("minutes", 0.0, _at_least(0)),
        speed=top.number("speed", 10.0, _at_least(0)),
        fleet=_fleet(top.table("fleet"), zone),
        demand=_demand(top.table("demand")) if "demand" in data else None,
        tariffs=_tariffs(top.table("tariffs")),
        faults=_faults(top.table("faults")),
    )
    top.done()
    check_scenario(scenario)
    return scenario


def check_scenario(scenario: Scenario) -> None:
    """Refuse what no single key says is wrong: a run as fast as possible that would never end."""
    if scenario.fleet.vehicles < 1:
        raise ScenarioError(f"fleet.vehicles: must be at least 1, not {scenario.fleet.vehicles}")
    if scenario.start is not None and scenario.start.utcoffset() is None:
        raise ScenarioError("start: must name its UTC offset (such as 2026-12-01T07:00:00+01:00)")
    if scenario.speed == 0 and scenario.minutes == 0:
        raise ScenarioError("speed: 0 (as fast as possible) needs a number of minutes (--minutes): it would never end")
    for key in ("seed", "minutes", "speed"):
        value = getattr(scenario, key)
        if not value >= 0:  # NaN too
            raise ScenarioError(f"{key}: must be at least 0, not {value!r}")


def hour_of_day(at_ms: int, utc_offset_s: int) -> int:
    """The hour (0-23) of the day at ``at_ms`` on a clock ``utc_offset_s`` ahead of UTC."""
    return (at_ms // 1000 + utc_offset_s) // 3600 % HOURS


def _fleet(table: _Table, zone: Zone | None) -> FleetSpec:
    spec = FleetSpec(
        vehicles=table.get("vehicles", int, 20, _at_least(1)),
        owners=table.get("owners", int, 4, _at_least(1)),
        docked_share=table.number("docked_share", 0.0, _share),
        mix=_mix(table.table("mix")) if "mix" in table.data else FleetSpec().mix,
        stations=_stations(table, zone) if "stations" in table.data else None,
    )
    table.done()
    return spec


def _stations(fleet: _Table, zone: Zone | None) -> tuple[StationSpec, ...]:
    """The ``[[fleet.stations]]`` tables: each a name, ``lat`` and ``lon`` inside the zone."""
    listed = fleet.get("stations", list, [])
    if not listed:
        raise ScenarioError(f"{fleet.where('stations')}: must list at least one station (or be left out)")
    if zone is None:
        from simulator.zone import load_zone  # the streets load only for a scenario that names stations

        zone = load_zone()
    stations = []
    for number, data in enumerate(listed):
        where = f"{fleet.where('stations')}[{number}]"
        if not isinstance(data, dict):
            raise ScenarioError(f"{where}: must be a table with name, lat and lon, not {data!r}")
        table = _Table(data, where)
        name = table.required("name", str, _non_empty)
        lat, lon = (table.required_number(key, _between(-high, high)) for key, high in (("lat", 90), ("lon", 180)))
        table.done()
        position = Position(lat, lon)
        if not zone.contains(position):
            raise ScenarioError(f"{where}: station {name!r} at lat {lat:g}, lon {lon:g} is outside the zone")
        stations.append(StationSpec(name, position))
    return tuple(stations)


def _mix(table: _Table) -> tuple[tuple[VehicleKind, float], ...]:
    kinds = [k.value for k in VehicleKind]
    mix = tuple((VehicleKind(k), table.number(k, 0.0, _at_least(0))) for k in kinds if k in table.data)
    table.done()
    if not mix or sum(w for _, w in mix) <= 0:
        raise ScenarioError(f"{table.path}: needs a positive weight for at least one of {', '.join(kinds)}")
    return mix


def _demand(table: _Table) -> DemandSpec:
    spec = DemandSpec(
        riders=table.get("riders", int, 50, _at_least(1)),
        rate_per_hour=table.number("rate_per_hour", 60.0, _at_least(0)),
        walk_m=table.number("walk_m", 400.0, _positive),
        profile=table.get("profile", list, list(FLAT_PROFILE), _profile),
    )
    table.done()
    return replace(spec, profile=tuple(float(v) for v in spec.profile))


def _tariffs(table: _Table) -> dict[VehicleKind, Mapping[str, Any]]:
    kinds = {k.value for k in VehicleKind}
    plans = {}
    for key in list(table.data):
        if key not in kinds:
            continue
        plan = table.get(key, dict, {}, _plan)
        plans[VehicleKind(key)] = plan
    table.done()
    return plans


def _faults(table: _Table) -> FaultRates:
    rates = {
        name: table.number(name, 0.0, _share)
        for name in ("gps_jitter", "drop", "duplicate", "reorder", "offline", "sensor_fault")
    }
    faults = FaultRates(
        **rates,
        gps_jitter_m=table.number("gps_jitter_m", 10.0, _at_least(0)),
        offline_mean_s=table.number("offline_mean_s", 300.0, _positive),
    )
    table.done()
    return faults


Check = Callable[[Any], str | None]
"""A check of a value: None if it is fine, else the reason it is refused."""


class _Table:
    """One TOML table being read: each key taken is remembered, so that ``done`` refuses the rest."""

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        self.data, self.path, self._taken = data, path, set[str]()

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def required(self, key: str, kind: type, check: Check | None = None) -> Any:
        if key not in self.data:
            raise ScenarioError(f"{self.where(key)}: is required")
        return self.get(key, kind, None, check)

    def get(self, key: str, kind: type, default: Any, check: Check | None = None) -> Any:
        self._taken.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ScenarioError(f"{self.where(key)}: must be {_NAMES.get(kind, kind.__name__)}, not {value!r}")
        reason = check(value) if check is not None else None
        if reason is not None:
            raise ScenarioError(f"{self.where(key)}: {reason}")
        return value

    def number(self, key: str, default: float, check: Check) -> float:
        self._taken.add(key)
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ScenarioError(f"{self.where(key)}: must be a number, not {value!r}")
        reason = check(value)
        if reason is not None:
            raise ScenarioError(f"{self.where(key)}: {reason}")
        return float(value)

    def required_number(self, key: str, check: Check) -> float:
        if key not in self.data:
            raise ScenarioError(f"{self.where(key)}: is required")
        return self.number(key, 0.0, check)

    def table(self, key: str) -> _Table:
        return _Table(self.get(key, dict, {}), self.where(key))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._taken)
        if unknown:
            raise ScenarioError(f"{self.where(unknown[0])}: unknown key")


_NAMES = {int: "an integer", str: "a string", dict: "a table", list: "a list", datetime: "a date-time"}


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _at_least(low: float) -> Check:
    return lambda value: None if value >= low else f"must be at least {low:g}, not {value!r}"


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be positive, not {value!r}"


def _between(low: float, high: float) -> Check:
    return lambda value: None if low <= value <= high else f"must be between {low:g} and {high:g}, not {value!r}"


def _share(value: float) -> str | None:
    return None if 0 <= value <= 1 else f"must be between 0 and 1, not {value!r}"


def _aware(value: datetime) -> str | None:
    if value.utcoffset() is None:
        return f"must name its UTC offset (such as {value.isoformat()}+01:00), not a local time"
    return None


def _profile(value: list[Any]) -> str | None:
    if len(value) != HOURS:
        return f"must list {HOURS} values, one per hour, not {len(value)}"
    for hour, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < math.inf:
            return f"hour {hour}: must be a non-negative number, not {v!r}"
    return None


def _plan(value: dict[str, Any]) -> str | None:
    plan_id = value.get("plan_id")
    if not isinstance(plan_id, str) or not plan_id:
        return "must be a GBFS pricing plan with a plan_id"
    return None


def shipped_scenario(name: str) -> Path:
    """The path of the example scenario ``name`` shipped in ``simulator/scenarios/`` (weekday, tiny, stress-10k)."""
    path = Path(str(resources.files("simulator").joinpath("scenarios", f"{name}.toml")))
    if not path.is_file():
        raise ScenarioError(f"{name}: no such shipped scenario")
    return path
