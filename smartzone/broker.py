"""An MQTT broker for `smartzone up`: Mosquitto where its binary is installed, else amqtt in-process."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sensors.errors import BrokerUnavailable


@dataclass(frozen=True, slots=True)
class RunningBroker:
    url: str
    protocol: str  # "auto" (Mosquitto speaks 5) or "3.1.1" (amqtt)
    name: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_open(port: int, seconds: float) -> bool:
    """True once something listens on 127.0.0.1:``port``, False after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def mosquitto_config(port: int) -> str:
    """The project's Mosquitto settings with a loopback listener on ``port``."""
    base = resources.files("smartzone").joinpath("mosquitto.conf").read_text("utf-8")
    return f"{base}\nlistener {port} 127.0.0.1\n"


@contextmanager
def mosquitto(binary: str, port: int | None = None) -> Iterator[RunningBroker]:
    """Run Mosquitto with the project's settings on a loopback port until the block ends."""
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="smartzone-mosquitto-") as folder:
        conf = Path(folder) / "mosquitto.conf"
        conf.write_text(mosquitto_config(port))
        # its own session: a Ctrl-C to the terminal must not stop the broker before the parts have drained
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            if not wait_open(port, 10):
                raise BrokerUnavailable(f"mqtt://127.0.0.1:{port}", "mosquitto did not start")
            yield RunningBroker(f"mqtt://127.0.0.1:{port}", "auto", "mosquitto")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@contextmanager
def amqtt_broker(port: int | None = None) -> Iterator[RunningBroker]:
    """Run an amqtt broker (MQTT 3.1.1) on its own event loop thread until the block ends."""
    from amqtt.broker import Broker

    port = port or free_port()
    config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="amqtt", daemon=True)
    thread.start()

    async def start() -> Broker:
        broker = Broker(config, loop=loop)
        await broker.start()
        return broker

    broker = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=15)
    try:
        yield RunningBroker(f"mqtt://127.0.0.1:{port}", "3.1.1", "amqtt (in-process)")
    finally:
        asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(timeout=15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


@contextmanager
def embedded_broker(prefer: str = "auto") -> Iterator[RunningBroker]:
    """Mosquitto if installed (unless ``prefer`` is "amqtt"), else amqtt; "mosquitto" insists on it."""
    binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if prefer == "mosquitto" and binary is None:
        raise BrokerUnavailable("mqtt://127.0.0.1", "no mosquitto binary is installed")
    if binary and prefer != "amqtt":
        with mosquitto(binary) as running:
            yield running
    else:
        with amqtt_broker() as running:
            yield running
