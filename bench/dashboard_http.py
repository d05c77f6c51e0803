"""The dashboard over HTTP at city scale (issue 11): the fleet snapshot, a rider's trips and payouts, beside /healthz.

A fresh PostgreSQL schema (the database of ``--postgres-url``, dropped after; a SQLite file when PostgreSQL does
not answer) is filled as ``bench.dashboard_queries`` fills it (10,000 vehicles, 1,000,000 trips, 1,000 owners,
20,000 riders; progress on stderr), and the vehicles are stamped as received just now (a live fleet, not one gone
silent). The real app (``create_app`` over ``SqlReadModel``, its change source on, ``SqlAlertStore``) is served by
uvicorn in a subprocess. An operator signs in with a password, riders with demo tokens (sessions, as browsers).
Each sample is one ``GET /healthz`` then one request of the endpoint measured, on one keep-alive connection:
``/api/v1/fleet`` (warm), a rider's ``/api/v1/trips?limit=20`` (first page, and a later page by its cursor;
riders rotate), ``/api/v1/payouts?limit=100``. The fleet is measured twice: quiet, and while
``--churn`` vehicles a second change (as a fleet reporting does), so that the snapshot is encoded again after each
change. p50 and p95 per round and their ratio to ``/healthz`` are printed.

    python -m bench.dashboard_http [--quick] [--rounds 3] [--samples 100] [--database postgresql|sqlite]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.dashboard_queries import postgres_answers, stamp_vehicles
from bench.harness import Figure
from bench.ingest import scratch_database
from bench.read_side import DEFAULT_POSTGRES, Sizes, address, fill

URL_VARIABLE = "SMARTZONE_BENCH_HTTP_URL"
SECRET_VARIABLE = "SMARTZONE_BENCH_HTTP_SECRET"
RIDERS_VARIABLE = "SMARTZONE_BENCH_HTTP_RIDERS"
LIVE_VARIABLE = "SMARTZONE_BENCH_HTTP_LIVE"  # "0": the change source off, the fleet read from the read model
OPERATOR = "bench-op"
INSIDE = (51.2153, 4.3962)  # a point in Sint-Andries: the vehicles are placed around it
TARGETS_MS = {"fleet snapshot": 100.0, "fleet snapshot, fleet changing": 100.0, "a rider's first page": 50.0,
              "a rider's later page": 50.0, "payouts": 100.0}  # fmt: skip


BEFORE = "fleet snapshot from the read model (change source off; one round)"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def rider_token(secret: str, n: int) -> str:
    return f"rider-{n}-{secret}"


# --- the server (a subprocess) ---------------------------------------------------------------------------------
def app_factory() -> Any:
    """The dashboard as ``smartzone serve`` composes it, over the database the parent named: the change source on,
    alerts kept in SQL, one operator (password: the run's secret) and demo tokens for the run's riders."""
    from dashboard.app import create_app
    from dashboard.auth import hash_password
    from dashboard.config import DashboardConfig, Role, StaffUser
    from dashboard.routes.live import LiveOptions
    from settlement.alerts import SqlAlertStore
    from settlement.db import Database
    from settlement.queries import SqlReadModel

    secret = os.environ[SECRET_VARIABLE]
    riders = os.environ[RIDERS_VARIABLE].split(",")
    tokens = {rider_token(secret, n): rider for n, rider in enumerate(riders)}
    user = StaffUser(OPERATOR, Role.OPERATOR, hash_password(secret))
    config = DashboardConfig(session_secret=secret, users=(user,), demo=True, rider_tokens=tokens)
    database = Database.connect(os.environ[URL_VARIABLE])
    options = LiveOptions(enabled=os.environ.get(LIVE_VARIABLE) != "0")
    return create_app(SqlReadModel(database), config, alert_store=SqlAlertStore(database), live_options=options)


def serve(port: int) -> int:
    import uvicorn

    uvicorn.run(
        "bench.dashboard_http:app_factory", factory=True, host="127.0.0.1", port=port, log_level="warning",
        access_log=False,
    )  # fmt: skip
    return 0


@contextlib.contextmanager
def server(url: str, riders: Sequence[str], live: bool = True) -> Iterator[tuple[str, str]]:
    """The app under uvicorn in a subprocess (``live``: its change source on); yields its base URL and the run's
    secret."""
    secret = secrets.token_urlsafe(24)
    env = os.environ | {URL_VARIABLE: url, SECRET_VARIABLE: secret, RIDERS_VARIABLE: ",".join(riders)}
    env[LIVE_VARIABLE] = "1" if live else "0"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "bench.dashboard_http", "--serve", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not answers(base):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the dashboard server did not start")
            time.sleep(0.2)
        yield base, secret
    finally:
        process.terminate()
        process.wait(timeout=30)


def answers(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


# --- sessions and samples --------------------------------------------------------------------------------------
def signed_in(base: str, path: str, form: dict[str, str]) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60)
    response = client.post(path, data=form, headers={"origin": base})
    if response.status_code != 303:
        raise RuntimeError(f"signing in at {path} failed ({response.status_code})")
    return client


def timed(client: httpx.Client, path: str) -> float:
    began = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - began) * 1000
    response.raise_for_status()
    return elapsed


def sample(calls: Sequence[tuple[httpx.Client, str]], samples: int) -> tuple[list[float], list[float]]:
    """``samples`` rounds of ``GET /healthz`` then the call (clients rotate): (theirs, /healthz's) in ms."""
    ours, base = [], []
    for i in range(samples):
        client, path = calls[i % len(calls)]
        base.append(timed(client, "/healthz"))
        ours.append(timed(client, path))
    return ours, base


def rider_calls(base: str, secret: str, riders: int) -> tuple[list[tuple[httpx.Client, str]], ...]:
    """Each rider's session with its first page, and with the page after it (by its cursor)."""
    first, later = [], []
    for n in range(riders):
        client = signed_in(base, "/auth/token", {"token": rider_token(secret, n)})
        first.append((client, "/api/v1/trips?limit=20"))
        cursor = client.get("/api/v1/trips?limit=20").json()["next_cursor"]
        if cursor:
            later.append((client, f"/api/v1/trips?limit=20&cursor={cursor}"))
    return first, later or first


@contextlib.contextmanager
def churn(url: str, vehicles: int, per_s: int) -> Iterator[dict[str, int]]:
    """``per_s`` vehicles a second stamped as just received (every 250 ms a quarter), until the block ends; yields
    what was written (vehicle id → received_ms), filled as it is."""
    stop = threading.Event()
    engine = sa.create_engine(url)
    written: dict[str, int] = {}

    def run() -> None:
        n = 0
        statement = sa.text("UPDATE vehicles SET received_ms = :now, battery_pct = :b WHERE vehicle_id = ANY(:ids)")
        if engine.dialect.name == "sqlite":
            statement = sa.text("UPDATE vehicles SET received_ms = :now, battery_pct = :b WHERE vehicle_id IN :ids")
            statement = statement.bindparams(sa.bindparam("ids", expanding=True))
        while not stop.wait(0.25):
            ids = [f"bike-{(n + k) % vehicles:05d}" for k in range(max(1, per_s // 4))]
            n += len(ids)
            now = time.time_ns() // 1_000_000
            with engine.begin() as conn:
                conn.execute(statement, {"now": now, "b": 50 + n % 40, "ids": ids})
            written.update(dict.fromkeys(ids, now))

    thread = threading.Thread(target=run, name="churn", daemon=True)
    thread.start()
    try:
        yield written
    finally:
        stop.set()
        thread.join(timeout=10)
        engine.dispose()


def freshen(url: str) -> None:
    """Place the vehicles inside the zone and stamp them as received in the last minute, spread over it: a fleet at
    work, not one silent for years nor one outside the zone (10,000 alerts at once: see ``settle``)."""
    engine = sa.create_engine(url)
    n = "CAST(substr(vehicle_id, 6) AS INTEGER)"  # bike-00042 → 42
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"UPDATE vehicles SET received_ms = :now - 5000 - {n} * 5, last_seen_ms = :now - 5000 - {n} * 5, "
                f"lat = {INSIDE[0]} + ({n} % 100 - 50) / 25000.0, lon = {INSIDE[1]} + ({n} % 97 - 48) / 25000.0"
            ),
            {"now": time.time_ns() // 1_000_000},
        )
    engine.dispose()


def settle(url: str, operator: httpx.Client) -> float:
    """Seconds until the change source follows changes again after its first judgement of the fleet (it opens
    the alerts of every faulted, offline or low vehicle, a few hundred writes a round): one vehicle changed, and
    waited for in the snapshot."""
    engine = sa.create_engine(url)
    now = time.time_ns() // 1_000_000
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE vehicles SET received_ms = :now WHERE vehicle_id = 'bike-00001'"), {"now": now})
    engine.dispose()
    return caught_up(operator, {"bike-00001": now}, within_s=300.0)


# --- the run ---------------------------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


Results = dict[str, list[tuple[list[float], list[float]]]]  # endpoint -> per round (its ms, /healthz's ms)


def measure(url: str, args: argparse.Namespace, sizes: Sizes) -> tuple[Results, int, list[float]]:
    """Every endpoint's samples per round, the fleet response's size in bytes, and how long after each round's
    churn the snapshot showed all of it (what proves it follows the changes)."""
    riders = [address(2, (r * 37) % sizes.riders) for r in range(args.riders)]
    results: Results = {}
    followed: list[float] = []
    with server(url, riders) as (base, secret):
        operator = signed_in(base, "/login", {"name": OPERATOR, "password": secret})
        first, later = rider_calls(base, secret, len(riders))
        fleet_size = len(operator.get("/api/v1/fleet").content)  # waits for the change source's first read
        settled = settle(url, operator)
        say(f"  the change source follows changes {settled:.1f} s after the first fleet answer")
        calls: dict[str, Callable[[], tuple[list[float], list[float]]]] = {
            "fleet snapshot": lambda: sample([(operator, "/api/v1/fleet")], args.samples),
            "a rider's first page": lambda: sample(first, args.samples),
            "a rider's later page": lambda: sample(later, args.samples),
            "payouts": lambda: sample([(operator, "/api/v1/payouts?limit=100")], args.samples),
        }
        for call in calls.values():  # warm up: connections, statement caches, the snapshot's encoding
            call()
        for n in range(args.rounds):
            for name, call in calls.items():
                results.setdefault(name, []).append(call())
            with churn(url, sizes.vehicles, args.churn) as written:
                time.sleep(0.5)
                results.setdefault("fleet snapshot, fleet changing", []).append(calls["fleet snapshot"]())
            followed.append(caught_up(operator, dict(written)))
            say(f"  round {n + 1}/{args.rounds}: " + ", ".join(
                f"{name} p95 {percentile(r[-1][0], 0.95):.1f} ms" for name, r in results.items()))  # fmt: skip
    with server(url, riders, live=False) as (base, secret):
        operator = signed_in(base, "/login", {"name": OPERATOR, "password": secret})
        sample([(operator, "/api/v1/fleet")], 5)
        results[BEFORE] = [sample([(operator, "/api/v1/fleet")], args.samples)]
        say(f"  {BEFORE}: p95 {percentile(results[BEFORE][0][0], 0.95):.1f} ms")
    return results, fleet_size, [settled, *followed]


def caught_up(operator: httpx.Client, written: dict[str, int], within_s: float = 10.0) -> float:
    """Seconds from the churn's end until the snapshot shows every change it wrote (polled every 100 ms);
    ``nan`` if it has not within ``within_s``."""
    began = time.monotonic()
    while time.monotonic() - began < within_s:
        rows = operator.get("/api/v1/fleet").json()["rows"]
        if all((r[6] or 0) >= written.get(r[0], 0) for r in rows):
            return time.monotonic() - began
        time.sleep(0.1)
    return float("nan")


def figures_of(results: Results) -> list[Figure]:
    found = []
    for name, rounds in results.items():
        for label, q in (("p50", 0.5), ("p95", 0.95)):
            ours = tuple(percentile(r[0], q) for r in rounds)
            base = tuple(percentile(r[1], q) for r in rounds)
            found.append(Figure(f"{name}, {label}", "ms", ours, base, name, "GET /healthz", higher_is_better=False))
    return found


def notes_of(
    results: Results, args: argparse.Namespace, sizes: Sizes, kind: str, fleet_bytes: int, followed: list[float]
) -> list[str]:
    notes = [
        f"{kind}: {sizes.vehicles:,} vehicles, {sizes.trips:,} trips, {sizes.owners:,} owners, {sizes.riders:,} "
        f"riders; {args.samples} samples per endpoint and round, {args.rounds} round(s), {len(results)} endpoints; "
        f"the fleet response is {fleet_bytes / 1e6:.2f} MB; {args.riders} riders signed in rotate; the fleet "
        f"changing: {args.churn} vehicles a second stamped as received",
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end; the change source "
        f"followed changes {followed[0]:.1f} s after the first fleet answer (its first judgement of every vehicle's "
        f"alerts); the snapshot showed every change of a round's churn within "
        f"{', '.join(f'{s:.2f}' for s in followed[1:])} s of its end (nan: not within 10 s)",
    ]
    for name, rounds in results.items():
        every = [v for r in rounds for v in r[0]]
        base = [v for r in rounds for v in r[1]]
        target = TARGETS_MS.get(name)
        p95 = percentile(every, 0.95)
        verdict = "" if target is None else f"; target p95 ≤ {target:.0f} ms: {'met' if p95 <= target else 'MISSED'}"
        notes.append(
            f"{name}: p50 {percentile(every, 0.5):.1f} ms, p95 {p95:.1f} ms over all rounds; /healthz p50 "
            f"{percentile(base, 0.5):.1f} ms, p95 {percentile(base, 0.95):.1f} ms; ratio p50 "
            f"{percentile(every, 0.5) / percentile(base, 0.5):.1f}×, p95 {p95 / percentile(base, 0.95):.1f}×{verdict}"
        )
    return notes


def run(args: argparse.Namespace) -> tuple[list[Figure], list[str], dict[str, dict[str, float]]]:
    sizes = Sizes(args.vehicles, args.trips, args.owners, args.riders_total)
    kind = args.database
    if kind == "postgresql" and not postgres_answers(args.postgres_url):
        say(f"PostgreSQL does not answer at {args.postgres_url}: measuring on SQLite instead")
        kind = "sqlite"
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory() as folder,
        scratch_database(kind, args.postgres_url, Path(folder), "http") as url,
    ):
        say(f"  dashboard_http: filling {kind}")
        fill(url, sizes, say)
        stamp_vehicles(url, sizes)
        freshen(url)
        say(f"  dashboard_http: filled in {time.monotonic() - began:.0f} s; serving and measuring")
        results, fleet_bytes, followed = measure(url, args, sizes)
    latencies = {
        name: {"p50": percentile([v for r in rounds for v in r[0]], 0.5),
               "p95": percentile([v for r in rounds for v in r[0]], 0.95)}
        for name, rounds in results.items()
    }  # fmt: skip
    every_base = [v for rounds in results.values() for r in rounds for v in r[1]]
    latencies["/healthz"] = {"p50": percentile(every_base, 0.5), "p95": percentile(every_base, 0.95)}
    return figures_of(results), notes_of(results, args, sizes, kind, fleet_bytes, followed), latencies


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard_http", description=(__doc__ or "").split("\n")[0])
    p.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    p.add_argument("--postgres-url", default=DEFAULT_POSTGRES)
    p.add_argument("--vehicles", type=int, default=10_000)
    p.add_argument("--trips", type=int, default=1_000_000)
    p.add_argument("--owners", type=int, default=1_000)
    p.add_argument("--riders-total", type=int, default=20_000, help="riders the trips are spread over")
    p.add_argument("--riders", type=int, default=8, help="riders signed in, rotating")
    p.add_argument("--samples", type=int, default=100, help="per endpoint and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--churn", type=int, default=1000, help="vehicles a second changing in the second fleet figure")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one round: a smoke for CI")
    p.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.vehicles, args.trips, args.owners, args.riders_total = 300, 10_000, 30, 200
        args.riders, args.samples, args.rounds, args.churn = 3, 20, 1, 100
    return args


def figures(argv: Sequence[str] | None = None) -> tuple[list[Figure], list[str], dict[str, dict[str, float]]]:
    """The harness's entry (``bench.runners.structured``)."""
    return run(parse(argv))


def main(argv: Sequence[str] | None = None) -> int:
    from bench.harness import table

    args = parse(argv)
    if args.serve is not None:
        return serve(args.serve)
    found, notes, _ = run(args)
    print(table(found))
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
