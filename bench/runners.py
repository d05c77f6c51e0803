"""The harness's runners: each benchmark module driven through its own functions into ``harness.Section``s.

A runner takes the ``Options`` of the run and returns its sections (one per database where it has several);
a module that does not exist yet is a skipped section, a PostgreSQL that does not answer a skipped part.
"""

from __future__ import annotations

import importlib
import io
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import Figure, Plot, Section, plot_bars, plot_rates, rates

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Options:
    """What every benchmark runner is given."""

    quick: bool
    rounds: int | None  # None: each benchmark's default (1 with --quick)
    databases: tuple[str, ...]
    postgres_url: str
    plots: Path | None  # where PNGs go; None: no plots

    def rounds_or(self, full: int) -> int:
        return self.rounds or (1 if self.quick else full)

    def command(self, name: str, database: str = "") -> str:
        """The command that reruns benchmark ``name`` (on ``database`` alone, if given) as it ran here."""
        parts = ["python -m bench", f"--only {name}"]
        if self.quick:
            parts.append("--quick")
        if self.rounds:
            parts.append(f"--rounds {self.rounds}")
        if name in ("ingest", "scale_out", "trip_history", "offline", "read_side"):
            parts.append(f"--databases {database or ','.join(self.databases)}")
        return " ".join(parts)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- publish ----------------------------------------------------------------------------------------------
def run_publish(opts: Options) -> list[Section]:
    """The adapter and a bare paho publisher, alternating rounds on one Mosquitto (``bench/publish.py``)."""
    from bench import publish
    from smartzone.broker import mosquitto, mosquitto_binary
    from smartzone.broker_access import generate

    count, rounds = (2_000 if opts.quick else 20_000), opts.rounds_or(5)
    section = Section(
        "publish", "Publishing: `sensors.mqtt` adapter against a bare paho publisher", opts.command("publish")
    )
    messages = publish.workload(count)
    ours: list[float] = []
    base: list[float] = []
    binary = mosquitto_binary() or "/usr/sbin/mosquitto"
    with mosquitto(binary, access=generate("bench", ["op"], demo=True)) as broker:
        port = int(broker.url.rsplit(":", 1)[1])
        for n in range(1, rounds + 1):
            base.append(len(messages) / publish.bare_paho(port, messages))
            ours.append(len(messages) / publish.adapter(broker.url, messages))
            say(f"  publish round {n}/{rounds}: bare paho {base[-1]:,.0f} msg/s, adapter {ours[-1]:,.0f} msg/s")
    qos1 = sum(q for *_, q in messages)
    section.figures.append(
        Figure("publish rate", "msg/s", tuple(ours), tuple(base), "sensors.mqtt adapter", "bare paho publisher")
    )
    section.notes.append(
        f"{len(messages):,} simulator payloads a round ({qos1:,} at QoS 1, the rest QoS 0); target ≥ 0.9"
    )
    return [section]


# --- ingest -----------------------------------------------------------------------------------------------
def ingest_stream(opts: Options, name: str) -> tuple[int, float, Any, Sequence[Any], Any]:
    """The ingest benches' stream, generated and signed once: (vehicles, minutes, fleet, stream, registrations)."""
    from bench import ingest

    vehicles, minutes = (300, 2.0) if opts.quick else (3_000, 10.0)
    say(f"  {name}: generating and signing {minutes:g} simulated minutes of {vehicles} vehicles ...")
    fleet, stream = ingest.traffic(vehicles, minutes, 7, False)
    return vehicles, minutes, fleet, stream, ingest.registry_entries(fleet)


def database_section(opts: Options, name: str, kind: str, title: str) -> Section:
    """The section of benchmark ``name`` on database ``kind``; skipped (and said so) if PostgreSQL does not answer."""
    section = Section(f"{name}-{kind}", title, opts.command(name, kind))
    if kind == "postgresql" and (problem := postgres_problem(opts.postgres_url)):
        section.skipped = f"PostgreSQL is not reachable at {opts.postgres_url} ({problem})"
        say(f"  {name} ({kind}): skipped, {section.skipped}")
    return section


def run_ingest(opts: Options) -> list[Section]:
    """The aggregator and a bare paho subscriber on one stream (``bench/ingest.py``), per database."""

    vehicles, minutes, fleet, stream, entries = ingest_stream(opts, "ingest")
    sections = []
    for kind in opts.databases:
        title = f"Ingest: the aggregator against a bare paho subscriber ({kind})"
        section = database_section(opts, "ingest", kind, title)
        sections.append(section)
        if section.skipped:
            continue
        ingest_rounds(opts, section, kind, fleet, stream, entries)
        section.notes.append(
            f"{len(stream):,} messages a round ({vehicles:,} vehicles, {minutes:g} simulated minutes, seed 7, "
            "telemetry unsigned; events and states signed and verified); chain: FakeClearing; target ≥ 0.8"
        )
    return sections


def ingest_rounds(opts: Options, section: Section, kind: str, fleet: Any, stream: Sequence[Any], entries: Any) -> None:
    """Fill ``section`` with ``kind``'s rounds: rates, CPU per message, and the rates over time."""
    from bench import ingest

    bare: list[Any] = []
    ours: list[Any] = []
    rounds = opts.rounds_or(3)
    with tempfile.TemporaryDirectory(prefix="smartzone-bench-") as folder:
        for n in range(1, rounds + 1):
            with ingest.scratch_database(kind, opts.postgres_url, Path(folder), f"ingest_r{n}") as url:
                ingest.prepare(url, fleet, entries)
                b, a, published = ingest.one_round(stream, url, fleet.config.operator, False)
            bare.append(b)
            ours.append(a)
            say(f"  ingest ({kind}) round {n}/{rounds}: publisher {published:,.0f} msg/s, bare paho {b.rate:,.0f} "
                f"msg/s, aggregator {a.rate:,.0f} msg/s ({a.detail})")  # fmt: skip
    section.figures += [
        Figure("ingest rate", "msg/s", tuple(o.rate for o in ours), tuple(o.rate for o in bare),
               "aggregator (verify + store + ack)", "bare paho subscriber"),
        Figure("CPU per message", "µs", tuple(o.cpu_us for o in ours), tuple(o.cpu_us for o in bare),
               "aggregator", "bare paho subscriber", higher_is_better=False),
    ]  # fmt: skip
    for o in (*bare, *ours):
        if o.count < len(stream):
            section.notes.append(f"WARNING: {o.name} handled {o.count:,} of {len(stream):,} messages (stalled)")
    if opts.plots:
        pairs = enumerate(zip(ours, bare, strict=True), 1)
        series = {
            f"{o.name} (round {i})": rates(o.samples, min(a.first, b.first), 0.5 if opts.quick else 1.0)
            for i, (a, b) in pairs
            for o in (a, b)
        }
        path = plot_rates(opts.plots / f"ingest-{kind}.png", series, f"Ingest rate over time ({kind})")
        section.plots.append(
            Plot(
                path,
                f"Ingest rate over time, {kind}: messages handled per second, from the first message either side saw",
            )
        )


def run_scale_out(opts: Options) -> list[Section]:
    """One aggregator against two in the shared-subscription group, on the same stream, rounds alternating."""
    from bench import ingest

    vehicles, minutes, fleet, stream, entries = ingest_stream(opts, "scale_out")
    sections = []
    for kind in opts.databases:
        title = f"Scale-out: two aggregators in the shared-subscription group against one ({kind})"
        section = database_section(opts, "scale_out", kind, title)
        sections.append(section)
        if section.skipped:
            continue
        one: list[Any] = []
        two: list[Any] = []
        bare: list[Any] = []
        rounds = opts.rounds_or(3)
        with tempfile.TemporaryDirectory(prefix="smartzone-bench-") as folder:
            for n in range(1, rounds + 1):
                for count, into in ((1, one), (2, two)):
                    with ingest.scratch_database(kind, opts.postgres_url, Path(folder), f"scale_r{n}_{count}") as url:
                        ingest.prepare(url, fleet, entries)
                        b, a, _ = ingest.one_round(stream, url, fleet.config.operator, False, count)
                    into.append(a)
                    bare.append(b)
                    say(f"  scale_out ({kind}) round {n}/{rounds}, {count} aggregator(s): {a.rate:,.0f} msg/s "
                        f"(bare paho {b.rate:,.0f} msg/s, CPU {a.cpu_us:.0f} us/msg)")  # fmt: skip
        section.figures += [
            Figure("ingest rate", "msg/s", tuple(o.rate for o in two), tuple(o.rate for o in one),
                   "2 aggregators (sum)", "1 aggregator"),
            Figure("CPU per message", "µs", tuple(o.cpu_us for o in two), tuple(o.cpu_us for o in one),
                   "2 aggregators (both processes)", "1 aggregator", higher_is_better=False),
            Figure("bare paho subscriber beside them", "msg/s", tuple(o.rate for o in bare[1::2]),
                   tuple(o.rate for o in bare[0::2]), "beside 2 aggregators", "beside 1 aggregator"),
        ]  # fmt: skip
        whole = sum(1 for topic, *_ in stream if topic.endswith(("/state", "/event")))
        section.notes.append(
            f"{len(stream):,} messages a round ({vehicles:,} vehicles, {minutes:g} simulated minutes, seed 7); "
            f"telemetry split over the group, each aggregator also receives all {whole:,} events and states; "
            "throughput adding up is a ratio of 2.0 — on 2 shared cores that also run the broker, the publisher "
            "and the bare subscriber it cannot"
        )
        for o in (*one, *two):
            if o.count < len(stream):
                section.notes.append(f"WARNING: {o.name} handled {o.count:,} of {len(stream):,} messages (stalled)")
    return sections


def postgres_problem(url: str) -> str:
    """Why PostgreSQL at ``url`` cannot be used, or "" when it answers."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        return str(error.orig).strip().splitlines()[0] if error.orig else "unreachable"
    finally:
        engine.dispose()
    return ""


# --- trip history ----------------------------------------------------------------------------------------
def run_trip_history(opts: Options) -> list[Section]:
    """``Aggregator.handle`` per batch at the largest stored history against the smallest (``bench/trip_history``)."""
    from bench import trip_history as th

    sizes = [1_000, 10_000] if opts.quick else [1_000, 10_000, 100_000]
    batches = opts.rounds_or(5)
    section = Section(
        "trip_history", "Trip derivation per batch against the stored history", opts.command("trip_history")
    )
    fixture = th.Fixture()
    with tempfile.TemporaryDirectory(prefix="smartzone-bench-") as folder:
        for kind in opts.databases:
            if kind == "postgresql" and (problem := postgres_problem(opts.postgres_url)):
                section.notes.append(f"{kind}: skipped, PostgreSQL is not reachable ({problem})")
                say(f"  trip_history ({kind}): skipped, PostgreSQL is not reachable ({problem})")
                continue
            handled: dict[int, list[float]] = {}
            reread: dict[int, float] = {}
            for size in sizes:
                with th.scratch_database(kind, opts.postgres_url, Path(folder), f"history_{size}") as url:
                    first_seq, start_ms = th.fill(url, fixture, size)
                    handled[size], _, _ = th.time_batches(url, fixture.batches(first_seq, start_ms, batches))
                    reread[size] = th.reread_ms(url, fixture.vehicles)
                timed = ", ".join(f"{v:.1f}" for v in handled[size])
                say(f"  trip_history ({kind}) {size:,} events: handle {timed} ms/batch")
            small, large = sizes[0], sizes[-1]
            section.figures.append(
                Figure(f"`handle` per batch, {kind}", "ms", tuple(handled[large]), tuple(handled[small]),
                       f"{large:,} stored events", f"{small:,} stored events", higher_is_better=False)
            )  # fmt: skip
            section.notes.append(
                f"{kind}: re-reading the batch's history (the skeleton's cost) {reread[small]:.1f} ms at {small:,} "
                f"events, {reread[large]:.1f} ms at {large:,} (×{reread[large] / max(reread[small], 1e-9):.0f})"
            )
    section.notes.append(
        f"batch: {th.VEHICLES} signed locks + {th.VEHICLES} unlocks; rounds are timed batches; a ratio near 1 means "
        "the cost does not grow with history. The 1,000,000-event figures come from `python -m bench.trip_history`."
    )
    return [section]


# --- offline pipeline -----------------------------------------------------------------------------------
def run_offline(opts: Options) -> list[Section]:
    """``Aggregator.handle`` without a broker against raw executemany of the same rows (``bench/offline.py``)."""
    try:
        from bench import offline
    except ImportError:
        return run_module("offline", OFFLINE_TITLE)(opts)
    if not all(hasattr(offline, f) for f in ("traffic", "pipeline", "baseline")):  # its API changed: its own report
        return run_module("offline", OFFLINE_TITLE)(opts)
    vehicles, minutes = (100, 2) if opts.quick else (2_000, 10)  # bench/offline.py's own sizes
    fleet, messages, items = offline.traffic(vehicles, minutes, False)
    sections = []
    with tempfile.TemporaryDirectory(prefix="smartzone-bench-") as folder:
        for kind in opts.databases:
            section = Section(f"offline-{kind}", f"{OFFLINE_TITLE} ({kind})", opts.command("offline", kind))
            sections.append(section)
            if kind == "postgresql" and (problem := postgres_problem(opts.postgres_url)):
                section.skipped = f"PostgreSQL is not reachable at {opts.postgres_url} ({problem})"
                say(f"  {section.name}: skipped, {section.skipped}")
                continue
            ours: list[float] = []
            base: list[float] = []
            for n in range(1, opts.rounds_or(3) + 1):
                with offline.scratch_database(kind, opts.postgres_url, Path(folder), f"off_{n}_a") as url:
                    ours.append(len(items) / offline.pipeline(url, fleet, items, False))
                with offline.scratch_database(kind, opts.postgres_url, Path(folder), f"off_{n}_b") as url:
                    base.append(len(messages) / offline.baseline(url, fleet, messages))
                say(f"  offline ({kind}) round {n}: pipeline {ours[-1]:,.0f} readings/s, raw {base[-1]:,.0f} rows/s")
            section.figures.append(
                Figure("offline pipeline", "readings/s", tuple(ours), tuple(base),
                       "Aggregator.handle (decode, verify, store, trips)", "raw core insert() executemany")
            )  # fmt: skip
            section.notes.append(
                f"{len(items):,} messages a round ({vehicles:,} vehicles, {minutes} simulated minutes, seed 7, "
                "telemetry unsigned), batches as the module sets them; target 50,000 readings/s"
            )
    return sections


OFFLINE_TITLE = "Offline pipeline: readings straight into the aggregator against raw executemany"


# --- read side ------------------------------------------------------------------------------------------
TRIVIAL = "trivial (/healthz)"
READ_TITLE = "Read side: API latency by endpoint against a trivial endpoint on the same server"


def run_read_side(opts: Options) -> list[Section]:
    """Each endpoint's p95 beside ``/healthz`` in the same rounds (``bench/read_side.py``), per database."""
    try:
        from bench import read_side as rs
    except ImportError:
        return run_module("read_side", READ_TITLE)(opts)
    if not all(hasattr(rs, f) for f in ("Sizes", "fill", "run")):  # its API changed: its own report
        return run_module("read_side", READ_TITLE)(opts)
    sizes = rs.Sizes(200, 5_000, 50, 500) if opts.quick else rs.Sizes(10_000, 1_000_000, 1_000, 20_000)
    requests, clients = (30, 10) if opts.quick else (100, 10)
    sections = []
    for kind in opts.databases:
        section = Section(f"read_side-{kind}", f"{READ_TITLE} ({kind})", opts.command("read_side", kind))
        sections.append(section)
        if kind == "postgresql" and (problem := postgres_problem(opts.postgres_url)):
            section.skipped = f"PostgreSQL is not reachable at {opts.postgres_url} ({problem})"
            say(f"  {section.name}: skipped, {section.skipped}")
            continue
        rounds: list[dict[str, dict[str, float]]] = []
        with (
            tempfile.TemporaryDirectory() as folder,
            rs.scratch_database(kind, opts.postgres_url, Path(folder), "read_side") as url,
        ):
            say(f"  read_side ({kind}): filling {sizes.vehicles:,} vehicles and {sizes.trips:,} trips ...")
            rs.fill(url, sizes, lambda text: say("  " + text.strip()))
            for n in range(1, opts.rounds_or(3) + 1):  # a fresh server each round: its own warm-up, then timed
                rounds.append(rs.run(url, sizes, requests, clients, 1, lambda _text: None))
                say(
                    f"  read_side ({kind}) round {n}: "
                    + ", ".join(f"{k} p95 {v['p95']:.0f} ms" for k, v in rounds[-1].items())
                )
        read_side_figures(section, rounds, opts, kind)
        section.notes.append(
            f"{sizes.vehicles:,} vehicles, {sizes.trips:,} trips, {sizes.owners:,} owners, {sizes.riders:,} riders; "
            f"{clients} concurrent clients, {requests} requests per endpoint per round; targets p95: "
            + ", ".join(f"{k} ≤ {v:.0f} ms" for k, v in getattr(rs, "TARGETS_MS", {}).items())
        )
    return sections


def read_side_figures(section: Section, rounds: list[dict[str, dict[str, float]]], opts: Options, kind: str) -> None:
    """One figure per endpoint (its p95 against the trivial endpoint's, per round), the page weight, the plot."""
    trivial = tuple(r[TRIVIAL]["p95"] for r in rounds)
    for name in rounds[0]:
        if name != TRIVIAL:
            section.figures.append(Figure(f"{name}, p95", "ms", tuple(r[name]["p95"] for r in rounds), trivial,
                                          name, "/healthz", higher_is_better=False))  # fmt: skip
    weights = [r[name]["kb"] for r in rounds for name in r if "kb" in r[name]]
    if weights:
        section.notes.append(f"page / weighs {max(weights):,.0f} KB (target ≤ 200 KB)")
    if opts.plots:
        groups = {
            name: {q: statistics.median(r[name][q] for r in rounds) for q in ("p50", "p95")} for name in rounds[0]
        }
        path = plot_bars(opts.plots / f"read_side-{kind}.png", groups, "ms (median over rounds)",
                         f"API latency by endpoint ({kind})")  # fmt: skip
        section.plots.append(Plot(path, f"API latency by endpoint, {kind}: p50 and p95, the trivial endpoint first"))


# --- simulate ---------------------------------------------------------------------------------------------
SIM_TITLE = "Simulating: `smartzone simulate --speed 0` against a bare paho publisher"


def run_simulate(opts: Options) -> list[Section]:
    """The simulator's publishing (pre-built and end to end) beside a bare paho publisher (``bench/simulate.py``)."""
    try:
        from bench import simulate as sim
    except ImportError:
        return run_module("simulate", SIM_TITLE)(opts)
    if not hasattr(sim, "measure"):  # its API changed: its own report
        return run_module("simulate", SIM_TITLE)(opts)
    from simulator.fleet import FleetConfig

    vehicles, minutes = (100, 3) if opts.quick else (1_000, 20)
    section = Section("simulate", SIM_TITLE, opts.command("simulate"))
    n, alone, times = sim.measure(
        FleetConfig(vehicles=vehicles, seed=7, first_seq=1), minutes * 60, opts.rounds_or(5), False
    )
    wall: dict[str, list[float]] = times.wall if hasattr(times, "wall") else vars(times)  # seconds per round
    bare = tuple(n / t for t in wall["bare"])
    labels = {
        "simulate": "simulate (pre-built fleet)",
        "end_to_end": "simulate end to end",
        "adapter": "sensors.mqtt adapter",
    }
    for way, label in labels.items():
        if way in wall:
            ours = tuple(n / t for t in wall[way])
            section.figures.append(Figure(f"publish rate: {label}", "msg/s", ours, bare, label, "bare paho publisher"))
            say(f"  simulate: {label} {statistics.median(ours):,.0f} msg/s, bare {statistics.median(bare):,.0f} msg/s")
    if "bare_unlimited" in wall and "simulate" in wall:
        section.figures.append(
            Figure("publish rate: simulate against paho without an in-flight limit", "msg/s",
                   tuple(n / t for t in wall["simulate"]), tuple(n / t for t in wall["bare_unlimited"]),
                   labels["simulate"], "bare paho, no in-flight limit")
        )  # fmt: skip
    cpu: dict[str, list[float]] = getattr(times, "cpu", {})
    if "simulate" in cpu and "bare" in cpu:
        section.figures.append(
            Figure("CPU per message (publishing process)", "µs", tuple(c / n * 1e6 for c in cpu["simulate"]),
                   tuple(c / n * 1e6 for c in cpu["bare"]), labels["simulate"], "bare paho publisher",
                   higher_is_better=False)
        )  # fmt: skip
    section.notes.append(
        f"{n:,} messages a round ({vehicles:,} vehicles, {minutes} simulated minutes, seed 7; events and states at "
        "QoS 1, telemetry at QoS 0); target ≥ 0.9 for `simulate`"
    )
    section.notes.append("without a broker, once: " + ", ".join(f"{k} {v:,.0f} msg/s" for k, v in alone.items()))
    return [section]


# --- modules written elsewhere: read_side, simulate ------------------------------------------------------
def run_module(name: str, title: str) -> Callable[[Options], list[Section]]:
    """A runner for ``bench/<name>.py``: its structured ``figures(argv)`` if it has one, else its ``main(argv)``'s
    printed report; skipped with a line when the module does not exist."""

    def run(opts: Options) -> list[Section]:
        argv = ["--quick"] if opts.quick else []
        command = f"python -m bench.{name}{' --quick' if opts.quick else ''}   # or: {opts.command(name)}"
        section = Section(name, title, command)
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"bench.{name}":
                raise
            section.skipped = f"`bench/{name}.py` does not exist in this checkout"
            say(f"  {name}: skipped, {section.skipped}")
            return [section]
        if hasattr(module, "figures"):
            return [structured(module, argv, section, opts)]
        printed = io.StringIO()
        with redirect_stdout(printed):
            code = module.main(argv)
        section.output = printed.getvalue()
        if code:
            section.failed = f"exit code {code}"
        return [section]

    return run


def structured(module: Any, argv: list[str], section: Section, opts: Options) -> Section:
    """Figures from ``module.figures(argv)``: (figures, notes, latency groups by endpoint) — see ``read_side``."""
    figures, notes, latencies = module.figures(argv)
    section.figures += figures
    section.notes += notes
    if opts.plots and latencies:
        path = plot_bars(opts.plots / f"{section.name}.png", latencies, "ms", "API latency by endpoint")
        section.plots.append(Plot(path, "API latency by endpoint (ms), each beside the trivial endpoint"))
    return section
