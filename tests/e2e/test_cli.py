"""The `smartzone` command as a person meets it: `up` starts and stops cleanly; missing services give one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.running_up import running_up


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        loaded: dict[str, object] = json.load(response)
        return loaded


@pytest.mark.parametrize("broker", ["auto", "amqtt"])
def test_up_serves_the_fleet_within_seconds_and_exits_cleanly_on_sigint(broker: str, tmp_path: Path) -> None:
    with running_up(tmp_path / "data", {"SMARTZONE_EMBEDDED_BROKER": broker}, timeout_s=60) as up:
        deadline = time.monotonic() + 30
        stats: dict[str, object] = {}
        while time.monotonic() < deadline and not stats.get("online"):
            time.sleep(0.5)
            stats = get_json(f"{up.url}/api/v1/stats")
        assert stats.get("online"), "no vehicle online within 30 s"
        # positions are not public: the API asks for a login, and the banner gives the operator's for this run
        with pytest.raises(urllib.error.HTTPError) as refused:
            get_json(f"{up.url}/api/v1/vehicles")
        assert refused.value.code == 401
        assert len(up.operator_password()) >= 16
    assert f"{up.url}/" in up.output


@pytest.mark.parametrize(
    ("variable", "url", "command"),
    [
        ("SMARTZONE_MQTT_URL", "mqtt://127.0.0.1:1", "simulate"),
        ("SMARTZONE_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none", "aggregate"),
        ("SMARTZONE_CHAIN_URL", "http://127.0.0.1:1", "aggregate"),
    ],
)
def test_a_missing_service_gives_one_line_naming_its_url(variable: str, url: str, command: str, tmp_path: Path) -> None:
    env = {**os.environ, "SMARTZONE_DATA_DIR": str(tmp_path), "SMARTZONE_CHAIN_ID": "31337", variable: url}
    upgraded = subprocess.run(
        [sys.executable, "-m", "smartzone.cli", "db", "upgrade"],
        env={**os.environ, "SMARTZONE_DATA_DIR": str(tmp_path)},
        capture_output=True,
        timeout=60,
    )
    assert upgraded.returncode == 0
    extra = ["--no-register", "--minutes", "1"] if command == "simulate" else []
    done = subprocess.run(
        [sys.executable, "-m", "smartzone.cli", command, *extra], env=env, text=True, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "127.0.0.1:1" in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_a_service_refuses_a_database_without_the_schema_and_names_the_command(tmp_path: Path) -> None:
    env = {**os.environ, "SMARTZONE_DATA_DIR": str(tmp_path)}
    env.pop("SMARTZONE_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "smartzone.cli", "serve"], env=env, text=True, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    assert "run `smartzone db upgrade`" in done.stderr and "Traceback" not in done.stderr


def test_the_registry_commands_trust_add_list_and_revoke(tmp_path: Path) -> None:
    from sensors.signing import address_of
    from tests.signed import OPERATOR_KEY

    env = {**os.environ, "SMARTZONE_DATA_DIR": str(tmp_path), "SMARTZONE_CHAIN_ID": "31337"}
    env.pop("SMARTZONE_DATABASE_URL", None)

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "smartzone.cli", *args],
            env={**env, **extra},
            text=True,
            capture_output=True,
            timeout=60,
        )

    assert run("db", "upgrade").returncode == 0
    operator = str(address_of(OPERATOR_KEY))
    assert run("registry", "trust", "op-x", operator).returncode == 0
    device, payee = "0x" + "11" * 20, "0x" + "22" * 20
    entry = ["registry", "add", "bike-9", "--operator", "op-x", "--kind", "bike", "--device", device, "--payee", payee]
    unsigned = run(*entry)
    assert unsigned.returncode == 2 and "SMARTZONE_OPERATOR_KEY" in unsigned.stderr
    assert run(*entry, SMARTZONE_OPERATOR_KEY=OPERATOR_KEY.hex()).returncode == 0
    wrong = run("registry", "add", "bike-10", *entry[3:], SMARTZONE_OPERATOR_KEY="22" * 32)
    assert wrong.returncode == 2 and "not by operator op-x" in wrong.stderr
    listed = run("registry", "list", "--json")
    [line] = listed.stdout.splitlines()
    assert json.loads(line)["payee"] == "0x2222222222222222222222222222222222222222"
    assert "registry root 0x" in listed.stderr
    proof = json.loads(run("registry", "proof", "bike-9").stdout)
    assert proof["leaf"][0] == "bike-9" and proof["root"].startswith("0x")
    assert run("registry", "revoke", "bike-9").returncode == 0
    assert run("registry", "revoke", "bike-9").returncode == 2
