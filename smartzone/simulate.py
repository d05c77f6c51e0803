"""The ``smartzone simulate`` command: a scenario's fleet (or the settings' one) run against a broker."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from simulator.scenario import FleetSpec, Scenario, ScenarioError, check_scenario, load_scenario, shipped_scenario
from smartzone.settings import Settings


def add_simulate_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``simulate`` on the CLI's subcommands."""
    sim = sub.add_parser(
        "simulate",
        help="run the simulated fleet against a broker",
        description="Run a simulated fleet against the broker of SMARTZONE_MQTT_URL: the fleet of a scenario file "
        "(TOML; see simulator/scenarios/), or of the settings. The options override the scenario. With a fixed "
        "start (--start, or the scenario's) the run's payloads are the same every time.",
    )
    sim.add_argument(
        "--scenario",
        dest="scenario_file",
        type=Path,
        metavar="FILE",
        help="a scenario file (TOML), or the name of a shipped one: weekday, tiny, stress-10k",
    )
    sim.add_argument("--seed", dest="run_seed", metavar="N", type=int, help="seed of the fleet, its riders and faults")
    sim.add_argument("--start", dest="run_start", metavar="ISO8601", help="simulated start, with its UTC offset")
    sim.add_argument(
        "--minutes", dest="run_minutes", metavar="MINUTES", type=float, help="simulated minutes; 0 runs until stopped"
    )
    sim.add_argument(
        "--speed", dest="run_speed", metavar="FACTOR", type=float, help="simulated seconds per real second; 0: flat out"
    )
    sim.add_argument("--vehicles", dest="run_vehicles", metavar="N", type=int, help="fleet size")
    sim.add_argument(
        "--no-register",
        action="store_true",
        help="do not add the fleet to the registry of SMARTZONE_DATABASE_URL (then SMARTZONE_CHAIN_ID is needed)",
    )
    sim.add_argument(
        "--registrations", type=Path, metavar="FILE", help="also write the fleet's signed registrations (JSON lines)"
    )
    sim.set_defaults(command=cmd_simulate)


def scenario_of(settings: Settings) -> Scenario:
    """The scenario the settings describe: their fleet, each vehicle taken after an idle time, no faults."""
    scenario = Scenario(
        name="settings",
        seed=settings.seed,
        minutes=settings.sim_minutes,
        speed=settings.speed,
        fleet=FleetSpec(vehicles=settings.vehicles, owners=settings.owners),
    )
    check_scenario(scenario)
    return scenario


def chosen_scenario(settings: Settings, args: argparse.Namespace) -> Scenario:
    """The scenario of ``--scenario`` (else the settings'), with the command line's overrides."""
    base = scenario_of(settings) if args.scenario_file is None else load_scenario(scenario_file(args.scenario_file))
    return base.overridden(
        seed=args.run_seed,
        start=parse_start(args.run_start) if args.run_start is not None else None,
        minutes=args.run_minutes,
        speed=args.run_speed,
        vehicles=args.run_vehicles,
    )


def scenario_file(given: Path) -> Path:
    """``given``, or the shipped example of that name when no such file exists (``--scenario tiny``)."""
    if given.exists() or given.suffix or len(given.parts) > 1:
        return given
    return shipped_scenario(str(given))


def parse_start(text: str) -> datetime:
    """An ISO 8601 date-time with its UTC offset (``Z`` or ``+01:00``)."""
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        raise ScenarioError(f"--start: not an ISO 8601 date-time: {text!r}") from None
    if start.utcoffset() is None:
        raise ScenarioError(f"--start: must name its UTC offset (such as {start.isoformat()}+01:00)")
    return start


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from sensors.registration import to_json
    from smartzone.cli import _progress
    from smartzone.console import stop_on_signals
    from smartzone.parts import (
        fleet_chain_id,
        fleet_registrations,
        make_fleet,
        open_database,
        register_fleet,
        run_simulator,
    )

    scenario = chosen_scenario(settings, args)
    database = None if args.no_register else open_database(settings)
    fleet = make_fleet(settings, fleet_chain_id(settings, database), scenario=scenario)
    if args.registrations is not None:
        lines = [json.dumps(to_json(r)) for r in fleet_registrations(fleet)]
        args.registrations.write_text("\n".join(lines) + "\n", "utf-8")
    if database is not None:
        added, held = register_fleet(database, fleet)
        print(f"registered the fleet in {database.url}: {added} added, {held} already held", file=sys.stderr)
    with stop_on_signals() as stop:
        summary = run_simulator(
            settings,
            fleet,
            mqtt_url=settings.broker_url(),
            protocol=settings.mqtt_protocol,
            stop=stop,
            progress=_progress,
            ca_file=settings.ca_file(),
            scenario=scenario,
        )
    report: dict[str, Any] = {
        "scenario": scenario.describe(),
        "published": {channel.value: n for channel, n in summary.published.items()},
        "completed_trips": summary.completed_trips,
        "sim_seconds": summary.sim_seconds,
        "wall_seconds": round(summary.wall_seconds, 3),
        "stopped_early": summary.stopped_early,
        "dropped_qos0": summary.dropped_qos0,  # telemetry sent while the broker was away: lost by design (QoS 0)
        "unmatched": summary.unmatched,  # QoS 1 messages no subscriber took, even after republishing
        "demand": dict(sorted(fleet.demand_stats.items())),
        "faults": dict(sorted(summary.faults.items())),
        "trip_ids": list(summary.trip_ids),
    }
    print(json.dumps(report), flush=True)
    return 0
