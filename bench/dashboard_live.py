"""Live push (issue 11): a reading published over MQTT until a connected SSE client sees it, beside ``/healthz``.

The real path in one process: a broker (Mosquitto with the project's configuration when installed, else the
embedded amqtt), the aggregator on SQLite (embedded chain), the dashboard under uvicorn with its change source,
and SSE clients on ``/api/v1/live``. Each sample publishes one telemetry reading with a battery level no earlier
sample used and times until the client sees the vehicle's row with it. (a) One client: p50/p95 beside the
latency of ``GET /healthz`` on the same server, sampled in the same rounds. (b) 100 clients: the same latency
(every client's delivery counted) beside one client's. A background fleet publishes a reading per vehicle per
second meanwhile, so that the change source has the load of ``smartzone up``'s fleet.

    python -m bench.dashboard_live [--quick] [--rounds 3] [--samples 200] [--clients 100] [--fleet 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.harness import Figure

BACKGROUND_BATTERY = 95.0
"""The background fleet's battery level: never one of the samples' (30.0 to 89.9)."""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Sizes:
    rounds: int
    samples: int
    clients: int
    fleet: int

    @classmethod
    def of(cls, args: argparse.Namespace) -> Sizes:
        quick = args.quick
        return cls(
            rounds=args.rounds or (1 if quick else 3),
            samples=args.samples or (20 if quick else 200),
            clients=args.clients or (20 if quick else 100),
            fleet=args.fleet if args.fleet is not None else (20 if quick else 300),
        )


@dataclass
class Pipeline:
    """What a round talks to: the server's URL, a publisher of telemetry, the vehicles."""

    base: str
    publisher: Any
    operator: str
    root: str
    vehicles: list[tuple[str, Any]]  # the background fleet's
    sampled: list[tuple[str, Any]]  # the samples'
    broker: str
    seq: int = field(default_factory=lambda: int(time.time() * 1000))

    def publish(self, vehicle: tuple[str, Any], battery_pct: float) -> None:
        from sensors.codec import encode
        from sensors.messages import Position, Telemetry
        from sensors.topics import Channel, topic_for

        self.seq += 1
        vehicle_id, kind = vehicle
        reading = Telemetry(
            vehicle_id, self.operator, kind, self.seq, int(time.time() * 1000), Position(lat=51.2153, lon=4.3962),
            0.0, 1000, battery_pct=battery_pct,
        )  # fmt: skip
        topic = topic_for(self.operator, vehicle_id, Channel.TELEMETRY, self.root)
        self.publisher.publish(topic, encode(reading), qos=1)


@contextlib.contextmanager
def pipeline(folder: Path, fleet_size: int, clients: int) -> Iterator[Pipeline]:
    """Broker, aggregator, dashboard server: started, then stopped when the block ends."""
    import uvicorn

    from dashboard import deps
    from dashboard.app import create_app
    from dashboard.changes import Timing
    from dashboard.config import DashboardConfig, Principal, Role
    from dashboard.routes.live import LiveLimits, LiveOptions
    from sensors.mqtt import MqttClient
    from settlement.alerts import SqlAlertStore  # type: ignore[import-not-found,unused-ignore]
    from smartzone.broker import amqtt_broker, free_port, mosquitto, mosquitto_binary, wait_open
    from smartzone.broker_access import Role as MqttRole
    from smartzone.broker_access import generate, url_for
    from smartzone.parts import build_aggregator, make_fleet, open_database, read_model, register_fleet
    from smartzone.settings import Settings

    sampled = 10  # vehicles of the samples alone, apart from the background fleet's
    values: dict[str, Any] = {"data_dir": folder, "vehicles": fleet_size + sampled, "aggregator_id": "bench-live"}
    settings = Settings(**values)
    access = generate(settings.topic_root, [settings.operator])
    binary = mosquitto_binary()
    broker_cm = mosquitto(binary, access=access) if binary else amqtt_broker(access=access)
    with broker_cm as broker:
        database = open_database(settings, migrate=True)
        part = build_aggregator(
            settings, database, mqtt_url=url_for(access.find(MqttRole.AGGREGATOR), broker.url), protocol=broker.protocol
        )
        fleet = make_fleet(settings, part.chain_id)
        register_fleet(database, fleet)
        part.aggregator.refresh_registry(force=True)
        every = [(r.vehicle_id, r.kind) for r in fleet.registrations(0)]
        vehicles, samples = every[:fleet_size], every[fleet_size:]
        stop = threading.Event()
        aggregating = threading.Thread(target=part.run, args=(stop,), name="aggregator", daemon=True)
        aggregating.start()
        gateway = url_for(access.find(MqttRole.GATEWAY, settings.operator), broker.url)
        publisher = MqttClient(gateway, "bench-live-gateway", protocol=broker.protocol).connect()
        options = LiveOptions(timing=Timing(), limits=LiveLimits(per_principal=clients + 10, total=clients + 10))
        app = create_app(
            read_model(database),
            DashboardConfig(session_secret="b" * 32),
            alert_store=SqlAlertStore(database),
            live_options=options,
        )
        app.dependency_overrides[deps.principal] = lambda: Principal(Role.OPERATOR, "bench")
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        serving = threading.Thread(target=server.run, name="uvicorn", daemon=True)
        serving.start()
        assert wait_open(port, 15), "the dashboard did not start"
        name = "Mosquitto" if binary else "amqtt (embedded)"
        try:
            base = f"http://127.0.0.1:{port}"
            yield Pipeline(base, publisher, settings.operator, settings.topic_root, vehicles, samples, name)
        finally:
            server.should_exit = True
            serving.join(timeout=10)
            publisher.close()
            stop.set()
            aggregating.join(timeout=30)


class Watchers:
    """``n`` SSE clients in a process of their own (as a browser would be: not sharing the server's GIL);
    ``seen[(vehicle, battery)]`` lists when (``time.monotonic``, one clock for every process) each saw the row."""

    def __init__(self, base: str, n: int) -> None:
        self.base, self.n = base, n
        self.seen: dict[tuple[str, float], list[float]] = defaultdict(list)
        self.lock = threading.Lock()
        context = mp.get_context("spawn")
        self.rows: Any = context.Queue()
        self.ready, self.stop = context.Event(), context.Event()
        self.process = context.Process(
            target=watch, args=(base, n, self.rows, self.ready, self.stop), name="sse-clients", daemon=True
        )
        self.reader = threading.Thread(target=self._read, name="sse-rows", daemon=True)

    def __enter__(self) -> Watchers:
        self.process.start()
        self.reader.start()
        if not self.ready.wait(60):
            self.__exit__()
            raise RuntimeError(f"the {self.n} live clients did not all connect")
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.process.join(timeout=15)
        if self.process.is_alive():
            self.process.kill()
        self.rows.put(None)
        self.reader.join(timeout=10)

    def _read(self) -> None:
        while (batch := self.rows.get()) is not None:
            with self.lock:
                for vehicle_id, battery, at in batch:
                    self.seen[(vehicle_id, battery)].append(at)

    def wait(self, key: tuple[str, float], count: int, timeout: float) -> list[float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.seen.get(key, ())) >= count:
                    return list(self.seen[key])
            time.sleep(0.002)
        with self.lock:
            return list(self.seen.get(key, ()))


def watch(base: str, n: int, rows: Any, ready: Any, stop: Any) -> None:
    """The clients' process: ``n`` streams on one event loop; the sampled rows go to ``rows`` as they arrive."""
    connected = 0

    async def one() -> None:
        nonlocal connected
        async with (
            httpx.AsyncClient(base_url=base, timeout=None) as http,
            http.stream("GET", "/api/v1/live") as response,
        ):
            if response.status_code != 200:
                raise RuntimeError(f"/api/v1/live answered {response.status_code}")
            connected += 1
            if connected == n:
                ready.set()
            name = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name == "vehicles":
                    at = time.monotonic()
                    found = [(r[0], r[3], at) for r in json.loads(line[6:])["rows"] if r[3] != BACKGROUND_BATTERY]
                    if found:
                        rows.put(found)

    async def main() -> None:
        tasks = [asyncio.create_task(one()) for _ in range(n)]
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


@dataclass
class Round:
    live_ms: list[float] = field(default_factory=list)
    health_ms: list[float] = field(default_factory=list)
    missed: int = 0


def sample(line: Pipeline, watchers: Watchers, samples: int, offset: int, rng: random.Random) -> Round:
    """``samples`` readings, each timed until every watcher saw it, and as many ``/healthz`` requests."""
    out = Round()
    with httpx.Client(base_url=line.base, timeout=10) as http:
        http.get("/healthz")
        for k in range(samples):
            vehicle = line.sampled[k % len(line.sampled)]
            battery = round(30.0 + ((offset + k) % 600) / 10, 1)
            started = time.monotonic()
            line.publish(vehicle, battery)
            seen = watchers.wait((vehicle[0], battery), watchers.n, 10.0)
            out.live_ms += [(t - started) * 1000 for t in seen]
            out.missed += watchers.n - len(seen)
            started = time.perf_counter()
            http.get("/healthz")
            out.health_ms.append((time.perf_counter() - started) * 1000)
            time.sleep(rng.uniform(0.05, 0.3))  # another phase of the change source's poll
    return out


@contextlib.contextmanager
def background(line: Pipeline, vehicles: int) -> Iterator[None]:
    """A reading per background vehicle per second (their battery levels never collide with the samples')."""
    stop = threading.Event()

    def run() -> None:
        fleet = line.vehicles
        while not stop.is_set():
            started = time.monotonic()
            for vehicle in fleet:
                line.publish(vehicle, BACKGROUND_BATTERY)
            stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    thread = threading.Thread(target=run, name="background-fleet", daemon=True)
    if vehicles:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if vehicles:
            thread.join(timeout=10)


def p(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(sizes: Sizes) -> tuple[list[Figure], list[str], dict[str, dict[str, float]]]:
    one: list[Round] = []
    many: list[Round] = []
    rng = random.Random(11)
    with tempfile.TemporaryDirectory(prefix="smartzone-bench-live-") as name:
        with pipeline(Path(name), sizes.fleet, sizes.clients) as line, background(line, sizes.fleet):
            say(f"  dashboard_live: {line.broker}, a background fleet of {len(line.vehicles)} vehicles")
            offset = 0
            for n in range(sizes.rounds):
                with Watchers(line.base, 1) as watchers:
                    one.append(sample(line, watchers, sizes.samples, offset, rng))
                offset += sizes.samples
                with Watchers(line.base, sizes.clients) as watchers:
                    many.append(sample(line, watchers, sizes.samples, offset, rng))
                offset += sizes.samples
                say(
                    f"  round {n + 1}: 1 client p95 {p(one[-1].live_ms, 0.95):.0f} ms, "
                    f"{sizes.clients} clients p95 {p(many[-1].live_ms, 0.95):.0f} ms, "
                    f"/healthz p95 {p(one[-1].health_ms, 0.95):.1f} ms"
                )
            broker = line.broker
    return report(sizes, one, many, broker)


def report(
    sizes: Sizes, one: list[Round], many: list[Round], broker: str
) -> tuple[list[Figure], list[str], dict[str, dict[str, float]]]:
    def per_round(rounds: list[Round], q: float, health: bool = False) -> tuple[float, ...]:
        return tuple(p(r.health_ms if health else r.live_ms, q) for r in rounds)

    figures = []
    for label, q in (("p50", 0.5), ("p95", 0.95)):
        figures.append(
            Figure(
                f"reading published → seen by 1 live client, {label}", "ms", per_round(one, q),
                per_round(one, q, health=True), "MQTT → aggregator → SQLite → SSE", "GET /healthz",
                higher_is_better=False,
            )
        )  # fmt: skip
        figures.append(
            Figure(
                f"reading published → seen by each of {sizes.clients} live clients, {label}", "ms",
                per_round(many, q), per_round(one, q), f"{sizes.clients} clients", "1 client",
                higher_is_better=False,
            )
        )  # fmt: skip
    all_one = [v for r in one for v in r.live_ms]
    all_many = [v for r in many for v in r.live_ms]
    notes = [
        f"broker: {broker}; {sizes.samples} samples per round and per side, {sizes.rounds} round(s); a background "
        f"fleet of {sizes.fleet} vehicles publishes one reading each per second; the change source polls every "
        f"250 ms and the aggregator waits up to 0.2 s for a batch",
        f"over all rounds: 1 client p50 {p(all_one, 0.5):.0f} ms, p95 {p(all_one, 0.95):.0f} ms, max "
        f"{max(all_one, default=float('nan')):.0f} ms; {sizes.clients} clients p50 {p(all_many, 0.5):.0f} ms, "
        f"p95 {p(all_many, 0.95):.0f} ms (target p95 ≤ 1000 ms)",
        f"deliveries missed within 10 s: {sum(r.missed for r in one)} (1 client), "
        f"{sum(r.missed for r in many)} ({sizes.clients} clients)",
        "the server, the aggregator and the publishers share one process (and its GIL), the broker is its own; "
        "the SSE clients run in a process of their own on one event loop, as a browser would",
    ]
    latencies = {
        "1 client": {"p50": p(all_one, 0.5), "p95": p(all_one, 0.95)},
        f"{sizes.clients} clients": {"p50": p(all_many, 0.5), "p95": p(all_many, 0.95)},
        "/healthz": {
            "p50": statistics.median([v for r in one for v in r.health_ms]),
            "p95": p([v for r in one for v in r.health_ms], 0.95),
        },
    }
    return figures, notes, latencies


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_live", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few samples, 20 clients, one round: a smoke")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--samples", type=int)
    parser.add_argument("--clients", type=int)
    parser.add_argument("--fleet", type=int, help="background vehicles publishing once a second")
    return parser.parse_args(argv)


def figures(argv: Sequence[str] | None = None) -> tuple[list[Figure], list[str], dict[str, dict[str, float]]]:
    """The harness's entry (``bench.runners.structured``)."""
    return measure(Sizes.of(parse(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    from bench.harness import table

    found, notes, _ = figures(argv)
    print(table(found))
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
