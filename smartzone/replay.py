"""The ``smartzone replay`` command: a recording published again through a broker, or run offline through the
aggregator's pipeline (``smartzone.offline``) for what-if studies, two runs side by side."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sensors.errors import InvalidReading, SmartZoneError
from sensors.messages import VehicleKind
from sensors.mqtt import MqttClient
from sensors.registration import Registration, from_json
from settlement.fares import DEFAULT_PLANS, format_eur
from settlement.pricing import PricingPlan, plan_from_gbfs
from simulator.recording import Records, read_recording
from simulator.replay import ReplayOptions, ReplayProgress, replay
from smartzone.console import stop_on_signals
from smartzone.settings import Settings

if TYPE_CHECKING:
    from smartzone.offline import OfflineResult, replay_offline

__all__ = ["OfflineResult", "add_replay_command", "load_plans", "replay_offline", "run_replay"]


def __getattr__(name: str) -> Any:
    """``replay_offline`` and ``OfflineResult`` (``smartzone.offline``), imported when first asked for: the
    aggregator they load is not needed to replay through a broker."""
    if name in ("replay_offline", "OfflineResult"):
        from smartzone import offline

        return getattr(offline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PROGRESS_LINE_S = 5.0
BAR = 30
METERED_NOTE = (
    "metered: every trip priced at its metered fare under the column's plans, consent not required (the recorded "
    "consents and vouchers were signed for the recorded tariff and cannot speak for another; the vouchers are "
    "dead-lettered as voucher_no_consent)"
)
CONSENT_NOTE = "under consent: as the live aggregator, each trip charged min(metered fare, last voucher, cap)"


def add_replay_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``replay`` on the CLI's subcommands."""
    p = sub.add_parser(
        "replay",
        help="publish a recording again, or run it offline through the pipeline (what-if)",
        description="Publish the messages of a recording (`smartzone record`) on SMARTZONE_MQTT_URL with their "
        "recorded gaps divided by --speed, QoS and retain flag as recorded. With --offline no broker is used: the "
        "recording goes straight into a fresh aggregator (its database default a temporary SQLite file, its chain "
        "an in-memory clearing contract) and the run's results are printed; with --compare --tariffs FILE a second "
        "run prices the same trips under FILE's plans, side by side.",
    )
    p.add_argument("file", type=Path, metavar="FILE", help="the recording")
    p.add_argument("--speed", dest="replay_speed", type=float, default=1.0, metavar="X",
                   help="recorded seconds per second (default 1: real time; 0: as fast as possible)")  # fmt: skip
    p.add_argument("--topic", dest="topic_filter", metavar="FILTER", help="only topics matching this MQTT filter")
    after = "after the recording's first message"
    p.add_argument("--from", dest="from_s", type=float, metavar="SECONDS", help=f"start this far {after}")
    p.add_argument("--to", dest="to_s", type=float, metavar="SECONDS", help=f"end this far {after} (exclusive)")
    p.add_argument("--loop", action="store_true", help="start again at the end until stopped (Ctrl-C)")
    p.add_argument("--root", dest="new_root", metavar="ROOT", help="publish under this topic root instead")
    p.add_argument("--offline", action="store_true", help="feed the aggregator's pipeline directly, no broker")
    p.add_argument("--database", metavar="URL", help="offline: the fresh database to fill (default: temporary)")
    p.add_argument("--tariffs", type=Path, metavar="FILE.json", help="offline: pricing plans per vehicle kind, "
                   '{"bike": <GBFS 3.0 plan>, ...}; kinds left out keep the default plan')  # fmt: skip
    p.add_argument("--compare", action="store_true", help="offline: run twice, the default plans and --tariffs, "
                   "both metered, and print the results side by side")  # fmt: skip
    p.add_argument("--registrations", type=Path, metavar="FILE", help="offline: the fleet's signed registrations "
                   "(JSON lines, as `smartzone simulate --registrations` writes); default: rebuilt from the "
                   "header's scenario seed")  # fmt: skip
    p.add_argument("--chain-id", dest="signing_chain_id", type=int, metavar="N", help="offline: the chain id "
                   "devices signed under (default SMARTZONE_CHAIN_ID, the header's chain_id, else 31337)")  # fmt: skip
    p.set_defaults(command=run_replay)


def run_replay(settings: Settings, args: argparse.Namespace) -> int:
    """Replay through the broker, or offline; 0, or 2 with one line on bad input or an unreachable broker."""
    try:
        options = ReplayOptions(args.replay_speed, args.topic_filter, args.from_s, args.to_s, None, args.loop)
    except ValueError as exc:
        raise SmartZoneError(str(exc)) from None
    if args.offline:
        return _offline(settings, args)
    if args.compare or args.tariffs or args.database or args.registrations:
        raise SmartZoneError("--compare, --tariffs, --database and --registrations are for --offline")
    header, records = read_recording(args.file)
    records.close()
    if args.new_root:
        options = ReplayOptions(
            options.speed, options.topic_filter, options.from_s, options.to_s, (header.topic_root, args.new_root),
            options.loop,
        )  # fmt: skip
    client = MqttClient(
        settings.broker_url(),
        f"smartzone-replay-{secrets.token_hex(4)}",
        protocol=settings.mqtt_protocol,
        ca_file=settings.ca_file(),
    ).connect()
    target = args.new_root or header.topic_root
    speed = f"{options.speed:g}x" if options.speed else "as fast as possible"
    print(f"replaying {args.file} to {client.url} under {target}/, {speed}; Ctrl-C stops", file=sys.stderr)
    shown = ProgressLine(sys.stderr)

    def open_records() -> Records:
        return read_recording(args.file)[1]

    try:
        with stop_on_signals() as stop:
            summary = replay(open_records, client, options, stop=stop.is_set, progress=shown)
    finally:
        client.close()
    shown.end()
    print(
        json.dumps({
            "published": summary.published,
            "skipped": summary.skipped,
            "passes": summary.passes,
            "wall_seconds": round(summary.wall_seconds, 3),
            "stopped_early": summary.stopped_early,
            "damage": summary.damage,
        }),
        flush=True,
    )  # fmt: skip
    return 0


class ProgressLine:
    """Progress of a replay on ``stream``: a bar redrawn in place on a terminal, else a line every few seconds."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.last = 0.0
        self.drawn = False

    def __call__(self, at: ReplayProgress) -> None:
        now = time.monotonic()
        if not self.tty and now - self.last < PROGRESS_LINE_S:
            return
        self.last = now
        rate = at.published / max(now - self.started, 1e-9)
        text = f"{at.published} messages, {rate:.0f}/s, recorded time +{at.recorded_s:.0f} s"
        if at.pass_number > 1:
            text += f", pass {at.pass_number}"
        if at.fraction is not None:
            done = round(min(at.fraction, 1.0) * BAR)
            text = f"[{'#' * done}{'.' * (BAR - done)}] {at.fraction:4.0%} {text}"
        if self.tty:
            self.stream.write(f"\r{text}\x1b[K")
            self.drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def load_plans(path: Path) -> dict[VehicleKind, PricingPlan]:
    """The plans of a tariffs file: a JSON object of vehicle kind to GBFS 3.0 plan; the kinds it leaves out keep
    their default plan. ``SmartZoneError`` names the file and what is wrong."""
    try:
        doc = json.loads(path.read_text("utf-8"), parse_float=Decimal)
    except OSError as exc:
        raise SmartZoneError(f"cannot read the tariffs {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SmartZoneError(f"{path} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not doc:
        raise SmartZoneError(f'{path}: expected {{"<kind>": <GBFS plan>, ...}} with kinds of {_kinds()}')
    plans = dict(DEFAULT_PLANS)
    for kind, plan in doc.items():
        try:
            plans[VehicleKind(kind)] = plan_from_gbfs(plan)
        except ValueError as exc:
            raise SmartZoneError(f"{path}: {kind}: {exc}; kinds are {_kinds()}") from None
        except (TypeError, AttributeError, KeyError):
            raise SmartZoneError(f"{path}: {kind}: not a GBFS 3.0 plan object") from None
    return plans


def _kinds() -> str:
    return ", ".join(k.value for k in VehicleKind)


def read_registrations(path: Path) -> list[Registration]:
    """The signed registrations of a JSON-lines fleet file; ``SmartZoneError`` names the line that is wrong."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except OSError as exc:
        raise SmartZoneError(f"cannot read {path}: {exc.strerror or exc}") from None
    found = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                found.append(from_json(json.loads(line)))
            except (ValueError, InvalidReading) as exc:
                raise SmartZoneError(f"{path}:{number}: {getattr(exc, 'reason', exc)}") from None
    return found


def _offline(settings: Settings, args: argparse.Namespace) -> int:
    if args.loop or args.new_root or args.from_s is not None or args.to_s is not None or args.topic_filter:
        raise SmartZoneError("--loop, --root, --from, --to and --topic are for replay through a broker")
    if args.compare and args.tariffs is None:
        raise SmartZoneError("--compare needs --tariffs FILE.json: the plans to compare with the default ones")
    if args.compare and args.database:
        raise SmartZoneError("--compare runs twice into temporary databases; leave out --database")
    plans = load_plans(args.tariffs) if args.tariffs is not None else None
    registrations = read_registrations(args.registrations) if args.registrations is not None else None
    common = {"settings": settings, "registrations": registrations, "signing_chain_id": args.signing_chain_id}
    runs: list[tuple[str, dict[str, object]]] = []
    if args.compare:
        runs.append(("default plans", {"plans": None, "require_consent": False}))
        runs.append((args.tariffs.name, {"plans": plans, "require_consent": False}))
    else:
        runs.append((args.tariffs.name if args.tariffs else "recorded tariffs", {"plans": plans}))
    from smartzone.offline import replay_offline

    results = []
    with tempfile.TemporaryDirectory(prefix="smartzone-offline-") as folder:
        for number, (label, extra) in enumerate(runs, start=1):
            url = args.database or f"sqlite:///{Path(folder) / f'run{number}.db'}"
            print(f"offline run {number}/{len(runs)} ({label}) into {url}", file=sys.stderr, flush=True)
            result = replay_offline(
                args.file,
                url,
                progress=_offline_progress,
                label=label,
                **common,
                **extra,  # type: ignore[arg-type]
            )
            results.append(result)
    print(format_results(results), flush=True)
    return 0


def _offline_progress(messages: int, fraction: float) -> None:
    print(f"  {messages} messages, {fraction:.0%} of the file", file=sys.stderr, flush=True)


def format_results(results: Sequence[OfflineResult]) -> str:
    """The runs' results side by side: one column per run, one row per figure (amounts in euro)."""
    rows: list[tuple[str, list[str]]] = [("", [r.label for r in results])]

    def add(name: str, values: Sequence[object]) -> None:
        rows.append((name, [str(v) for v in values]))

    def add_counts(name: str, counts: Sequence[Mapping[str, int]]) -> None:
        add(name, [sum(c.values()) for c in counts])
        for key in sorted({k for c in counts for k in c}):
            add(f"  {key}", [c.get(key, 0) for c in counts])

    add("pricing", ["metered" if not r.consent else "under consent" for r in results])
    add("messages fed", [r.messages for r in results])
    if any(r.skipped for r in results):
        add("left out (no aggregator's topic)", [r.skipped for r in results])
    add("stored", [r.stored for r in results])
    add("duplicates", [r.duplicates for r in results])
    add_counts("messages rejected", [r.rejected for r in results])
    add("trips priced", [r.trips_priced for r in results])
    add_counts("trips rejected", [r.trips_rejected for r in results])
    add("revenue (fares)", [format_eur(r.revenue_micro) for r in results])
    for owner in sorted({o for r in results for o in r.revenue_by_owner}):
        add(f"  {_short(owner)}", [format_eur(r.revenue_by_owner.get(owner, 0)) for r in results])
    add("charged in epochs", [format_eur(r.settled_micro) for r in results])
    add("epochs", [r.epochs for r in results])
    first = max(len(name) for name, _ in rows)
    widths = [max(len(values[i]) for _, values in rows) for i in range(len(results))]
    lines = [f"{name:<{first}}  " + "  ".join(f"{v:>{w}}" for v, w in zip(values, widths, strict=True))
             for name, values in rows]  # fmt: skip
    notes = {METERED_NOTE if not r.consent else CONSENT_NOTE for r in results}
    lines += [f"note: {n}" for n in sorted(notes)]
    lines += [f"note: {r.label}: the recording stopped early: {r.damage}" for r in results if r.damage]
    rejected = [r for r in results if _signed_elsewhere(r.rejected.get("bad_signature", 0), r)]
    lines += [f"note: {r.label}: most messages failed their signature check: were they signed under another chain "
              f"id than {r.signing_chain_id}? (--chain-id)" for r in rejected]  # fmt: skip
    return "\n".join(line.rstrip() for line in lines)


def _signed_elsewhere(bad: int, result: OfflineResult) -> bool:
    """Whether so many signatures failed that the devices likely signed under another chain id."""
    return bad > 0 and (not result.trips_priced or bad * 10 >= result.messages)


def _short(owner: str) -> str:
    return f"owner {owner[:6]}…{owner[-4:]}" if owner.startswith("0x") and len(owner) == 42 else f"owner {owner}"
