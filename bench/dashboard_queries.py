"""The dashboard's read model at city scale: each query's latency beside a ``SELECT 1`` round trip, same run.

A fresh PostgreSQL schema (in the database of ``--postgres-url``, dropped after; a SQLite file when PostgreSQL
does not answer or with ``--database sqlite``) is migrated and filled in bulk as ``bench.read_side`` fills it
(COPY on PostgreSQL, the driver's executemany on SQLite, progress on stderr): ``--vehicles`` vehicles (stamped
with a receipt time), ``--trips`` trips over ``--owners`` owners and ``--riders`` riders. ``SqlReadModel`` is then
called in process, ``--samples`` times per query, each call right after a ``SELECT 1`` on the same pool; p50 and
p95 of both and their ratio are printed (ms), with the issue's targets for the fleet snapshot, a rider's trips
and the payouts.

    python -m bench.dashboard_queries [--database postgresql|sqlite] [--trips 1000000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.ingest import scratch_database
from bench.read_side import DEFAULT_POSTGRES, T0, Sizes, address, fill, percentile

TARGETS_MS = {"fleet() + JSON": 100.0, "a rider's first page": 50.0, "a rider's later page": 50.0,
              "payouts, first page": 100.0}  # fmt: skip


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Timing:
    p50: float
    p95: float
    base_p50: float
    base_p95: float
    cpu_p50: float  # this process's CPU time per call: what the client side costs, whatever else the machine runs


def postgres_answers(url: str) -> bool:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def stamp_vehicles(url: str, sizes: Sizes) -> None:
    """Give the vehicles what the aggregator now writes: a receipt time and, for a few, a fault code."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE vehicles SET received_ms = last_seen_ms - 1000"))
        conn.execute(
            sa.text("UPDATE vehicles SET state = 'non_operational', fault_code = 'motor' WHERE online = false")
        )
    engine.dispose()


def fleet_json(views: Sequence[Any]) -> bytes:
    """The fleet as a live map would take it in one message: the field names once, then one array per vehicle."""
    names = type(views[0]).__slots__ if views else ()
    row = operator.attrgetter(*names)
    return json.dumps({"fields": names, "rows": [row(v) for v in views]}, separators=(",", ":")).encode()


def measure(database: Any, call: Callable[[int], object], samples: int) -> Timing:
    """``call(i)`` ``samples`` times, each right after a ``SELECT 1`` round trip on the same pool (ms)."""
    ours, base, cpu = [], [], []
    for i in range(min(5, samples)):  # warm up: connections, caches, statement cache
        call(i)
    for i in range(samples):
        began = time.perf_counter()
        with database.reading() as conn:
            conn.execute(sa.text("SELECT 1")).scalar_one()
        middle, cpu_began = time.perf_counter(), time.process_time()
        call(i)
        ours.append((time.perf_counter() - middle) * 1000)
        cpu.append((time.process_time() - cpu_began) * 1000)
        base.append((middle - began) * 1000)
    return Timing(
        percentile(ours, 0.5), percentile(ours, 0.95), percentile(base, 0.5), percentile(base, 0.95),
        percentile(cpu, 0.5),
    )  # fmt: skip


def queries(model: Any, sizes: Sizes) -> dict[str, Callable[[int], object]]:
    """The calls measured; riders rotate so that each call reads another rider's index range."""
    from settlement.views import cursor_after

    riders = [address(2, (r * 37) % sizes.riders) for r in range(64)]
    second = {}
    for rider in riders:
        page = model.trips(limit=20, rider=rider)
        if len(page) == 20:
            second[rider] = cursor_after(page[-1])
    later: list[tuple[str, str | None]] = list(second.items()) or [(riders[0], None)]
    now = T0 + sizes.trips * 1_000  # the newest trip's end: trips end a second apart
    return {
        "fleet()": lambda i: model.fleet(),
        "fleet() + JSON": lambda i: fleet_json(model.fleet()),
        "a rider's first page": lambda i: model.trips(limit=20, rider=riders[i % len(riders)]),
        "a rider's later page": lambda i: model.trips(limit=20, rider=later[i % len(later)][0],
                                                      cursor=later[i % len(later)][1]),
        "payouts, first page": lambda i: model.payouts(limit=100),
        "vehicles changed in the last 1 s": lambda i: model.vehicles_received_since(T0 + sizes.vehicles - 2_000),
        "kpis (last hour)": lambda i: model.kpis(now, now - 3_600_000),
        "vehicles by battery": lambda i: model.vehicles(limit=100, sort="battery_pct"),
    }  # fmt: skip


def run(url: str, sizes: Sizes, samples: int) -> dict[str, Timing]:
    from settlement.db import Database
    from settlement.queries import SqlReadModel

    database = Database.open(url)
    try:
        model = SqlReadModel(database)
        results = {}
        for name, call in queries(model, sizes).items():
            results[name] = measure(database, call, samples)
            say(f"  {name}: p95 {results[name].p95:.1f} ms")
        return results
    finally:
        database.close()


def report(kind: str, sizes: Sizes, results: dict[str, Timing], samples: int) -> None:
    print(f"\n{kind}: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end; "
          f"{sizes.vehicles:,} vehicles, {sizes.trips:,} trips, {sizes.owners:,} owners, "
          f"{sizes.riders:,} riders; {samples} calls each\n")  # fmt: skip
    print("| query | p50 ms | p95 ms | `SELECT 1` p50 / p95 ms | ratio p50 / p95 | client CPU p50 ms | target p95 |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, t in results.items():
        target = TARGETS_MS.get(name)
        verdict = "" if target is None else f"≤ {target:.0f} ms: {'met' if t.p95 <= target else '**missed**'}"
        print(f"| {name} | {t.p50:.2f} | {t.p95:.2f} | {t.base_p50:.2f} / {t.base_p95:.2f} | "
              f"{t.p50 / t.base_p50:.1f}× / {t.p95 / t.base_p95:.1f}× | {t.cpu_p50:.2f} | {verdict} |")  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard_queries", description=__doc__.splitlines()[0])
    p.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    p.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    p.add_argument("--vehicles", type=int, default=10_000)
    p.add_argument("--trips", type=int, default=1_000_000)
    p.add_argument("--owners", type=int, default=1_000)
    p.add_argument("--riders", type=int, default=20_000)
    p.add_argument("--samples", type=int, default=100, help="calls per query")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke for CI")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.quick:
        args.vehicles, args.trips, args.owners, args.riders, args.samples = 300, 10_000, 30, 200, 20
    sizes = Sizes(args.vehicles, args.trips, args.owners, args.riders)
    kind = args.database
    if kind == "postgresql" and not postgres_answers(args.postgres_url):
        say(f"PostgreSQL does not answer at {args.postgres_url}: measuring on SQLite instead")
        kind = "sqlite"
    with (
        tempfile.TemporaryDirectory() as folder,
        scratch_database(kind, args.postgres_url, Path(folder), "dash") as url,
    ):
        say(f"{kind}: filling")
        fill(url, sizes, say)
        stamp_vehicles(url, sizes)
        say(f"{kind}: measuring")
        results = run(url, sizes, args.samples)
    report(kind, sizes, results, args.samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
