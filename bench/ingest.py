"""Ingest throughput of the aggregator (every event and state signature verified, stored) against a bare paho
subscriber, both subscribed to the same stream in the same run.

A seeded fleet's traffic (births, telemetry, events, offline states, as ``smartzone simulate`` publishes it) is
generated and signed once, before any timing; its registrations are enrolled in a fresh database each round.
Each round starts the project's Mosquitto (generated credentials and ACL) on a free port and two subscriber
processes: (a) a bare paho client (MQTT 5, QoS 1, counting messages and nothing else) and (b) the aggregator
as ``smartzone aggregate`` wires it (``MqttClient`` with shared subscriptions → inbox → ``Aggregator.run`` on
``SqlUnitOfWork``), verifying every event and state signature (and telemetry's with ``--sign-telemetry``)
against the registry and storing into SQLite or PostgreSQL. The chain is ``settlement.clearing.FakeClearing``:
settlement is not what is measured. The main process then publishes everything, as fast as the broker takes
it, as the operator's gateway. Each side's rate runs from its first message to its last (the aggregator's:
stored or dead-lettered, then acknowledged); rounds are repeated and the medians and their ratio printed.

    python -m bench.ingest --database sqlite [--sign-telemetry] [--vehicles 3000] [--minutes 10] [--rounds 3]
                           [--aggregators 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import sqlalchemy as sa

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROOT = "smartzone"
START_MS = 1_795_000_000_000  # a fixed moment in the past: the payloads depend only on the fleet's seed
STALL_S = 60.0  # a side that receives nothing new for this long has lost messages: the round is reported short
SAMPLE_S = 0.1  # how often each side's progress is sampled (for a plot of its rate over time)


@dataclass(frozen=True)
class Side:
    """What a subscriber process needs: where to connect, what to expect, where to store."""

    mqtt_url: str
    expected: int
    database_url: str = ""
    sign_telemetry: bool = False
    client_id: str = "smartzone-bench-aggregator"


@dataclass(frozen=True)
class Outcome:
    """One side of one round: messages handled between its first and its last message."""

    name: str
    count: int
    first: float
    last: float
    cpu_s: float  # CPU time of the whole process (every thread) over the same span
    detail: str = ""
    samples: tuple[tuple[float, int], ...] = ()  # (monotonic s, messages handled so far), every SAMPLE_S

    @property
    def rate(self) -> float:
        return self.count / max(self.last - self.first, 1e-9)

    @property
    def cpu_us(self) -> float:
        """CPU microseconds per message."""
        return self.cpu_s * 1e6 / max(self.count, 1)


# --- the stream -------------------------------------------------------------------------------------
@dataclass
class Recorder:
    """A ``Publisher`` that keeps what it is given: the stream, generated before any timing."""

    sent: list[tuple[str, bytes, int, bool]]

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.sent.append((topic, payload, qos, retain))

    def flush(self, timeout: float = 30.0) -> None:
        return None


def traffic(vehicles: int, minutes: float, seed: int, sign_telemetry: bool) -> tuple[Any, list[Any]]:
    """The fleet and its whole run as (topic, payload, qos, retain), all signatures made here."""
    from simulator.fleet import Fleet, FleetConfig
    from simulator.run import run_simulation
    from smartzone.parts import rider_metering

    # the riders' app plays too (consents, vouchers): trips are paid as `up` pays them
    fleet = Fleet(FleetConfig(vehicles=vehicles, seed=seed, sign_telemetry=sign_telemetry), metering=rider_metering())
    recorder = Recorder([])
    run_simulation(fleet, recorder, start_ms=START_MS, duration_s=minutes * 60, speed=0, root=ROOT)
    return fleet, recorder.sent


def registry_entries(fleet: Any) -> list[Any]:
    """The fleet's registrations, each checked (operator signature) as ``enrol`` checks it.

    Checked against the operator alone rather than through ``enrol``, whose ``Registry.with_entry`` copies the
    whole registry per entry (quadratic: minutes for thousands of vehicles); each vehicle appears once, so no
    entry can overlap another and the checks are the same.
    """
    from settlement.registry import Registry

    registry = Registry({fleet.config.operator: fleet.operator_address}, [])
    return [registry.check_registration(r, fleet.domain) for r in fleet.registrations(0)]


# --- databases --------------------------------------------------------------------------------------
@contextmanager
def scratch_database(kind: str, postgres_url: str, folder: Path, name: str) -> Iterator[str]:
    """The URL of an empty database: a SQLite file in ``folder``, or a fresh PostgreSQL schema (dropped after)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / (name + '.db')}"
        return
    schema = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in postgres_url else "?"
        yield f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def prepare(url: str, fleet: Any, entries: Sequence[Any]) -> None:
    """Migrate ``url`` to the head revision and enrol the fleet: its operator trusted, its entries held."""
    from settlement.clearing import deployed_fake
    from settlement.db import Database
    from settlement.enrolment import trust_operator
    from smartzone.parts import unit_of_work

    database = Database.open(url)
    database.upgrade()
    uow = unit_of_work(database)
    trust_operator(uow, fleet.config.operator, fleet.operator_address, 0)
    with uow() as work:
        for entry in entries:
            work.registry.add(entry, 0)
        chain = deployed_fake()
        work.registry.record_deployment(chain.chain_id(), str(chain.address), 0)  # before any aggregator starts
        work.commit()
    database.close()


# --- the two subscribers (each in its own process) -------------------------------------------------
def bare_side(side: Side, ready: MpEvent, results: mp.Queue[Outcome]) -> None:
    """A plain paho v5 client on the whole tree at QoS 1 that counts messages."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    from sensors.mqtt import BrokerAddress

    address = BrokerAddress.parse(side.mqtt_url)
    times = [0.0, 0.0]
    cpu = [0.0, 0.0]
    count = [0]
    done, subscribed = threading.Event(), threading.Event()

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        count[0] += 1
        if count[0] == 1:
            times[0], cpu[0] = time.monotonic(), time.process_time()
        if count[0] >= side.expected:
            times[1], cpu[1] = time.monotonic(), time.process_time()
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(address.username, address.password)
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(address.host, address.port)
    client.loop_start()
    client.subscribe(f"{ROOT}/v1/#", qos=1)
    subscribed.wait(10)
    samples = _sampler(done, lambda: count[0])
    ready.set()
    _wait(done, count)
    client.disconnect()
    client.loop_stop()
    results.put(
        Outcome(
            "bare", count[0], times[0], times[1] or time.monotonic(), (cpu[1] or time.process_time()) - cpu[0],
            samples=tuple(samples),
        )
    )  # fmt: skip


def aggregator_side(side: Side, ready: MpEvent, results: mp.Queue[Outcome], handled: Any = None) -> None:
    """The aggregator wired as ``smartzone.parts.build_aggregator`` wires it, with ``FakeClearing`` for the chain.

    With several aggregators in the shared-subscription group each gets a share of the stream: ``handled`` (a
    ``multiprocessing.Value`` shared by them) counts what all of them handled, and each stops once it reaches
    ``side.expected``.
    """
    from sensors.mqtt import MqttClient
    from sensors.ports import Received
    from sensors.topics import Channel, shared, subscription
    from settlement.aggregator import Aggregator
    from settlement.clearing import deployed_fake
    from settlement.db import Database
    from smartzone.parts import unit_of_work

    first: list[float] = []  # monotonic and process time of the first message
    finished = threading.Event()
    last = [0.0, 0.0]

    def total(batch: int) -> int:
        if handled is None:
            return aggregator.counters.received
        with handled.get_lock():
            handled.value += batch
            return int(handled.value)

    class Timed(Aggregator):
        def handle(self, received: Sequence[Received]) -> Any:
            result = super().handle(received)
            if total(len(received)) >= side.expected and not finished.is_set():
                last[:] = [time.monotonic(), time.process_time()]
                finished.set()
            return result

    database = Database.connect(side.database_url)
    chain = deployed_fake()  # every aggregator's own fake chain holds the contract that ``prepare`` recorded
    aggregator = Timed(unit_of_work(database), chain, sign_telemetry=side.sign_telemetry)
    aggregator.attach_contract()
    inbox: queue.Queue[Received] = queue.Queue()

    def arrive(item: Received) -> None:
        if not first:
            first.extend((time.monotonic(), time.process_time()))
        inbox.put(item)

    client = MqttClient(side.mqtt_url, side.client_id, persistent_session=True)
    load = [subscription(Channel.TELEMETRY, ROOT)]
    if client.probe_protocol() == "5":
        load = [shared(f) for f in load]
    client.subscribe([(f, 1) for f in load], arrive)
    whole = (Channel.EVENT, Channel.STATE, Channel.VOUCHER)  # as smartzone.parts subscribes: all of them, unshared
    client.subscribe([(subscription(c, ROOT), 1) for c in whole], arrive)
    client.connect()
    samples = _sampler(finished, lambda: aggregator.counters.received)
    ready.set()
    stop = threading.Event()

    def watch() -> None:
        if handled is None:
            _wait(finished, aggregator.counters)
        else:
            seen, since = -1, time.monotonic()
            while not finished.wait(0.2) and time.monotonic() - since < STALL_S:
                if handled.value >= side.expected:  # the others handled the rest
                    last[:] = [time.monotonic(), time.process_time()]
                    finished.set()
                elif handled.value != seen:
                    seen, since = handled.value, time.monotonic()
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    aggregator.run(inbox, stop)
    client.close()
    c = aggregator.counters
    start, start_cpu = first or [0.0, 0.0]
    end, end_cpu = last if last[0] else [time.monotonic(), time.process_time()]
    results.put(Outcome("aggregator", c.received, start, end, end_cpu - start_cpu, c.summary(), tuple(samples)))


def _sampler(done: threading.Event, progress: Callable[[], int]) -> list[tuple[float, int]]:
    """A list that a daemon thread fills with (monotonic s, ``progress()``) every ``SAMPLE_S`` until ``done``."""
    samples: list[tuple[float, int]] = []

    def sample() -> None:
        while not done.wait(SAMPLE_S):
            samples.append((time.monotonic(), progress()))
        samples.append((time.monotonic(), progress()))

    threading.Thread(target=sample, daemon=True).start()
    return samples


def _wait(done: threading.Event, progress: Any) -> None:
    """Wait for ``done``; give up once ``progress`` (a list's first item or counters' ``received``) stalls."""
    seen, since = -1, time.monotonic()
    while not done.wait(0.5):
        now_seen = progress[0] if isinstance(progress, list) else progress.received
        if now_seen != seen:
            seen, since = now_seen, time.monotonic()
        elif time.monotonic() - since > STALL_S:
            return


# --- one round --------------------------------------------------------------------------------------
def one_round(
    stream: Sequence[tuple[str, bytes, int, bool]],
    database_url: str,
    operator: str,
    sign_telemetry: bool,
    aggregators: int = 1,
) -> tuple[Outcome, Outcome, float]:
    """Broker up, every subscriber ready, everything published: (bare, aggregator, publisher msg/s).

    With ``aggregators`` > 1 that many aggregator processes share the stream (an MQTT 5 shared subscription for
    telemetry; each receives every event and state, as ``smartzone aggregate`` does); the aggregator outcome is
    then their sum, from the first message any of them saw to the last any of them handled.
    """
    from sensors.mqtt import MqttClient
    from smartzone.broker import mosquitto, mosquitto_binary
    from smartzone.broker_access import Role, generate, url_for

    binary = mosquitto_binary() or "/usr/sbin/mosquitto"
    access = generate(ROOT, [operator])
    ctx = mp.get_context("spawn")
    results: mp.Queue[Outcome] = ctx.Queue()
    whole = sum(1 for topic, *_ in stream if topic.endswith(("/state", "/event")))
    expected = len(stream) + (aggregators - 1) * whole  # every aggregator receives every event and state
    handled = ctx.Value("q", 0) if aggregators > 1 else None
    with mosquitto(binary, access=access) as broker:
        reader = url_for(access.find(Role.AGGREGATOR), broker.url)
        sides: list[tuple[Callable[..., None], tuple[Any, ...]]] = [(bare_side, (Side(reader, len(stream)),))]
        for n in range(aggregators):
            side = Side(reader, expected, database_url, sign_telemetry, f"smartzone-bench-aggregator-{n}")
            sides.append((aggregator_side, (side,) if handled is None else (side, None, None, handled)))
        processes, readies = [], []
        for target, args in sides:
            ready = ctx.Event()
            args = (args[0], ready, results, *args[3:])
            processes.append(ctx.Process(target=target, args=args, daemon=True))
            readies.append(ready)
            processes[-1].start()
        for ready, process in zip(readies, processes, strict=True):
            if not ready.wait(120):
                raise SystemExit(f"a subscriber did not get ready (exit code {process.exitcode})")
        publisher = MqttClient(url_for(access.find(Role.GATEWAY, operator), broker.url), "bench-publisher")
        publisher.connect()
        started = time.monotonic()
        for topic, payload, qos, retain in stream:
            publisher.publish(topic, payload, qos, retain)
        publisher.flush(600)
        published = len(stream) / (time.monotonic() - started)
        publisher.close()
        outcomes = [results.get(timeout=1800)] + [results.get(timeout=600) for _ in range(aggregators)]
        for process in processes:
            process.join(60)
    bare = next(o for o in outcomes if o.name == "bare")
    ours = [o for o in outcomes if o.name == "aggregator"]
    return bare, combined(ours) if len(ours) > 1 else ours[0], published


def combined(outcomes: Sequence[Outcome]) -> Outcome:
    """Several aggregators' outcomes as one: their sum, from the first message any saw to the last any handled."""
    first = min(o.first for o in outcomes if o.count)
    return Outcome(
        f"{len(outcomes)} aggregators",
        sum(o.count for o in outcomes),
        first,
        max(o.last for o in outcomes),
        sum(o.cpu_s for o in outcomes),
        "; ".join(f"[{n}] {o.count:,} in {o.last - o.first:.2f} s: {o.detail}" for n, o in enumerate(outcomes)),
        _summed(outcomes),
    )


def _summed(outcomes: Sequence[Outcome]) -> tuple[tuple[float, int], ...]:
    """The processes' progress samples added up, on the first process's sampling times."""
    if not outcomes or not outcomes[0].samples:
        return ()
    out = []
    for at, _ in outcomes[0].samples:
        out.append((at, sum(_progress_at(o.samples, at) for o in outcomes)))
    return tuple(out)


def _progress_at(samples: Sequence[tuple[float, int]], at: float) -> int:
    """The last progress at or before ``at`` (0 before the first sample)."""
    seen = 0
    for when, count in samples:
        if when > at:
            break
        seen = count
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("SMARTZONE_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
        help="PostgreSQL to make a scratch schema in (each round's is dropped after it)",
    )  # fmt: skip
    parser.add_argument("--sign-telemetry", action="store_true", help="sign telemetry too (and verify it)")
    parser.add_argument("--vehicles", type=int, default=3000)
    parser.add_argument("--minutes", type=float, default=10.0, help="simulated minutes of traffic")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--aggregators", type=int, default=1,
        help="aggregator processes sharing the stream (MQTT 5 shared subscriptions); their sum is measured",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.aggregators < 1:
        parser.error("--aggregators must be at least 1")

    say(f"generating and signing {args.minutes:g} simulated minutes of {args.vehicles} vehicles ...")
    started = time.monotonic()
    fleet, stream = traffic(args.vehicles, args.minutes, args.seed, args.sign_telemetry)
    entries = registry_entries(fleet)
    channels = {name: sum(1 for t, *_ in stream if t.endswith("/" + name)) for name in ("telemetry", "event", "state")}
    signed = sum(1 for _, p, *_ in stream if b'"sig"' in p)
    say(f"  {len(stream):,} messages {channels}, {signed:,} signed, in {time.monotonic() - started:.1f} s")

    bare: list[Outcome] = []
    ours: list[Outcome] = []
    published: list[float] = []
    with tempfile.TemporaryDirectory(prefix="smartzone-bench-") as folder:
        for n in range(1, args.rounds + 1):
            with scratch_database(args.database, args.postgres_url, Path(folder), f"ingest_r{n}") as url:
                say(f"round {n}/{args.rounds}: enrolling {len(entries)} vehicles in a fresh {args.database} ...")
                prepare(url, fleet, entries)
                b, a, p = one_round(stream, url, fleet.config.operator, args.sign_telemetry, args.aggregators)
            bare.append(b)
            ours.append(a)
            published.append(p)
            say(
                f"round {n}/{args.rounds}: publisher {p:,.0f} msg/s; bare paho {b.count:,} in "
                f"{b.last - b.first:.2f} s = {b.rate:,.0f} msg/s; aggregator {a.count:,} in {a.last - a.first:.2f} s "
                f"= {a.rate:,.0f} msg/s; ratio {a.rate / b.rate:.2f}; CPU/msg bare {b.cpu_us:.0f} us, aggregator "
                f"{a.cpu_us:.0f} us\n  aggregator: {a.detail}"
            )
    report(args, len(stream), channels, signed, bare, ours, published)
    short = [o for o in (*bare, *ours) if o.count < len(stream)]
    return 1 if short else 0


def report(
    args: argparse.Namespace,
    total: int,
    channels: dict[str, int],
    signed: int,
    bare: list[Outcome],
    ours: list[Outcome],
    published: list[float],
) -> None:
    ratios = [a.rate / b.rate for a, b in zip(ours, bare, strict=True)]
    rate_bare = statistics.median(o.rate for o in bare)
    rate_ours = statistics.median(o.rate for o in ours)
    print(f"stream: {total:,} messages ({channels}), {signed:,} signed; {args.vehicles} vehicles, "
          f"{args.minutes:g} simulated min, seed {args.seed}")  # fmt: skip
    print(f"database: {args.database}; telemetry signed: {'yes' if args.sign_telemetry else 'no'}; "
          "chain: settlement.clearing.FakeClearing (settlement is not measured)")  # fmt: skip
    print(f"publisher (gateway, sensors.mqtt): {statistics.median(published):,.0f} msg/s (median of {args.rounds})")
    print(f"bare paho subscriber: {rate_bare:,.0f} msg/s (median of {args.rounds})")
    print(f"aggregator (verify + store + ack): {rate_ours:,.0f} msg/s (median of {args.rounds})")
    print(f"ratio aggregator / bare paho: {rate_ours / rate_bare:.2f} (median of per-round ratios "
          f"{statistics.median(ratios):.2f}; target >= 0.8)")  # fmt: skip
    cpu_bare = statistics.median(o.cpu_us for o in bare)
    cpu_ours = statistics.median(o.cpu_us for o in ours)
    print(f"CPU per message (whole process, every thread): bare paho {cpu_bare:.0f} us, aggregator {cpu_ours:.0f} us "
          f"(ratio {cpu_ours / cpu_bare:.1f}; median of {args.rounds})")  # fmt: skip
    for o in (*bare, *ours):
        if o.count < total:
            print(f"WARNING: {o.name} handled {o.count:,} of {total:,} messages (stalled for {STALL_S:g} s)")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
