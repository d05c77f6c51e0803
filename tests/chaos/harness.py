"""The moving parts of a chaos experiment: the aggregator as a real process, a paced publisher, a broker that
can be restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensors.errors import SmartZoneError
from sensors.mqtt import MqttClient
from smartzone.broker import free_port, mosquitto
from smartzone.broker_access import BrokerAccess
from smartzone.parts import REDELIVER_UNMATCHED_S
from tests.chaos.stream import Stream

ANVIL_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil's first default account


# --- the aggregator, a real process -----------------------------------------------------------------
@dataclass
class AggregatorProcess:
    """``smartzone aggregate`` in its own process; each start logs to its own file in ``folder``."""

    name: str
    env: dict[str, str]
    folder: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    def start(self, timeout: float = 90.0) -> None:
        """Start it and wait until it says it is aggregating (subscribed, contract attached)."""
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is already running"
        self.starts += 1
        log = self.folder / f"{self.name}-{self.starts}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "smartzone.cli", "aggregate"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while "aggregating from" not in log.read_text("utf-8", errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not start (exit {self.proc.poll()}):\n{self.tail()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no chance to drain, acknowledge or settle."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 120.0) -> int:
        """SIGTERM, as an orchestrator stops a service: it drains, settles what it can and exits; its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            message = f"{self.name} did not stop within {timeout:.0f} s of SIGTERM:\n{self.tail()}"
            raise AssertionError(message) from None

    def tail(self, lines: int = 40) -> str:
        text = "".join(f"--- {p.name}\n" + p.read_text("utf-8", errors="replace") for p in self.logs)
        return "\n".join(text.splitlines()[-lines:])


def aggregator_env(
    name: str, *, mqtt_url: str, database_url: str, chain_url: str, folder: Path, **extra: str
) -> dict[str, str]:
    """The environment of one aggregator (its own id and data folder); ``extra`` adds SMARTZONE_* settings."""
    data = folder / name
    data.mkdir(parents=True, exist_ok=True)
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("SMARTZONE_")},  # none leaks in
        "SMARTZONE_MQTT_URL": mqtt_url,
        "SMARTZONE_DATABASE_URL": database_url,
        "SMARTZONE_CHAIN_URL": chain_url,
        "SMARTZONE_CHAIN_PRIVATE_KEY": ANVIL_KEY,
        "SMARTZONE_EPOCH_SECONDS": "1",
        "SMARTZONE_AGGREGATOR_ID": f"chaos-{name}",
        "SMARTZONE_DATA_DIR": str(data),
        "SMARTZONE_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    env.update({f"SMARTZONE_{key.upper()}": value for key, value in extra.items()})
    return env


@dataclass
class Parts:
    """What one experiment runs: its aggregators and publishers, all stopped when the experiment ends."""

    aggregators: list[AggregatorProcess]
    feeds: list[Feed] = field(default_factory=list)

    def feed(self, stream: Stream, url: str, seconds: float) -> Feed:
        """Start publishing ``stream`` at ``url`` over ``seconds``."""
        feed = Feed(stream, url, seconds)
        self.feeds.append(feed)
        return feed.start()


@contextmanager
def running(*aggregators: AggregatorProcess) -> Iterator[Parts]:
    """Whatever happens in the block, no aggregator process or publisher outlives it."""
    parts = Parts(list(aggregators))
    try:
        yield parts
    finally:
        for feed in parts.feeds:
            feed.abandon()
        for each in parts.aggregators:
            each.kill()


# --- the publisher ----------------------------------------------------------------------------------
class Feed:
    """Publishes the stream as the operator's gateway at a steady pace over ``seconds``, on a thread, with the
    publisher settings of ``smartzone simulate`` (an event or state routed to no subscriber is published again)."""

    def __init__(self, stream: Stream, url: str, seconds: float, client_id: str = "chaos-gateway") -> None:
        self.stream = stream
        self.seconds = seconds
        self.client = MqttClient(url, client_id, redeliver_unmatched_s=REDELIVER_UNMATCHED_S)
        self.sent = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-feed", daemon=True)

    def start(self) -> Feed:
        self.client.connect()
        self._thread.start()
        return self

    def _run(self) -> None:
        messages = self.stream.messages
        step = self.seconds / max(1, len(messages))
        began = time.monotonic()
        try:
            for n, (topic, payload, qos, retain) in enumerate(messages):
                if self._halt.is_set():
                    return
                delay = began + n * step - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.client.publish(topic, payload, qos, retain)
                self.sent = n + 1
            self.client.close(timeout=180)
        except BaseException as exc:  # reported by ``finish``
            self.error = exc

    def abandon(self) -> None:
        """Stop publishing and disconnect without waiting for acknowledgements (an experiment that failed)."""
        self._halt.set()
        self._thread.join(timeout=10)
        try:
            self.client.close(timeout=0.5)
        except SmartZoneError:
            pass

    def reached(self, fraction: float) -> bool:
        return self.sent >= fraction * len(self.stream.messages)

    def wait_for(self, fraction: float, timeout: float = 120.0) -> None:
        wait_until(lambda: self.reached(fraction) or not self._thread.is_alive(), timeout, f"{fraction:.0%} sent")

    def finish(self, timeout: float = 240.0) -> None:
        """Wait until everything is published and every QoS 1 message acknowledged by the broker."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the publisher did not finish within {timeout:.0f} s ({self.sent} sent)")
        if self.error is not None:
            raise AssertionError(f"the publisher failed after {self.sent} messages: {self.error}")

    def figures(self) -> dict[str, int]:
        """QoS 0 messages the publisher dropped (the broker was away); QoS 1 ones routed to no subscriber for good."""
        return {"qos0_dropped_by_publisher": self.client.lost, "qos1_unmatched": self.client.unmatched}


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.2)


# --- a broker that can be restarted -----------------------------------------------------------------
class RestartableBroker:
    """The project's Mosquitto on one port and one data folder, stopped (SIGTERM) and started again at will."""

    def __init__(self, binary: str, access: BrokerAccess, data_dir: Path) -> None:
        self.binary = binary
        self.access = access
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._block: Any = None

    def start(self) -> None:
        block = mosquitto(self.binary, self.port, access=self.access, data_dir=self.data_dir)
        block.__enter__()
        self._block = block

    def stop(self) -> None:
        block, self._block = self._block, None
        if block is not None:
            block.__exit__(None, None, None)

    def __enter__(self) -> RestartableBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
