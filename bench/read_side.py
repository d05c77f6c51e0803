"""The read side at city scale: API latency of the dashboard's endpoints beside a trivial endpoint, same server.

A fresh database (SQLite file, or a fresh PostgreSQL schema with ``--database postgresql``) is migrated and
filled by bulk core inserts (PostgreSQL: COPY) with ``--vehicles`` vehicles and ``--trips`` trips over
``--owners`` owners and ``--riders`` riders: the oldest trips settled in committed epochs of 250, then a closed
epoch's batched trips, then priced trips waiting for an epoch; the per-owner totals are filled as the epochs
would have kept them. The app (``dashboard.create_app`` over ``SqlReadModel``) is served by uvicorn in a
subprocess; ``--clients`` threads send ``--requests`` requests per endpoint and repeat, and each endpoint's
p50 / p95 (the median over ``--repeats``) is printed with its ratio to ``/healthz``, the trivial endpoint,
measured in the same rounds. ``/`` is also weighed (KB of HTML). The lists need a login: each client thread signs
in once as an operator (a user made for the run); "a rider's trips" is the rider filter, the query a signed-in
rider's own list runs. The public endpoints (``/healthz``, stats, ``/``) are asked anonymously.

    python -m bench.read_side [--database sqlite postgresql] [--trips 1000000] [--vehicles 10000] [--workers 1]
                              [--quick]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.ingest import scratch_database

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
OPERATOR = "bench-op"
T0 = 1_700_000_000_000
EPOCH_TRIPS = 250
CHUNK = 20_000
TARGETS_MS = {"fleet snapshot": 100.0, "a rider's trips": 50.0, "payouts": 100.0, "stats": 20.0}
PAGE_KB_TARGET = 200.0


@dataclass(frozen=True)
class Sizes:
    vehicles: int
    trips: int
    owners: int
    riders: int


def address(kind: int, n: int) -> str:
    """A deterministic EIP-55 address (``kind`` keeps owners and riders apart)."""
    from sensors.address import Address

    return str(Address(kind.to_bytes(2, "big") + n.to_bytes(18, "big")))


# --- filling --------------------------------------------------------------------------------------------------
def vehicle_rows(sizes: Sizes) -> list[dict[str, Any]]:
    return [
        {
            "vehicle_id": f"bike-{v:05d}",
            "operator": OPERATOR,
            "kind": "bicycle",
            "owner": address(1, v % sizes.owners),
            "online": v % 5 != 0,
            "state": "available" if v % 3 else "on_trip",
            "battery_pct": float(v % 100),
            "lat": 51.2124 + (v % 100) / 40_000,  # inside the Sint-Andries zone: no outside_zone alerts
            "lon": 4.3944 + (v % 97) / 40_000,
            "last_seq": 1,
            "last_seen_ms": T0 + v,
            "state_ms": T0,
        }
        for v in range(sizes.vehicles)
    ]


def trip_plan(sizes: Sizes) -> tuple[int, int]:
    """How many trips are settled (committed epochs) and how many batched (one closed epoch); the rest is priced."""
    batched = min(EPOCH_TRIPS, sizes.trips // 4)
    priced = min(100, sizes.trips // 4)
    return sizes.trips - batched - priced, batched


def trip_rows(sizes: Sizes, start: int, stop: int) -> Iterator[dict[str, Any]]:
    settled, batched = trip_plan(sizes)
    owners = [address(1, o) for o in range(sizes.owners)]
    riders = [address(2, r) for r in range(sizes.riders)]
    for n in range(start, stop):
        v = n % sizes.vehicles
        end = T0 + n * 1_000
        fare = 500_000 + (n % 1_000) * 1_000
        if n < settled:
            status, epoch = "committed", n // EPOCH_TRIPS + 1
        elif n < settled + batched:
            status, epoch = "batched", settled // EPOCH_TRIPS + 2
        else:
            status, epoch = "priced", None
        yield {
            "trip_id": f"bike-{v:05d}:{n}",
            "vehicle_id": f"bike-{v:05d}",
            "unlock_seq": n,
            "operator": OPERATOR,
            "kind": "bicycle",
            "status": status,
            "owner": owners[v % sizes.owners],
            "rider": riders[(n * 7919) % sizes.riders],
            "start_seq": n,
            "start_ms": end - 600_000,
            "start_lat": 51.19,
            "start_lon": 4.37,
            "start_odometer_m": 0,
            "end_seq": n + 1,
            "end_ms": end,
            "end_lat": 51.2,
            "end_lon": 4.38,
            "end_odometer_m": 1_800,
            "distance_m": 1_800,
            "duration_s": 600,
            "unlock_micro": 500_000,
            "time_micro": fare - 500_000,
            "distance_micro": 0,
            "fare_micro": fare,
            "epoch_id": epoch,
        }


def epoch_rows(sizes: Sizes) -> list[dict[str, Any]]:
    settled, batched = trip_plan(sizes)
    rows: dict[int, dict[str, Any]] = {}
    for trip in trip_rows(sizes, 0, settled + batched):
        e = trip["epoch_id"]
        row = rows.setdefault(
            e,
            {
                "epoch_id": e,
                "trip_count": 0,
                "total_micro": 0,
                "trips_root": "0x" + "ab" * 32,
                "registry_root": "0x" + "cd" * 32,
                "status": "committed" if trip["status"] == "committed" else "closed",
                "closed_ms": trip["end_ms"],
                "settled_ms": trip["end_ms"] if trip["status"] == "committed" else None,
            },
        )
        row["trip_count"] += 1
        row["total_micro"] += trip["fare_micro"]
    return list(rows.values())


def owner_total_rows(sizes: Sizes) -> list[dict[str, Any]]:
    """What ``settlement.sql.epochs`` would have kept per owner while those epochs were batched and committed."""
    settled, batched = trip_plan(sizes)
    totals: dict[str, dict[str, Any]] = {}
    for trip in trip_rows(sizes, 0, settled + batched):
        row = totals.setdefault(
            trip["owner"], {"owner": trip["owner"], "trip_count": 0, "pending_micro": 0, "settled_micro": 0}
        )
        row["trip_count"] += 1
        row["settled_micro" if trip["status"] == "committed" else "pending_micro"] += trip["fare_micro"]
    return list(totals.values())


def fill(url: str, sizes: Sizes, say: Callable[[str], None]) -> None:
    """Migrate ``url`` and fill it in bulk."""
    from settlement.db import Database
    from settlement.schema import EpochRow, OwnerTotalRow, TripRow, VehicleRow, table_of

    database = Database.open(url)
    database.upgrade()
    began = time.perf_counter()
    with database.transaction() as conn:
        conn.execute(sa.insert(table_of(VehicleRow)), vehicle_rows(sizes))
        conn.execute(sa.insert(table_of(EpochRow)), epoch_rows(sizes))
        conn.execute(sa.insert(table_of(OwnerTotalRow)), owner_total_rows(sizes))
    say(f"  {sizes.vehicles:,} vehicles, epochs and owner totals in {time.perf_counter() - began:.1f} s")
    trips = table_of(TripRow)
    for start in range(0, sizes.trips, CHUNK * 10):
        stop = min(sizes.trips, start + CHUNK * 10)
        with database.transaction() as conn:
            if conn.dialect.name == "postgresql":
                copy_rows(conn, trips, trip_rows(sizes, start, stop))
            else:  # the driver's executemany: text addresses need no checksum check on the way in
                names = [c.name for c in trips.columns]
                statement = f"INSERT INTO trips ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
                rows = [tuple(row.get(name) for name in names) for row in trip_rows(sizes, start, stop)]
                conn.exec_driver_sql(statement, rows)
        rate = stop / (time.perf_counter() - began)
        say(f"  {stop:,} / {sizes.trips:,} trips ({rate:,.0f} rows/s)")
    with database.transaction() as conn:
        if conn.dialect.name == "postgresql":  # what autovacuum would soon do after a bulk load
            conn.execute(sa.text("ANALYZE"))
    database.close()
    say(f"  filled in {time.perf_counter() - began:.1f} s")


def copy_rows(conn: sa.Connection, table: sa.Table, rows: Iterator[dict[str, Any]]) -> None:
    """COPY ``rows`` into ``table`` through psycopg (PostgreSQL's bulk path)."""
    names = [c.name for c in table.columns]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row.get(name) for name in names])


# --- serving and measuring ------------------------------------------------------------------------------------
URL_VARIABLE = "SMARTZONE_BENCH_READ_URL"  # how the server subprocess tells its uvicorn workers the database
SECRET_VARIABLE = "SMARTZONE_BENCH_READ_SECRET"  # the run's session key and password, shared by the workers
BENCH_USER = "bench"
PUBLIC = frozenset({"trivial (/healthz)", "stats", "page /"})


def app_factory() -> Any:
    """The dashboard over the database the server subprocess named (each uvicorn worker builds its own), with one
    operator, ``bench``, whose password is the run's secret."""
    import os

    from dashboard.app import create_app
    from dashboard.auth import hash_password
    from dashboard.config import DashboardConfig, Role, StaffUser
    from settlement.db import Database
    from settlement.queries import SqlReadModel

    secret = os.environ[SECRET_VARIABLE]
    user = StaffUser(BENCH_USER, Role.OPERATOR, hash_password(secret))
    config = DashboardConfig(session_secret=secret, users=(user,))
    return create_app(SqlReadModel(Database.connect(os.environ[URL_VARIABLE])), config)


def serve(url: str, port: int, workers: int) -> int:
    """Serve the dashboard over ``url`` on ``port`` with ``workers`` processes until killed (the subprocess)."""
    import os

    import uvicorn

    os.environ[URL_VARIABLE] = url
    os.environ.setdefault(SECRET_VARIABLE, secrets.token_urlsafe(32))
    uvicorn.run(
        "bench.read_side:app_factory",
        factory=True,
        workers=workers,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
    return 0


@contextmanager
def server(url: str, workers: int = 1) -> Iterator[str]:
    """The app served by uvicorn in a subprocess; yields its base URL (``SECRET_VARIABLE`` holds the password)."""
    import os
    import socket

    import httpx

    os.environ[SECRET_VARIABLE] = secrets.token_urlsafe(32)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [sys.executable, "-m", "bench.read_side", "--serve", url, "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(args)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the dashboard server did not start")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def endpoints(sizes: Sizes) -> dict[str, Callable[[int], str]]:
    """Each measured endpoint: a path per request number (a rider's trips ask for a different rider each time)."""
    return {
        "trivial (/healthz)": lambda i: "/healthz",
        "fleet snapshot": lambda i: "/api/v1/vehicles",
        "newest trips": lambda i: "/api/v1/trips",
        "a rider's trips": lambda i: f"/api/v1/trips?rider={address(2, (i * 104_729) % sizes.riders)}",
        "payouts": lambda i: "/api/v1/payouts",
        "stats": lambda i: "/api/v1/stats",
        "page /": lambda i: "/",
    }


def signed_in(base: str) -> Any:
    """An HTTP client with the run's operator signed in (one login per client thread, not per request)."""
    import os

    import httpx

    client = httpx.Client(base_url=base, timeout=120)
    login = {"name": BENCH_USER, "password": os.environ[SECRET_VARIABLE]}
    response = client.post("/login", data=login, headers={"origin": base})
    if response.status_code != 303:
        raise RuntimeError(f"the bench user could not sign in ({response.status_code})")
    return client


def measure(
    base: str, path_of: Callable[[int], str], requests: int, clients: int, signed: bool = True
) -> tuple[list[float], int]:
    """Latencies (ms) of ``requests`` GETs sent by ``clients`` threads (signed in unless ``signed`` is False), and
    the size of the last response."""
    import httpx

    local = threading.local()
    size = 0

    def one(i: int) -> float:
        nonlocal size
        if not hasattr(local, "client"):
            local.client = signed_in(base) if signed else httpx.Client(base_url=base, timeout=120)
        began = time.perf_counter()
        response = local.client.get(path_of(i))
        elapsed = (time.perf_counter() - began) * 1000
        response.raise_for_status()
        size = len(response.content)
        return elapsed

    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(one, range(requests)))
    return latencies, size


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(
    url: str, sizes: Sizes, requests: int, clients: int, repeats: int, say: Callable[[str], None], workers: int = 1
) -> dict[str, dict[str, float]]:
    """p50 / p95 (ms; medians over ``repeats``) per endpoint, and the page's size in KB."""
    results: dict[str, dict[str, float]] = {}
    rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in endpoints(sizes)}
    page_kb = 0.0
    with server(url, workers) as base:
        for name, path_of in endpoints(sizes).items():
            measure(base, path_of, clients, clients, name not in PUBLIC)  # warm up: connections, caches
        for r in range(repeats):
            for name, path_of in endpoints(sizes).items():
                latencies, size = measure(base, path_of, requests, clients, name not in PUBLIC)
                rounds[name].append((percentile(latencies, 0.5), percentile(latencies, 0.95)))
                if name == "page /":
                    page_kb = size / 1024
            say(f"  round {r + 1}/{repeats} done")
    for name, values in rounds.items():
        results[name] = {
            "p50": statistics.median(v[0] for v in values),
            "p95": statistics.median(v[1] for v in values),
        }
    results["page /"]["kb"] = page_kb
    return results


def report(kind: str, sizes: Sizes, results: dict[str, dict[str, float]], say: Callable[[str], None]) -> None:
    trivial = results["trivial (/healthz)"]
    say(f"\n{kind}: {sizes.vehicles:,} vehicles, {sizes.trips:,} trips, {sizes.owners:,} owners")
    say(f"{'endpoint':<22}{'p50 ms':>9}{'p95 ms':>9}{'p50 ×':>8}{'p95 ×':>8}  target p95")
    for name, r in results.items():
        target = TARGETS_MS.get(name)
        verdict = "" if target is None else f"≤ {target:.0f} ms {'ok' if r['p95'] <= target else 'MISSED'}"
        say(
            f"{name:<22}{r['p50']:>9.1f}{r['p95']:>9.1f}{r['p50'] / trivial['p50']:>8.1f}"
            f"{r['p95'] / trivial['p95']:>8.1f}  {verdict}"
        )
    kb = results["page /"]["kb"]
    say(f"page / weighs {kb:.1f} KB (target ≤ {PAGE_KB_TARGET:.0f} KB {'ok' if kb <= PAGE_KB_TARGET else 'MISSED'})")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.read_side", description=__doc__.splitlines()[0])
    p.add_argument("--database", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite"])
    p.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    p.add_argument("--vehicles", type=int, default=10_000)
    p.add_argument("--trips", type=int, default=1_000_000)
    p.add_argument("--owners", type=int, default=1_000)
    p.add_argument("--riders", type=int, default=20_000)
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--requests", type=int, default=200, help="per endpoint per round")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes serving the app")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one round: a smoke for CI")
    p.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.serve:
        return serve(args.serve, args.port, args.workers)
    if args.quick:
        args.vehicles, args.trips, args.owners, args.riders = 200, 5_000, 50, 500
        args.requests, args.repeats = 30, 1
    sizes = Sizes(args.vehicles, args.trips, args.owners, args.riders)

    def say(text: str) -> None:
        print(text, flush=True)

    for kind in args.database:
        with (
            tempfile.TemporaryDirectory() as folder,
            scratch_database(kind, args.postgres_url, Path(folder), "read_side") as url,
        ):
            say(f"{kind}: filling")
            fill(url, sizes, say)
            say(f"{kind}: measuring ({args.clients} clients, {args.requests} requests per endpoint, "
                f"{args.repeats} rounds, {args.workers} server worker(s))")  # fmt: skip
            results = run(url, sizes, args.requests, args.clients, args.repeats, say, args.workers)
            report(kind, sizes, results, say)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
