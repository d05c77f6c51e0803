"""Trip derivation cost per batch against the size of the stored history: it should not grow.

For each history size (stored events, by default 1,000 / 10,000 / 100,000 / 1,000,000) a fresh database is
filled in bulk (core ``insert()`` executemany, not through the aggregator) with that many unlock/lock events of
500 registered vehicles and their settled trips (committed in an epoch), so each vehicle holds from 1 to 1,000
trips. Then ``Aggregator.handle`` is timed on batches of the same shape at every size: 500 signed locks ending
the trips the previous batch unlocked plus 500 signed unlocks starting the next (the first batch, unlocks only,
is not timed). The baseline is the smallest history: the printed ratio largest / smallest is ~1 when the cost
does not grow with history. ``--explain`` prints the database's plan of each trip lookup at the largest size.

    python -m bench.trip_history [--database sqlite postgresql] [--sizes 1000 10000 100000 1000000] [--batches 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.ingest import DEFAULT_POSTGRES, scratch_database

OPERATOR = "bench-op"
SEED = 11
VEHICLES = 500
T0 = 1_700_000_000_000  # history starts here; each vehicle's trips are 10 minutes apart
TRIP_MS = 300_000
TRIP_M = 1_200
CHUNK = 10_000  # rows per executemany


class Fixture:
    """The vehicles, their keys and registrations, and the signed batches sent after the history."""

    def __init__(self) -> None:
        from sensors.registration import Registration
        from sensors.signing import Domain, address_of, sign
        from simulator.keys import device_key, operator_key, owner_key, rider_key

        self.domain = Domain(31337)  # the fake chain's id
        self.operator_key = operator_key(SEED, OPERATOR)
        self.operator_address = address_of(self.operator_key)
        self.vehicles = [f"bike-{i:04d}" for i in range(1, VEHICLES + 1)]
        self.keys = {v: device_key(SEED, OPERATOR, v) for v in self.vehicles}
        self.rider = str(address_of(rider_key(SEED, 0)))
        owners = [address_of(owner_key(SEED, i)) for i in range(4)]
        self.registrations = [
            sign(
                Registration(v, OPERATOR, _bike(), address_of(self.keys[v]), owners[i % 4], 0),
                self.operator_key,
                self.domain,
            )
            for i, v in enumerate(self.vehicles)
        ]
        self._sign = sign

    def batches(self, first_seq: int, start_ms: int, count: int) -> list[list[Any]]:
        """``count + 1`` batches as received: 500 unlocks, then ``count`` times 500 locks + 500 next unlocks."""
        from sensors.codec import encode
        from sensors.ports import Received
        from sensors.topics import Channel, topic_for

        out: list[list[Any]] = []
        for b in range(count + 1):
            items = []
            for v in self.vehicles:
                unlock_seq = first_seq + 2 * b
                ts = start_ms + b * 2 * TRIP_MS
                odometer = 10_000_000 + b * TRIP_M
                events = [self._event(v, unlock_seq, ts, odometer, None)]
                if b > 0:
                    events.insert(0, self._event(v, unlock_seq - 1, ts - TRIP_MS, odometer, unlock_seq - 2))
                for e in events:
                    items.append(Received(topic_for(OPERATOR, v, Channel.EVENT), encode(e), time.time()))
            out.append(items)
        return out

    def _event(self, vehicle: str, seq: int, ts: int, odometer: int, trip_seq: int | None) -> Any:
        from sensors.messages import Event, EventType, Position

        kind = EventType.UNLOCK if trip_seq is None else EventType.LOCK
        event = Event(vehicle, OPERATOR, _bike(), seq, ts, kind, Position(51.21, 4.40), odometer,
                      rider=self.rider, trip_seq=trip_seq)  # fmt: skip
        return self._sign(event, self.keys[vehicle], self.domain)


def _bike() -> Any:
    from sensors.messages import VehicleKind

    return VehicleKind.BIKE


# --- bulk history -----------------------------------------------------------------------------------
def fill(url: str, fixture: Fixture, events: int) -> tuple[int, int]:
    """A migrated database at ``url`` holding the registry and ``events`` history events with their trips.

    Returns (the first seq free for every vehicle, the first timestamp after the history).
    """
    from settlement.db import Database
    from settlement.registry import Registry
    from settlement.schema import EpochRow, EventRow, TripRow, VehicleRow, table_of
    from smartzone.parts import unit_of_work

    database = Database.open(url)
    database.upgrade()
    registry = Registry({OPERATOR: fixture.operator_address}, [])
    with unit_of_work(database)() as work:
        work.registry.add_operator(OPERATOR, fixture.operator_address, 0)
        for reg in fixture.registrations:
            work.registry.add(registry.check_registration(reg, fixture.domain), 0)
        work.commit()
    trips_per_vehicle = -(-events // 2 // VEHICLES)
    with database.engine.begin() as conn:
        conn.execute(sa.insert(table_of(EpochRow)), [_epoch_row()])
        for rows in _chunks(_event_rows(fixture, events)):
            conn.execute(sa.insert(table_of(EventRow)), rows)
        for rows in _chunks(_trip_rows(fixture, events)):
            conn.execute(sa.insert(table_of(TripRow)), rows)
        v = table_of(VehicleRow)
        conn.execute(sa.update(v).values(last_seq=2 * trips_per_vehicle))
    database.close()
    return 2 * trips_per_vehicle + 1, T0 + (trips_per_vehicle + 1) * 2 * TRIP_MS


def _history(events: int) -> Iterator[tuple[int, int]]:
    """(vehicle index, trip number) of each history trip, round robin over the vehicles."""
    for j in range(events // 2):
        yield j % VEHICLES, j // VEHICLES


def _event_rows(fixture: Fixture, events: int) -> Iterator[dict[str, object]]:
    for i, k in _history(events):
        vehicle = fixture.vehicles[i]
        for half, event_type in enumerate(("unlock", "lock")):
            yield {
                "vehicle_id": vehicle, "operator": OPERATOR, "kind": "bike", "seq": 2 * k + 1 + half,
                "timestamp_ms": T0 + k * 2 * TRIP_MS + half * TRIP_MS, "event_type": event_type,
                "lat": 51.21, "lon": 4.40, "odometer_m": k * TRIP_M + half * TRIP_M, "battery_pct": None,
                "rider": fixture.rider, "detail": None, "trip_seq": 2 * k + 1 if half else None,
                "signature": "0x" + "00" * 65,
            }  # fmt: skip


def _trip_rows(fixture: Fixture, events: int) -> Iterator[dict[str, object]]:
    from settlement.fares import Fare
    from settlement.lifecycle import TripStatus
    from settlement.sql.trips import row_of
    from settlement.trips import Mark, TripRecord, trip_id_for

    for i, k in _history(events):
        vehicle, start_ms = fixture.vehicles[i], T0 + k * 2 * TRIP_MS
        record = TripRecord(
            trip_id_for(vehicle, 2 * k + 1), vehicle, OPERATOR, _bike(), TripStatus.COMMITTED,
            start=Mark(2 * k + 1, start_ms, 51.21, 4.40, k * TRIP_M),
            end=Mark(2 * k + 2, start_ms + TRIP_MS, 51.21, 4.40, (k + 1) * TRIP_M),
            rider=fixture.rider, payee=fixture.registrations[i].payee, distance_m=TRIP_M,
            duration_s=TRIP_MS // 1000, fare=Fare(1_000_000, 750_000, 0), epoch_id=1,
        )  # fmt: skip
        yield row_of(record)


def _epoch_row() -> dict[str, object]:
    return {"epoch_id": 1, "trip_count": 0, "total_micro": 0, "trips_root": "0x" + "11" * 32,
            "registry_root": "0x" + "22" * 32, "status": "committed", "closed_ms": T0}  # fmt: skip


def _chunks(rows: Iterator[dict[str, object]]) -> Iterator[list[dict[str, object]]]:
    chunk: list[dict[str, object]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- timing -----------------------------------------------------------------------------------------
def time_batches(url: str, batches: Sequence[list[Any]]) -> tuple[list[float], list[float], Any]:
    """Milliseconds of ``Aggregator.handle`` and of its storing part (``_store``) per timed batch."""
    from settlement.aggregator import Aggregator
    from settlement.clearing import deployed_fake
    from settlement.db import Database
    from smartzone.parts import unit_of_work

    stored: list[float] = []

    class Timed(Aggregator):
        def _store(self, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return super()._store(*args, **kwargs)
            finally:
                stored.append((time.perf_counter() - started) * 1000)

    database = Database.connect(url)
    chain = deployed_fake()
    aggregator = Timed(unit_of_work(database), chain)
    aggregator.attach_contract(chain.address)
    handled: list[float] = []
    for n, batch in enumerate(batches):
        started = time.perf_counter()
        aggregator.handle(batch)
        if n > 0:  # the first batch (unlocks only) warms up
            handled.append((time.perf_counter() - started) * 1000)
    counters = aggregator.counters
    database.close()
    return handled, stored[1:], counters


def reread_ms(url: str, vehicles: Sequence[str]) -> float:
    """Milliseconds to read every unlock and lock the batch's vehicles ever sent: what the skeleton's
    ``build_trips`` did on every pass, shown as the cost that does grow with history."""
    from settlement.db import Database
    from settlement.schema import EventRow, table_of

    e = table_of(EventRow)
    query = sa.select(e).where(e.c.vehicle_id.in_(list(vehicles)), e.c.event_type.in_(["unlock", "lock"]))
    database = Database.open(url)
    with database.engine.connect() as conn:
        started = time.perf_counter()
        conn.execute(query).all()
        elapsed = (time.perf_counter() - started) * 1000
    database.close()
    return elapsed


def explain(url: str, vehicles: Sequence[str]) -> list[str]:
    """The plan of each trip lookup the aggregator makes for a batch of ``vehicles`` (their trips 1 and 3)."""
    from settlement.db import Database
    from settlement.sql.trips import SqlTrips

    database = Database.open(url)
    captured: list[tuple[str, Any]] = []
    lines: list[str] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    sa.event.listen(database.engine, "before_cursor_execute", keep)
    with database.engine.connect() as conn:
        trips = SqlTrips(conn)
        trips.get([f"{v}:{seq}" for v in vehicles for seq in (1, 3)])
        trips.unfinished_of(vehicles)
    sa.event.remove(database.engine, "before_cursor_execute", keep)
    prefix = "EXPLAIN " if database.engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    with database.engine.connect() as conn:
        for statement, parameters in captured:
            lines.append("  " + " ".join(statement.split())[:160])
            for row in conn.exec_driver_sql(prefix + statement, parameters):
                lines.append("    " + str(row[-1])[:160])
    database.close()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    parser.add_argument("--postgres-url", default=os.environ.get("SMARTZONE_TEST_POSTGRES_URL", DEFAULT_POSTGRES))
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--batches", type=int, default=5, help="timed batches per size (median printed)")
    parser.add_argument("--explain", action="store_true", help="print the plans of the trip lookups at the largest")
    args = parser.parse_args(argv)
    fixture = Fixture()
    results: dict[str, list[tuple[int, float, float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="smartzone-bench-") as folder:
        for kind in args.database:
            results[kind] = []
            for size in args.sizes:
                with scratch_database(kind, args.postgres_url, Path(folder), f"history_{size}") as url:
                    say(f"{kind}: filling {size:,} events and {size // 2:,} trips ...")
                    started = time.monotonic()
                    first_seq, start_ms = fill(url, fixture, size)
                    say(f"  filled in {time.monotonic() - started:.1f} s; timing {args.batches} batches ...")
                    handled, stored, counters = time_batches(url, fixture.batches(first_seq, start_ms, args.batches))
                    reread = reread_ms(url, fixture.vehicles)
                    results[kind].append((size, statistics.median(handled), statistics.median(stored), reread))
                    say(f"  handle {statistics.median(handled):.1f} ms/batch (store {statistics.median(stored):.1f}"
                        f" ms); {counters.summary()}")  # fmt: skip
                    if args.explain and size == max(args.sizes):
                        print(f"{kind}, {size:,} events: plans of the trip lookups for one batch")
                        print("\n".join(explain(url, fixture.vehicles)))
    report(results, args.batches)
    return 0


def report(results: dict[str, list[tuple[int, float, float, float]]], batches: int) -> None:
    print(f"batch: {VEHICLES} locks + {VEHICLES} unlocks of registered vehicles, signed and verified; "
          f"median of {batches} batches; chain: FakeClearing")  # fmt: skip
    for kind, rows in results.items():
        print(f"{kind}:")
        print("  stored events | handle ms/batch | of which _store ms | re-reading the history (skeleton) ms")
        for size, handled, stored, reread in rows:
            print(f"  {size:>13,} | {handled:>15.1f} | {stored:>18.1f} | {reread:>36.1f}")
        (_, h0, s0, r0), (_, h1, s1, r1) = rows[0], rows[-1]
        print(f"  ratio largest / smallest history: handle {h1 / h0:.2f}, _store {s1 / s0:.2f} "
              f"(re-reading the history: {r1 / r0:.0f})")  # fmt: skip


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
