"""The offline pipeline: readings fed straight into ``Aggregator.handle`` (no broker), against raw executemany.

This is the entry that replay and what-if studies use. A seeded fleet's traffic (signed events and states,
telemetry signed with ``--sign-telemetry``) is generated and encoded once; then, in each round and on a fresh
database with the fleet enrolled, the same bytes go through ``Aggregator.handle`` in batches (decode, verify,
store, derive trips) — and, as the baseline, the same readings' rows go into the same tables with one core
``insert()`` executemany per batch and nothing else. Printed: readings/s of each, medians of the rounds, and the
ratio. The issue's target for the pipeline is 50,000 readings/s.

    python -m bench.offline [--database sqlite postgresql] [--vehicles 2000] [--minutes 10] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.ingest import DEFAULT_POSTGRES, scratch_database

T0 = 1_790_000_000_000
BATCH = 2_000


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def traffic(vehicles: int, minutes: int, sign_telemetry: bool) -> tuple[Any, list[Any], list[Any]]:
    """The fleet, its messages and their ``Received`` forms, in the order a run sends them."""
    from sensors.codec import channel_of, encode
    from sensors.ports import Received
    from sensors.topics import topic_for
    from simulator.fleet import Fleet, FleetConfig
    from smartzone.parts import rider_metering

    fleet = Fleet(FleetConfig(vehicles=vehicles, seed=7, sign_telemetry=sign_telemetry), metering=rider_metering())
    messages: list[Any] = list(fleet.birth_messages(T0))
    for second in range(1, minutes * 60 + 1):
        messages += fleet.step(T0 + second * 1000)
    messages += fleet.finish(T0 + minutes * 60_000 + 1000)
    items = [Received(topic_for(m.operator, m.vehicle_id, channel_of(m)), encode(m), T0 / 1000) for m in messages]
    return fleet, messages, items


def prepared(url: str, fleet: Any) -> Any:
    """A migrated database at ``url`` with the fleet's operator trusted and its registrations held."""
    from settlement.db import Database
    from settlement.enrolment import enrol, trust_operator
    from smartzone.parts import unit_of_work

    database = Database.open(url)
    database.upgrade()
    uow = unit_of_work(database)
    trust_operator(uow, fleet.config.operator, fleet.operator_address, 0)
    enrol(uow, fleet.registrations(0), fleet.domain, 0)
    return database


def pipeline(url: str, fleet: Any, items: Sequence[Any], sign_telemetry: bool) -> float:
    """Seconds for ``Aggregator.handle`` to take every item, in batches of ``BATCH``."""
    from settlement.aggregator import Aggregator
    from settlement.clearing import deployed_fake
    from smartzone.parts import unit_of_work

    database = prepared(url, fleet)
    chain = deployed_fake()
    aggregator = Aggregator(unit_of_work(database), chain, sign_telemetry=sign_telemetry)
    aggregator.attach_contract(chain.address)
    started = time.perf_counter()
    for i in range(0, len(items), BATCH):
        aggregator.handle(items[i : i + BATCH])
    elapsed = time.perf_counter() - started
    counters = aggregator.counters
    if counters.rejected:
        raise SystemExit(f"the pipeline rejected {counters.rejected} honest messages: {counters.summary()}")
    database.close()
    return elapsed


def baseline(url: str, fleet: Any, messages: Sequence[Any]) -> float:
    """Seconds for raw core executemany of the same readings' rows, batch by batch, nothing else."""
    import sqlalchemy as sa

    from sensors.messages import Event, Telemetry
    from settlement.schema import EventRow, TelemetryRow, table_of

    database = prepared(url, fleet)
    telemetry, events = table_of(TelemetryRow), table_of(EventRow)
    started = time.perf_counter()
    for i in range(0, len(messages), BATCH):
        part = messages[i : i + BATCH]
        t_rows = [
            {"vehicle_id": m.vehicle_id, "seq": m.seq, "timestamp_ms": m.timestamp, "lat": m.position.lat,
             "lon": m.position.lon, "speed_mps": m.speed_mps, "odometer_m": m.odometer_m,
             "battery_pct": m.battery_pct, "fuel_pct": m.fuel_pct, "signature": m.signature}
            for m in part if isinstance(m, Telemetry)
        ]  # fmt: skip
        e_rows = [
            {"vehicle_id": m.vehicle_id, "operator": m.operator, "kind": m.kind.value, "seq": m.seq,
             "timestamp_ms": m.timestamp, "event_type": m.event_type.value, "lat": m.position.lat,
             "lon": m.position.lon, "odometer_m": m.odometer_m, "battery_pct": m.battery_pct, "rider": m.rider,
             "detail": m.detail, "trip_seq": m.trip_seq, "signature": m.signature}
            for m in part if isinstance(m, Event)
        ]  # fmt: skip
        with database.engine.begin() as conn:
            if t_rows:
                conn.execute(sa.insert(telemetry), t_rows)
            if e_rows:
                conn.execute(sa.insert(events), e_rows)
    elapsed = time.perf_counter() - started
    database.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    parser.add_argument("--postgres-url", default=os.environ.get("SMARTZONE_TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--vehicles", type=int, default=2_000)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sign-telemetry", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a smoke: 100 vehicles, 2 minutes, one round")
    args = parser.parse_args(argv)
    if args.quick:
        args.vehicles, args.minutes, args.rounds = 100, 2, 1
    say(f"generating {args.vehicles:,} vehicles x {args.minutes} simulated minutes ...")
    fleet, messages, items = traffic(args.vehicles, args.minutes, args.sign_telemetry)
    say(f"  {len(items):,} messages")
    with tempfile.TemporaryDirectory(prefix="smartzone-offline-") as folder:
        for kind in args.database:
            ours: list[float] = []
            base: list[float] = []
            for round_ in range(1, args.rounds + 1):
                with scratch_database(kind, args.postgres_url, Path(folder), f"off_{round_}_a") as url:
                    ours.append(len(items) / pipeline(url, fleet, items, args.sign_telemetry))
                with scratch_database(kind, args.postgres_url, Path(folder), f"off_{round_}_b") as url:
                    base.append(len(messages) / baseline(url, fleet, messages))
                say(f"{kind} round {round_}/{args.rounds}: pipeline {ours[-1]:,.0f} readings/s, "
                    f"raw executemany {base[-1]:,.0f} rows/s")  # fmt: skip
            mine, theirs = statistics.median(ours), statistics.median(base)
            print(
                f"{kind}: offline pipeline {mine:,.0f} readings/s (min {min(ours):,.0f}, max {max(ours):,.0f}); "
                f"raw executemany {theirs:,.0f} rows/s; ratio {mine / theirs:.2f}; target 50,000 readings/s; "
                f"telemetry signed: {'yes' if args.sign_telemetry else 'no'}; {len(items):,} messages, medians of "
                f"{args.rounds}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
