"""The ``smartzone record`` command: what arrives on the project's topics, streamed to a recording file."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sensors.errors import SmartZoneError
from sensors.mqtt import MqttClient
from sensors.ports import Received
from sensors.redaction import redact_url
from sensors.topics import TOPIC_VERSION
from simulator.recording import Recorded, RecordingHeader, RecordingWriter
from smartzone.console import stop_on_signals
from smartzone.settings import Settings

PROGRESS_S = 5.0
"""How often the recorder prints how much it has recorded."""
IDLE_FLUSH_S = 1.0


def add_record_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``record`` on the CLI's subcommands."""
    record = sub.add_parser(
        "record",
        help="record what arrives on the project's topics to a file (gzip JSON lines)",
        description="Subscribe (QoS 1) to <root>/v1/# on SMARTZONE_MQTT_URL and stream every message (topic, "
        "payload, QoS, retain flag, arrival time) to OUT, gzip-compressed JSON lines with a header naming the "
        "scenario. The file is flushed every second: Ctrl-C, SIGTERM, --seconds or --count leave it valid, and "
        "even a killed recorder leaves every flushed message readable. `smartzone replay OUT` plays it back.",
    )
    record.add_argument("out", type=Path, metavar="OUT", help="the recording to write (e.g. run.jsonl.gz)")
    record.add_argument("--force", action="store_true", help="replace OUT if it exists")
    record.add_argument("--root", help="topic root to record (default SMARTZONE_TOPIC_ROOT)")
    record.add_argument("--seconds", type=float, metavar="N", help="stop after this many seconds")
    record.add_argument("--count", type=int, metavar="N", help="stop after this many messages")
    record.add_argument("--scenario-name", metavar="NAME", help="the scenario's name, kept in the header")
    record.add_argument(
        "--seed", type=int, dest="scenario_seed", metavar="N", help="the scenario's seed, kept in the header"
    )
    record.add_argument(
        "--meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="more about the scenario for the header (repeatable; VALUE read as JSON when it is, e.g. vehicles=20, "
        "operator=acme, chain_id=31337: what `replay --offline` rebuilds the fleet's registry from)",
    )
    record.set_defaults(command=run_record)


def scenario_of(args: argparse.Namespace) -> dict[str, Any] | None:
    """The header's scenario from the options; None when none was given."""
    scenario: dict[str, Any] = {}
    if args.scenario_name is not None:
        scenario["name"] = args.scenario_name
    if args.scenario_seed is not None:
        scenario["seed"] = args.scenario_seed
    for item in args.meta:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SmartZoneError(f"--meta {item!r} is not KEY=VALUE")
        try:
            scenario[key] = json.loads(text)
        except ValueError:
            scenario[key] = text
    return scenario or None


class Recorder:
    """The subscription's handler: writes each message and acknowledges it once written (thread-safe)."""

    def __init__(self, writer: RecordingWriter, most: int | None, stop: threading.Event) -> None:
        self.writer, self.most, self.stop = writer, most, stop
        self.lock = threading.Lock()

    def __call__(self, item: Received) -> None:
        with self.lock:
            if self.most is not None and self.writer.written >= self.most:
                return  # past --count: left unacknowledged (the session ends with the recorder)
            self.writer.write(Recorded(int(item.received_at * 1000), item.topic, item.payload, item.qos, item.retain))
            if self.most is not None and self.writer.written >= self.most:
                self.stop.set()
        item.ack()

    def flush(self) -> None:
        with self.lock:
            self.writer.flush()


def run_record(settings: Settings, args: argparse.Namespace) -> int:
    """Record until stopped; 0, or 2 (one line) when the file cannot be written or the broker not reached."""
    if args.count is not None and args.count < 1 or args.seconds is not None and args.seconds <= 0:
        raise SmartZoneError("--count and --seconds must be positive")
    if args.out.exists() and not args.force:
        raise SmartZoneError(f"{args.out} exists already; choose another name, or pass --force to replace it")
    root = args.root or settings.topic_root
    url = settings.broker_url()
    header = RecordingHeader(root, redact_url(url), int(time.time() * 1000), scenario_of(args))
    try:
        writer = RecordingWriter(args.out, header)
    except OSError as exc:
        raise SmartZoneError(f"cannot write the recording {args.out}: {exc.strerror or exc}") from None
    with stop_on_signals() as stop:
        recorder = Recorder(writer, args.count, stop)
        client = MqttClient(
            url,
            f"smartzone-record-{secrets.token_hex(4)}",
            protocol=settings.mqtt_protocol,
            ca_file=settings.ca_file(),
            retain_as_published=True,
        )
        client.subscribe([(f"{root}/{TOPIC_VERSION}/#", 1)], recorder)
        try:
            client.connect()
        except SmartZoneError:
            writer.close()
            args.out.unlink(missing_ok=True)
            raise
        print(f"recording {root}/{TOPIC_VERSION}/# from {client.url} to {args.out}; Ctrl-C stops", file=sys.stderr)
        started = time.monotonic()
        try:
            _wait(recorder, stop, started, args.seconds)
        finally:
            client.close()
            with recorder.lock:
                writer.close()
    elapsed = time.monotonic() - started
    print(f"recorded {writer.written} messages in {elapsed:.1f} s to {args.out}", file=sys.stderr, flush=True)
    return 0


def _wait(recorder: Recorder, stop: threading.Event, started: float, seconds: float | None) -> None:
    """Flush every second and report every ``PROGRESS_S`` until ``stop`` or ``seconds``."""
    last_report, last_count = started, 0
    end = started + seconds if seconds is not None else None
    while not stop.wait(IDLE_FLUSH_S if end is None else max(0.0, min(IDLE_FLUSH_S, end - time.monotonic()))):
        now = time.monotonic()
        recorder.flush()
        if end is not None and now >= end:
            return
        if now - last_report >= PROGRESS_S:
            count = recorder.writer.written
            rate = (count - last_count) / (now - last_report)
            print(f"recorded {count} messages ({rate:.0f}/s)", file=sys.stderr, flush=True)
            last_report, last_count = now, count
