"""The `smartzone` command as a person meets it: `up` starts and stops cleanly; missing services give one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import services


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        loaded: dict[str, object] = json.load(response)
        return loaded


@pytest.mark.parametrize("broker", ["auto", "amqtt"])
def test_up_serves_the_fleet_within_seconds_and_exits_cleanly_on_sigint(broker: str, tmp_path: Path) -> None:
    port = services.free_port()
    env = {
        **os.environ,
        "SMARTZONE_HTTP_PORT": str(port),
        "SMARTZONE_DATA_DIR": str(tmp_path / "data"),
        "SMARTZONE_EMBEDDED_BROKER": broker,
        "SMARTZONE_SPEED": "30",
        "SMARTZONE_EPOCH_SECONDS": "2",
    }
    for name in ("SMARTZONE_MQTT_URL", "SMARTZONE_DATABASE_URL", "SMARTZONE_CHAIN_URL"):
        env.pop(name, None)
    started = time.monotonic()
    up = subprocess.Popen(
        [sys.executable, "-m", "smartzone.cli", "up"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = started + 60
        vehicles: list[object] = []
        while time.monotonic() < deadline and not vehicles:
            time.sleep(0.5)
            try:
                vehicles = list(get_json(f"http://127.0.0.1:{port}/api/v1/vehicles")["items"])  # type: ignore[call-overload]
            except OSError:
                assert up.poll() is None, up.communicate()[1]
        assert vehicles, "no vehicles served within 60 s"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            page = response.read().decode()
        assert all(v["vehicle_id"] in page for v in vehicles)  # type: ignore[index]
        up.send_signal(signal.SIGINT)
        out, err = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 0, err
    assert "http://127.0.0.1:" in out and "stopped cleanly" in out
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("variable", "url", "command"),
    [
        ("SMARTZONE_MQTT_URL", "mqtt://127.0.0.1:1", "simulate"),
        ("SMARTZONE_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none", "aggregate"),
        ("SMARTZONE_CHAIN_URL", "http://127.0.0.1:1", "aggregate"),
    ],
)
def test_a_missing_service_gives_one_line_naming_its_url(variable: str, url: str, command: str, tmp_path: Path) -> None:
    env = {**os.environ, "SMARTZONE_DATA_DIR": str(tmp_path), variable: url}
    done = subprocess.run(
        [sys.executable, "-m", "smartzone.cli", command], env=env, text=True, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "127.0.0.1:1" in lines[0], done.stderr
    assert "Traceback" not in done.stderr
