"""`smartzone simulate --speed 0` publishing against a bare paho publisher with the same payloads, in the same run.

A seeded fleet is stepped and signed once (its own cost, timed and reported apart) into a recording of what
each tick reports. Each round then publishes those messages four ways to one Mosquitto started with generated
logins (the gateway user of the fleet's operator, as `smartzone simulate` uses):

- **bare paho**: a plain paho v5 client sending the already encoded payloads (``bench.publish.bare_paho``), with
  100 QoS 1 messages in flight and paho queueing the rest (the baseline of issue 7), and again with no in-flight
  limit (paho then sends every QoS 1 message at once, past the broker's Receive Maximum);
- **adapter**: ``sensors.mqtt.MqttClient`` sending the same payloads (``bench.publish.adapter``);
- **simulate**: ``simulator.run.run_simulation`` at speed 0 over the recording, through ``MqttClient`` with a
  last will, a stop flag and a progress callback as the command has: routing, encoding and publishing;
- **end to end**: the same with a fresh fleet stepping and signing as it goes (what the command does).

Each one ends when the broker has acknowledged everything. The medians of the rounds and the medians of the
per-round ratios to the bare publisher (100 in flight) are printed; so are the fleet's own rate (stepping and
signing), the encoder's, and the runner's without a broker (routing and encoding).

    python -m bench.simulate [--vehicles 1000] [--minutes 20] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.publish import adapter, bare_paho
from sensors.codec import encode
from sensors.messages import Message
from sensors.mqtt import MqttClient, Will
from sensors.ports import FakePublisher
from sensors.topics import Channel, topic_for
from simulator.fleet import CompletedTrip, Fleet, FleetConfig
from simulator.run import run_simulation
from smartzone.broker import mosquitto, mosquitto_binary
from smartzone.broker_access import Role, generate, url_for

START_MS = 1_795_000_000_000
ROOT = "bench-sim"
MAX_BARE = 60_000  # paho alone refuses new publishes once 65,535 are unacknowledged


@dataclass
class Recording:
    """What a fleet reported, tick by tick, replayed to ``run_simulation`` (a ``simulator.run.Source``)."""

    births: Sequence[Message]
    steps: list[Sequence[Message]]
    ending: Sequence[Message]
    offline: Sequence[Message]
    completed_trips: list[CompletedTrip]
    _next: int = field(default=0, repr=False)

    def birth_messages(self, now_ms: int) -> Sequence[Message]:
        self._next = 0
        return self.births

    def step(self, now_ms: int) -> Sequence[Message]:
        self._next += 1
        return self.steps[self._next - 1]

    def finish(self, now_ms: int) -> Sequence[Message]:
        return self.ending

    def offline_messages(self, now_ms: int) -> Sequence[Message]:
        return self.offline

    @classmethod
    def of(cls, fleet: Fleet, seconds: int) -> Recording:
        """Step ``fleet`` through ``seconds`` one-second ticks, as ``run_simulation`` does."""
        births = fleet.birth_messages(START_MS)
        steps: list[Sequence[Message]] = [fleet.step(START_MS + s * 1000) for s in range(1, seconds + 1)]
        end = START_MS + seconds * 1000
        return cls(births, steps, fleet.finish(end), fleet.offline_messages(end), fleet.completed_trips)

    def __len__(self) -> int:
        return len(self.births) + sum(map(len, self.steps)) + len(self.ending) + len(self.offline)


WAYS = ("bare", "bare_unlimited", "adapter", "simulate", "end_to_end")


@dataclass
class Rounds:
    """Wall-clock and CPU seconds (this process, every thread) per round for each way of publishing."""

    wall: dict[str, list[float]] = field(default_factory=lambda: {way: [] for way in WAYS})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {way: [] for way in WAYS})

    def timed(self, way: str, run: Callable[[], float]) -> None:
        started = time.process_time()
        self.wall[way].append(run())
        self.cpu[way].append(time.process_time() - started)


def simulate(recording: Recording | Fleet, url: str, seconds: int, operator: str) -> float:
    """Seconds for ``run_simulation`` at speed 0 to publish ``recording`` (or step a fleet) and flush."""
    will_topic = topic_for(operator, "_fleet", Channel.STATE, ROOT)
    client = MqttClient(url, f"bench-sim-{uuid.uuid4().hex[:6]}", will=Will(will_topic, b"{}")).connect()
    try:
        started = time.perf_counter()
        run_simulation(
            recording,
            client,
            start_ms=START_MS,
            duration_s=seconds,
            speed=0,
            root=ROOT,
            stop=threading.Event(),
            progress=lambda done, total: None,
        )
        return time.perf_counter() - started
    finally:
        client.close()


def measure(config: FleetConfig, seconds: int, rounds: int, say: bool) -> tuple[int, dict[str, float], Rounds]:
    """(messages per round, rates measured without a broker, seconds of each round)."""
    started = time.perf_counter()
    recording = Recording.of(Fleet(config), seconds)
    fleet_s = time.perf_counter() - started
    n = len(recording)
    recorder = FakePublisher()
    started = time.perf_counter()
    run_simulation(recording, recorder, start_ms=START_MS, duration_s=seconds, speed=0, root=ROOT)
    runner_s = time.perf_counter() - started
    payloads = [(topic, payload, qos, retain) for topic, payload, qos, retain in recorder.sent]
    started = time.perf_counter()
    for batch in (recording.births, *recording.steps, recording.ending, recording.offline):
        for message in batch:
            encode(message)
    encode_s = time.perf_counter() - started
    alone = {"fleet": n / fleet_s, "runner without broker": n / runner_s, "encode": n / encode_s}
    if n > MAX_BARE:
        raise SystemExit(f"{n:,} messages a round: the bare paho baseline fails past {MAX_BARE:,}; fewer, please")
    binary = mosquitto_binary()
    if binary is None:
        raise SystemExit("no mosquitto binary installed")
    access = generate(ROOT, [config.operator])
    gateway = access.find(Role.GATEWAY, config.operator)
    times = Rounds()
    with mosquitto(binary, access=access) as broker:
        url = url_for(gateway, broker.url)
        port = int(broker.url.rsplit(":", 1)[1])
        login = (gateway.username, gateway.password)
        runs: dict[str, Callable[[], float]] = {
            "bare": lambda: bare_paho(port, payloads, login),
            "bare_unlimited": lambda: bare_paho(port, payloads, login, inflight=0),
            "adapter": lambda: adapter(url, payloads),
            "simulate": lambda: simulate(recording, url, seconds, config.operator),
            "end_to_end": lambda: simulate(Fleet(config), url, seconds, config.operator),
        }
        for round_ in range(rounds):
            for way in WAYS[round_ % len(WAYS) :] + WAYS[: round_ % len(WAYS)]:  # each goes first in turn
                times.timed(way, runs[way])
            if say:
                rates = ", ".join(f"{way} {n / times.wall[way][-1]:,.0f}" for way in WAYS)
                print(f"round {round_ + 1}/{rounds}: {rates} msg/s", file=sys.stderr, flush=True)
    return n, alone, times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a smoke for CI: 100 vehicles, 3 minutes, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.vehicles, args.minutes, args.rounds = 100, 3, 1
    config = FleetConfig(vehicles=args.vehicles, seed=args.seed, first_seq=1)
    seconds = round(args.minutes * 60)
    n, alone, times = measure(config, seconds, args.rounds, say=True)
    qos1 = "events and states at QoS 1, telemetry at QoS 0"
    print(f"messages per round: {n:,} ({args.vehicles:,} vehicles, {args.minutes:g} simulated minutes, {qos1})")
    for name, rate in alone.items():
        print(f"{name}: {rate:,.0f} msg/s (once, no broker)")
    labels = {
        "bare": "bare paho publisher (100 in flight, paho queues the rest)",
        "bare_unlimited": "bare paho publisher (no in-flight limit)",
        "adapter": "sensors.mqtt adapter",
        "simulate": "simulate (pre-built fleet)",
        "end_to_end": "simulate end to end",
    }
    for way, label in labels.items():
        seconds = times.wall[way]
        rates = sorted(n / s for s in seconds)
        ratio = statistics.median(b / s for b, s in zip(times.wall["bare"], seconds, strict=True))  # paired
        unlimited = statistics.median(b / s for b, s in zip(times.wall["bare_unlimited"], seconds, strict=True))
        cpu_us = statistics.median(times.cpu[way]) / n * 1e6
        print(
            f"{label}: {statistics.median(rates):,.0f} msg/s (min {rates[0]:,.0f}, max {rates[-1]:,.0f}, "
            f"{args.rounds} rounds), {cpu_us:.0f} us CPU/msg; ratio to bare paho {ratio:.2f}, "
            f"to bare paho without limit {unlimited:.2f} (medians of per-round ratios)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
