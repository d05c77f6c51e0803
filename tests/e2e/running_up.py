"""`smartzone up` as a subprocess for tests: started on free ports in a data folder of its own, its banner read."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests import services

READY = "Press Ctrl-C to stop."
LOGIN = re.compile(r"operator login: operator / (\S+)")


@dataclass
class RunningUp:
    """A running `smartzone up`: its dashboard URL, its output so far, the operator password its banner gave."""

    url: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def operator_password(self) -> str:
        found = LOGIN.search(self.output)
        assert found, f"no operator login in the banner:\n{self.output}"
        return found.group(1)


def _pump(stream: object, into: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.append(line)


@contextmanager
def running_up(data_dir: Path, env: dict[str, str] | None = None, timeout_s: float = 90) -> Iterator[RunningUp]:
    """`smartzone up` on a free port with ``env`` over the test's environment (no external services unless named);
    stops it with SIGINT afterwards and checks that it stopped cleanly."""
    port = services.free_port()
    full = {
        **os.environ,
        "SMARTZONE_HTTP_PORT": str(port),
        "SMARTZONE_DATA_DIR": str(data_dir),
        "SMARTZONE_SPEED": "30",
        "SMARTZONE_EPOCH_SECONDS": "2",
    }
    for name in ("SMARTZONE_MQTT_URL", "SMARTZONE_DATABASE_URL", "SMARTZONE_CHAIN_URL"):
        full.pop(name, None)
    full.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "smartzone.cli", "up"],
        env=full,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    running = RunningUp(f"http://127.0.0.1:{port}", process)
    pumps = [
        threading.Thread(target=_pump, args=(process.stdout, running.lines), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, running.errors), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    try:
        deadline = time.monotonic() + timeout_s
        while READY not in running.output:
            assert process.poll() is None, "".join(running.errors)
            assert time.monotonic() < deadline, f"not up within {timeout_s} s:\n{running.output}"
            time.sleep(0.2)
        yield running
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        for pump in pumps:
            pump.join(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0, "".join(running.errors)
    assert "stopped cleanly" in running.output
    assert "Traceback" not in "".join(running.errors), "".join(running.errors)
