"""Issue 10's simulator and research tools, each beside its baseline in the same run.

Four measurements, all on the streets-enabled fleet of the shipped ``stress-10k`` scenario (``Fleet`` with the zone's
street graph, its demand, riders' app and vehicle faults; the faults on the wire are left out, as they belong to
the publisher and not to the core):

1. **core**: simulated seconds per wall second of the fleet alone (births, one ``step`` per simulated second,
   the final locks and offline states; every event and state signed), and of ``run_simulation`` at speed 0 into
   a publisher that drops what it is given (routing and encoding added). Excluded from the clock: building the
   fleet (key derivation for vehicles, owners and riders, loading the zone and its street graph). Baseline:
   real time, 1.0 by definition. Target ≥ 10.
2. **publishing**: ``run_simulation`` at speed 0 through ``sensors.mqtt.MqttClient`` against a bare paho
   publisher sending the same encoded messages, alternating, to a Mosquitto of its own with generated logins
   (``bench.simulate``'s way). Target ≥ 0.9.
3. **replay**: ``smartzone replay --speed 0``'s path (``read_recording`` streaming the gzip file into
   ``simulator.replay.replay`` on an ``MqttClient``) against a bare paho loop publishing the same recorded
   messages (read into memory beforehand) to the local Mosquitto (127.0.0.1:1883), each round on a topic root of
   its own. Target ≥ 0.9. And ``smartzone.offline.replay_offline`` (the recording into a fresh SQLite database
   through ``Aggregator.handle``) in readings per second against the issue's 50,000.
4. **memory**: peak RSS (``VmHWM`` in ``/proc``, read every 0.1 s) of ``smartzone record`` and ``smartzone replay`` as
   subprocesses, the replay feeding the recorder through the local Mosquitto, for a long recording (1 hour of
   1,000 vehicles) against the first minute of the same recording (``--to 60``): flat memory is a ratio ≈ 1.
   (``wait4``'s ``ru_maxrss`` would not do: a forked child keeps its parent's high-water mark across ``exec``.)
   Target: < 200 MB.

    python -m bench.research [--quick] [--rounds 3] [--only core,publishing,replay,memory]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from bench.harness import Figure
from bench.publish import bare_paho
from sensors.messages import Message
from simulator.fleet import CompletedTrip, Fleet
from simulator.run import run_simulation

PARTS = ("core", "publishing", "replay", "memory")
LOCAL_BROKER = ("127.0.0.1", 1883)
CHAIN_ID = 31337
OPERATOR = "bench-op"
ROOT = "bench-research"
MB = 1024 * 1024


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Sizes:
    core_vehicles: int
    core_seconds: int
    publish_vehicles: int
    publish_seconds: int
    long_vehicles: int
    long_minutes: int
    rounds: int

    @classmethod
    def of(cls, quick: bool, rounds: int | None) -> Sizes:
        if quick:
            return cls(1_000, 20, 500, 20, 100, 3, rounds or 1)
        return cls(10_000, 120, 10_000, 120, 1_000, 60, rounds or 3)


# --- the fleet ------------------------------------------------------------------------------------------
def stress_fleet(vehicles: int, minutes: float) -> tuple[Fleet, int]:
    """The ``stress-10k`` scenario's fleet with ``vehicles`` vehicles (streets, demand, riders' app, vehicle
    faults), signing under chain 31337, and the scenario's start in ms."""
    from simulator.scenario import load_scenario, shipped_scenario
    from smartzone.parts import fleet_config, rider_metering, scenario_plans

    scenario = load_scenario(shipped_scenario("stress-10k")).overridden(vehicles=vehicles, minutes=minutes)
    start_ms = scenario.start_ms
    assert start_ms is not None
    settings = settings_of(operator=OPERATOR, chain_id=CHAIN_ID, sign_telemetry=False)
    config = replace(fleet_config(settings, CHAIN_ID, scenario), first_seq=start_ms)
    fleet = Fleet(config, metering=rider_metering(scenario_plans(scenario)))
    assert fleet.zone.streets is not None, "the shipped zone has streets"
    return fleet, start_ms


def settings_of(**values: Any) -> Any:
    """The composition root's settings with ``values`` given (the environment still read for the rest)."""
    from smartzone.settings import Settings

    return Settings(**values)


class Dropped:
    """A publisher that counts what it is given and sends nothing."""

    def __init__(self) -> None:
        self.count = 0

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.count += 1

    def flush(self, timeout: float = 30.0) -> None:
        return None


def fleet_alone(fleet: Fleet, start_ms: int, seconds: int) -> tuple[float, float, int]:
    """(wall seconds of the whole run, wall seconds of the steps alone, messages) for the fleet without publishing."""
    started = time.perf_counter()
    n = len(fleet.birth_messages(start_ms))
    stepping = time.perf_counter()
    for s in range(1, seconds + 1):
        n += len(fleet.step(start_ms + s * 1000))
    steps_s = time.perf_counter() - stepping
    end = start_ms + seconds * 1000
    n += len(fleet.finish(end)) + len(fleet.offline_messages(end))
    return time.perf_counter() - started, steps_s, n


def part_core(sizes: Sizes) -> tuple[list[Figure], list[str]]:
    vehicles, seconds = sizes.core_vehicles, sizes.core_seconds
    whole: list[float] = []
    steps: list[float] = []
    runner: list[float] = []
    setup: list[float] = []
    messages = 0
    for n in range(1, sizes.rounds + 1):
        started = time.perf_counter()
        fleet, start_ms = stress_fleet(vehicles, seconds / 60)
        setup.append(time.perf_counter() - started)
        wall, steps_s, messages = fleet_alone(fleet, start_ms, seconds)
        whole.append(seconds / wall)
        steps.append(seconds / steps_s)
        fleet, start_ms = stress_fleet(vehicles, seconds / 60)
        sink = Dropped()
        started = time.perf_counter()
        run_simulation(fleet, sink, start_ms=start_ms, duration_s=seconds, speed=0, root=ROOT)
        runner.append(seconds / (time.perf_counter() - started))
        say(f"  core round {n}/{sizes.rounds}: fleet {whole[-1]:.1f}x real time (steps alone {steps[-1]:.1f}x), "
            f"run_simulation without a broker {runner[-1]:.1f}x; setup {setup[-1]:.1f} s (not timed)")  # fmt: skip
    real = tuple(1.0 for _ in whole)
    figures = [
        Figure("simulation core: fleet alone, whole run", "sim s / wall s", tuple(whole), real,
               "fleet (births, steps, end)", "real time"),
        Figure("simulation core: fleet steps alone", "sim s / wall s", tuple(steps), real,
               "fleet steps (1 Hz)", "real time"),
        Figure("simulation core: run_simulation, no broker", "sim s / wall s", tuple(runner), real,
               "fleet + routing + encoding", "real time"),
    ]  # fmt: skip
    notes = [
        f"core: {vehicles:,} vehicles of the stress-10k scenario on the zone's streets, {seconds} simulated seconds "
        f"at 1 Hz, {messages:,} messages a run (events, states and vouchers signed; telemetry unsigned); not timed: "
        f"building the fleet (keys of vehicles, owners and riders, the zone and its street graph), median "
        f"{statistics.median(setup):.1f} s; the ratio is the factor over real time; target ≥ 10 on one core"
    ]
    return figures, notes


# --- recordings -----------------------------------------------------------------------------------------
class _Clocked:
    """A fleet whose current simulated time is kept, so that a publisher can stamp what it is given."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet, self.now_ms = fleet, 0

    @property
    def completed_trips(self) -> Sequence[CompletedTrip]:
        return self.fleet.completed_trips

    def birth_messages(self, now_ms: int) -> Sequence[Message]:
        self.now_ms = now_ms
        return self.fleet.birth_messages(now_ms)

    def step(self, now_ms: int) -> Sequence[Message]:
        self.now_ms = now_ms
        return self.fleet.step(now_ms)

    def finish(self, now_ms: int) -> Sequence[Message]:
        self.now_ms = now_ms
        return self.fleet.finish(now_ms)

    def offline_messages(self, now_ms: int) -> Sequence[Message]:
        self.now_ms = now_ms
        return self.fleet.offline_messages(now_ms)


def write_recording(path: Path, vehicles: int, seconds: int, label: str) -> int:
    """A recording of the stress fleet's run (no broker: ``run_simulation`` into ``RecordingWriter``, each
    message stamped with its simulated time); the number of messages. Progress every simulated 10 minutes."""
    from simulator.recording import Recorded, RecordingHeader, RecordingWriter

    fleet, start_ms = stress_fleet(vehicles, seconds / 60)
    clocked = _Clocked(fleet)
    scenario = {"name": "stress-10k", "seed": fleet.config.seed, "vehicles": vehicles, "operator": OPERATOR,
                "chain_id": CHAIN_ID}  # fmt: skip
    started = time.monotonic()
    with RecordingWriter(path, RecordingHeader(ROOT, "none (written by bench.research)", start_ms, scenario)) as out:

        class Writing:
            def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
                out.write(Recorded(clocked.now_ms, topic, payload, qos, retain))

            def flush(self, timeout: float = 30.0) -> None:
                out.flush()

        def progress(done: float, total: float) -> None:
            if int(done) % 600 == 0 or done == total:
                say(f"  {label}: {done:.0f}/{total:.0f} simulated seconds, {out.written:,} messages, "
                    f"{time.monotonic() - started:.0f} s")  # fmt: skip

        run_simulation(clocked, Writing(), start_ms=start_ms, duration_s=seconds, speed=0, root=ROOT, progress=progress)
        return out.written


def recorded_items(path: Path, root: str) -> list[tuple[str, bytes, int, bool]]:
    """Every message of a recording as (topic under ``root``, payload, qos, retain), in memory."""
    from simulator.recording import read_recording

    header, records = read_recording(path)
    old = header.topic_root
    try:
        return [(root + r.topic[len(old) :], r.payload, r.qos, r.retain) for r in records]
    finally:
        records.close()


# --- publishing -----------------------------------------------------------------------------------------
def part_publishing(sizes: Sizes) -> tuple[list[Figure], list[str]]:
    from bench.simulate import MAX_BARE, Recording, simulate
    from smartzone.broker import mosquitto, mosquitto_binary
    from smartzone.broker_access import Role, generate, url_for

    vehicles, seconds = sizes.publish_vehicles, sizes.publish_seconds
    fleet, start_ms = stress_fleet(vehicles, seconds / 60)
    recording = Recording.of(fleet, seconds)  # stepped and signed once, outside every round
    sink: list[tuple[str, bytes, int, bool]] = []

    class Collect(Dropped):
        def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
            sink.append((topic, payload, qos, retain))

    run_simulation(recording, Collect(), start_ms=start_ms, duration_s=seconds, speed=0, root="bench-sim")
    n = len(sink)
    if n > MAX_BARE:
        raise SystemExit(f"{n:,} messages a round: the bare paho baseline fails past {MAX_BARE:,}")
    binary = mosquitto_binary()
    if binary is None:
        raise SystemExit("no mosquitto binary installed")
    access = generate("bench-sim", [OPERATOR])
    gateway = access.find(Role.GATEWAY, OPERATOR)
    ours: list[float] = []
    base: list[float] = []
    with mosquitto(binary, access=access) as broker:
        url = url_for(gateway, broker.url)
        port = int(broker.url.rsplit(":", 1)[1])
        for r in range(1, sizes.rounds + 1):
            runs: list[tuple[list[float], Callable[[], float]]] = [
                (base, lambda: bare_paho(port, sink, (gateway.username, gateway.password))),
                (ours, lambda: simulate(recording, url, seconds, OPERATOR)),
            ]
            for into, run in runs if r % 2 else runs[::-1]:  # each goes first in turn
                into.append(n / run())
            say(f"  publishing round {r}/{sizes.rounds}: simulate {ours[-1]:,.0f} msg/s, bare paho {base[-1]:,.0f}")
    figures = [Figure("publishing: simulate --speed 0 (pre-stepped fleet)", "msg/s", tuple(ours), tuple(base),
                      "run_simulation + MqttClient", "bare paho publisher")]  # fmt: skip
    qos1 = sum(1 for item in sink if item[2])
    notes = [
        f"publishing: {n:,} messages a round ({qos1:,} at QoS 1) from {vehicles:,} stress-10k vehicles over "
        f"{seconds} simulated seconds, stepped and signed once before the rounds; a Mosquitto of its own with "
        "generated logins; both wait for every acknowledgement; target ≥ 0.9"
    ]
    return figures, notes


# --- replay ---------------------------------------------------------------------------------------------
def broker_problem() -> str:
    """Why the local Mosquitto cannot be used, or ""."""
    import socket

    try:
        with socket.create_connection(LOCAL_BROKER, timeout=3):
            return ""
    except OSError as exc:
        return f"nothing answers on {LOCAL_BROKER[0]}:{LOCAL_BROKER[1]} ({exc.strerror or exc})"


def replay_through_broker(path: Path, root: str) -> tuple[float, int]:
    """(seconds, messages) of the replay command's path: the file streamed into ``replay`` on an ``MqttClient``."""
    from sensors.mqtt import MqttClient
    from simulator.recording import read_recording
    from simulator.replay import ReplayOptions, replay

    header, records = read_recording(path)
    records.close()
    host, port = LOCAL_BROKER
    client = MqttClient(f"mqtt://{host}:{port}", f"bench-replay-{uuid.uuid4().hex[:8]}").connect()
    try:
        started = time.perf_counter()
        summary = replay(
            lambda: read_recording(path)[1], client, ReplayOptions(speed=0, root=(header.topic_root, root)),
            progress=lambda _at: None, flush_timeout_s=120,
        )  # fmt: skip
        return time.perf_counter() - started, summary.published
    finally:
        client.close()


def offline_rate(path: Path, registrations: Sequence[Any], folder: Path, tag: str) -> tuple[float, Any]:
    """(readings per second, result) of ``replay_offline`` into a fresh SQLite file (the whole call timed)."""
    from smartzone.offline import replay_offline

    settings = settings_of(operator=OPERATOR, chain_id=CHAIN_ID, data_dir=folder)
    started = time.perf_counter()
    result = replay_offline(path, f"sqlite:///{folder / f'{tag}.db'}", settings=settings,
                            registrations=registrations, signing_chain_id=CHAIN_ID)  # fmt: skip
    return result.messages / (time.perf_counter() - started), result


def part_replay(sizes: Sizes, folder: Path, long_recording: Path | None) -> tuple[list[Figure], list[str]]:
    notes: list[str] = []
    figures: list[Figure] = []
    vehicles, seconds = sizes.publish_vehicles, sizes.publish_seconds
    path = folder / "publish.jsonl.gz"
    say(f"  replay: recording {vehicles:,} vehicles x {seconds} s without a broker ...")
    n = write_recording(path, vehicles, seconds, "replay recording")
    if problem := broker_problem():
        notes.append(f"replay through the broker: skipped, {problem}")
        say(f"  replay: {notes[-1]}")
    else:
        ours: list[float] = []
        base: list[float] = []
        for r in range(1, sizes.rounds + 1):
            tag = uuid.uuid4().hex[:8]
            items = recorded_items(path, f"{ROOT}-bare-{tag}")  # read before the clock starts

            def ours_run(tag: str = tag) -> float:
                seconds_, published = replay_through_broker(path, f"{ROOT}-replay-{tag}")
                assert published == n, f"replayed {published} of {n}"
                return seconds_

            runs: list[tuple[list[float], Callable[[], float]]] = [
                (base, partial(bare_paho, LOCAL_BROKER[1], items)), (ours, ours_run),
            ]  # fmt: skip
            for into, run in runs if r % 2 else runs[::-1]:
                into.append(n / run())
            say(f"  replay round {r}/{sizes.rounds}: replay {ours[-1]:,.0f} msg/s, bare paho {base[-1]:,.0f} msg/s")
        figures.append(Figure("replay --speed 0 through the broker", "msg/s", tuple(ours), tuple(base),
                              "read_recording + replay + MqttClient", "bare paho (messages in memory)"))  # fmt: skip
        notes.append(
            f"replay: {n:,} recorded messages ({vehicles:,} stress-10k vehicles, {seconds} simulated seconds) to "
            f"the local Mosquitto {LOCAL_BROKER[0]}:{LOCAL_BROKER[1]}, each round and side on a topic root of its "
            "own; the replay reads and decompresses the file as it goes, the baseline has the messages in memory; "
            "target ≥ 0.9"
        )
    source = long_recording if long_recording is not None else path
    fleet_vehicles = sizes.long_vehicles if long_recording is not None else vehicles
    fleet, _ = stress_fleet(fleet_vehicles, 1)
    registrations = fleet.registrations(0)
    rates: list[float] = []
    result: Any = None
    for r in range(1, sizes.rounds + 1):
        rate, result = offline_rate(source, registrations, folder, f"offline{r}")
        rates.append(rate)
        say(f"  offline round {r}/{sizes.rounds}: {rate:,.0f} readings/s ({result.messages:,} messages, "
            f"{result.trips_priced:,} trips priced)")  # fmt: skip
    figures.append(Figure("offline replay into the pipeline (replay_offline)", "readings/s", tuple(rates),
                          tuple(50_000.0 for _ in rates), "replay_offline, SQLite", "issue target"))  # fmt: skip
    span = f"{sizes.long_minutes} simulated minutes" if long_recording is not None else f"{seconds} simulated seconds"
    notes.append(
        f"offline: {result.messages:,} recorded messages of {fleet_vehicles:,} stress-10k vehicles ({span}) through "
        f"`replay_offline` into a fresh SQLite file, {result.stored:,} stored, {result.trips_priced:,} trips priced; "
        f"timed: the whole call (registering {len(registrations):,} vehicles, reading, decoding, verifying, storing, "
        "pricing, epochs); the baseline column is the issue's target of 50,000 readings/s, not a measurement"
    )
    return figures, notes


# --- memory ---------------------------------------------------------------------------------------------
@dataclass
class Peak:
    """A subprocess's peak RSS (its last ``VmHWM`` seen), its RSS sampled over time, and what it printed."""

    max_rss_mb: float
    samples: list[tuple[float, float]]  # (seconds since start, RSS MB)
    stdout: str
    stderr: list[str]
    code: int

    def at_quarters(self) -> str:
        if not self.samples:
            return "no samples"
        end = self.samples[-1][0]
        picks = [min(self.samples, key=lambda s: abs(s[0] - end * q)) for q in (0.25, 0.5, 0.75, 1.0)]
        return ", ".join(f"{mb:.0f} MB at {t:.0f} s" for t, mb in picks)


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "smartzone.cli", *args]


@contextmanager
def watched(command: list[str], env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """A subprocess whose stderr lines are collected as they come (the pipe never fills)."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    assert process.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        yield process, lines
    finally:
        if not exited(process):
            process.kill()
            process.wait()


def exited(process: subprocess.Popen[str]) -> bool:
    """Whether ``process`` has ended, without reaping it (``reap`` then reads its peak RSS)."""
    if process.returncode is not None:
        return True
    return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def status_mb(pid: int) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of a running process in MB from ``/proc``; None once it is gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return None


def reap(process: subprocess.Popen[str], lines: list[str], samples: list[tuple[float, float]], hwm: float) -> Peak:
    """Wait for ``process`` and collect its output."""
    process.wait()
    stdout = process.stdout.read() if process.stdout is not None else ""
    time.sleep(0.1)
    return Peak(hwm, samples, stdout, list(lines), process.returncode)


def sample_until(process: subprocess.Popen[str], started: float, samples: list[tuple[float, float]],
                 done: Callable[[], bool], every: float = 0.1) -> float:  # fmt: skip
    """Sample ``process``'s RSS into ``samples`` until ``done()``; its peak RSS (VmHWM) last seen, in MB."""
    peak = 0.0
    while not done():
        seen = status_mb(process.pid)
        if seen is not None:
            samples.append((time.monotonic() - started, seen[0]))
            peak = max(peak, seen[1])
        time.sleep(every)
    return peak


def record_and_replay(path: Path, extra: Sequence[str], timeout_s: float, drain_s: float) -> tuple[Peak, Peak, int]:
    """``smartzone record`` subscribed under a fresh root, fed by ``smartzone replay --speed 0`` of ``path``;
    (recorder's peak, replayer's peak, messages the recorder wrote)."""
    root = f"{ROOT}-mem-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "SMARTZONE_MQTT_URL": f"mqtt://{LOCAL_BROKER[0]}:{LOCAL_BROKER[1]}",
           "SMARTZONE_TOPIC_ROOT": root}  # fmt: skip
    out = path.with_name(f"{root}.jsonl.gz")
    deadline = time.monotonic() + timeout_s
    with watched(cli("record", str(out), "--force"), env) as (recorder, rec_lines):
        started = time.monotonic()
        while not any(line.startswith("recording ") for line in rec_lines):
            if exited(recorder) or time.monotonic() > deadline:
                raise RuntimeError(f"smartzone record did not start: {''.join(rec_lines)[-500:]}")
            time.sleep(0.05)
        rec_samples: list[tuple[float, float]] = []
        rec_peak = [0.0]
        rec_thread = threading.Thread(
            target=lambda: rec_peak.append(sample_until(recorder, started, rec_samples, lambda: exited(recorder))),
            daemon=True,
        )
        rec_thread.start()
        with watched(cli("replay", str(path), "--speed", "0", "--root", root, *extra), env) as (player, play_lines):
            play_started = time.monotonic()
            play_samples: list[tuple[float, float]] = []
            play_peak = sample_until(player, play_started, play_samples,
                                     lambda: exited(player) or time.monotonic() > deadline)  # fmt: skip
            if not exited(player):
                raise RuntimeError(f"smartzone replay did not finish within {timeout_s:.0f} s")
            player_peak = reap(player, play_lines, play_samples, play_peak)
        if player_peak.code:
            raise RuntimeError(f"smartzone replay failed ({player_peak.code}): {''.join(player_peak.stderr)[-500:]}")
        time.sleep(drain_s)  # the recorder drains what the broker still holds for it, then stops on SIGTERM
        recorder.terminate()
        rec_thread.join(30)
        recorder_peak = reap(recorder, rec_lines, rec_samples, max(rec_peak))
    written = 0
    for line in recorder_peak.stderr:
        if line.startswith("recorded ") and " in " in line:
            written = int(line.split()[1])
    out.unlink(missing_ok=True)
    return recorder_peak, player_peak, written


def part_memory(sizes: Sizes, long_recording: Path) -> tuple[list[Figure], list[str]]:
    if problem := broker_problem():
        return [], [f"memory: skipped, {problem}"]
    drain = 1.0 if sizes.long_minutes < 10 else 3.0  # after the replay, before the recorder is stopped
    long_r: list[Peak] = []
    long_p: list[Peak] = []
    short_r: list[Peak] = []
    short_p: list[Peak] = []
    written: list[int] = []
    for r in range(1, sizes.rounds + 1):
        rec, play, n = record_and_replay(long_recording, [], 1800, drain)
        long_r.append(rec)
        long_p.append(play)
        written.append(n)
        rec, play, _ = record_and_replay(long_recording, ["--to", "60"], 300, drain)
        short_r.append(rec)
        short_p.append(play)
        say(f"  memory round {r}/{sizes.rounds}: record {long_r[-1].max_rss_mb:.0f} MB (first minute "
            f"{short_r[-1].max_rss_mb:.0f} MB), replay {long_p[-1].max_rss_mb:.0f} MB (first minute "
            f"{short_p[-1].max_rss_mb:.0f} MB); recorder wrote {n:,}")  # fmt: skip
    span = f"{sizes.long_minutes} simulated minutes of {sizes.long_vehicles:,} vehicles"
    figures = [
        Figure("peak RSS: smartzone record", "MB", tuple(p.max_rss_mb for p in long_r),
               tuple(p.max_rss_mb for p in short_r), span, "first minute (--to 60)", higher_is_better=False),
        Figure("peak RSS: smartzone replay --speed 0", "MB", tuple(p.max_rss_mb for p in long_p),
               tuple(p.max_rss_mb for p in short_p), span, "first minute (--to 60)", higher_is_better=False),
    ]  # fmt: skip
    notes = [
        f"memory: {span} (the stress-10k fleet, {count_of(long_recording):,} messages, "
        f"{long_recording.stat().st_size / MB:.1f} MB gzip) replayed at speed 0 by `smartzone replay` into the "
        f"local Mosquitto while `smartzone record` writes it (it wrote {statistics.median(written):,.0f}; QoS 0 "
        "telemetry the broker drops for a slow subscriber is not an error here); peak RSS is each "
        "subprocess's VmHWM in /proc, read every 0.1 s (wait4's ru_maxrss would not do: on Linux a child keeps the "
        "high-water mark of the parent it was forked from, here the benchmark itself); a ratio ≈ 1 against the "
        "recording's first minute means memory does not grow with "
        "the recording's length; target < 200 MB",
        f"memory: RSS over the last round's long run, record: {long_r[-1].at_quarters()}; replay: "
        f"{long_p[-1].at_quarters()}",
    ]
    return figures, notes


def count_of(path: Path) -> int:
    from simulator.recording import read_recording

    _, records = read_recording(path)
    try:
        return sum(1 for _ in records)
    finally:
        records.close()


# --- the run --------------------------------------------------------------------------------------------
def measure(quick: bool, rounds: int | None, parts: Sequence[str]) -> tuple[list[Figure], list[str]]:
    sizes = Sizes.of(quick, rounds)
    figures: list[Figure] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="smartzone-bench-research-") as name:
        folder = Path(name)
        long_recording: Path | None = None
        if "memory" in parts or ("replay" in parts and not quick):
            long_recording = folder / "long.jsonl.gz"
            started = time.monotonic()
            say(f"  recording {sizes.long_minutes} simulated minutes of {sizes.long_vehicles:,} vehicles once ...")
            n = write_recording(long_recording, sizes.long_vehicles, sizes.long_minutes * 60, "long recording")
            notes.append(
                f"the long recording ({n:,} messages, {long_recording.stat().st_size / MB:.1f} MB) took "
                f"{time.monotonic() - started:.0f} s to generate without a broker"
            )
        steps: dict[str, Callable[[], tuple[list[Figure], list[str]]]] = {
            "core": lambda: part_core(sizes),
            "publishing": lambda: part_publishing(sizes),
            "replay": lambda: part_replay(sizes, folder, long_recording if not quick else None),
            "memory": lambda: part_memory(sizes, long_recording) if long_recording else ([], []),
        }
        for part in parts:
            say(f"  research: {part} ...")
            more_figures, more_notes = steps[part]()
            figures += more_figures
            notes += more_notes
    notes.append(f"this process's own peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return figures, notes


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.research", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round: a smoke")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--only", help=f"comma-separated subset of: {','.join(PARTS)}")
    return parser.parse_args(argv)


def figures(argv: Sequence[str] | None = None) -> tuple[list[Figure], list[str], dict[str, dict[str, float]]]:
    """The harness's entry (``bench.runners.structured``): figures, notes, no latency groups."""
    args = parse(argv)
    parts = args.only.split(",") if args.only else list(PARTS)
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown part(s): {', '.join(sorted(unknown))} (known: {', '.join(PARTS)})")
    found, notes = measure(args.quick, args.rounds, parts)
    return found, notes, {}


def main(argv: Sequence[str] | None = None) -> int:
    from bench.harness import table

    found, notes, _ = figures(argv)
    print(table(found))
    for note in notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
