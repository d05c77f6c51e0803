"""One instance per data folder, resets only on request, and every option checked before anything starts."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import services


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "SMARTZONE_DATA_DIR": str(data_dir), **extra}
    for name in ("SMARTZONE_MQTT_URL", "SMARTZONE_DATABASE_URL", "SMARTZONE_CHAIN_URL", "SMARTZONE_HTTP_PORT"):
        if name not in extra:
            env.pop(name, None)
    return env


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smartzone.cli", *args], env=env, text=True, capture_output=True, timeout=120
    )


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "smartzone.cli", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single line a refused command printed (stdout and stderr together), exit code 2."""
    lines = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stdout + done.stderr
    assert lines[0].startswith("smartzone: error: ")
    return lines[0]


def vehicles_served(port: int, proc: subprocess.Popen[str], seconds: float = 90) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, stop(proc)[1][-3000:]
        try:
            # the public counts: positions need a login
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/stats", timeout=5) as response:
                stats = json.load(response)
            if stats["telemetry"]:  # the fleet has reported: how many vehicles it has
                return int(stats["vehicles"])
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no vehicles served on port {port} within {seconds:.0f} s")


def count(database: Path, table: str) -> int:
    with sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True) as conn:
        n: int = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - a fixed table name
    conn.close()
    return n


@pytest.mark.parametrize(
    ("args", "variables", "expected"),
    [
        (["up", "--port", "70000"], {}, ["--port", "65535"]),
        (["serve"], {"SMARTZONE_HTTP_PORT": "0"}, ["SMARTZONE_HTTP_PORT"]),
        (
            ["serve"],
            {"SMARTZONE_LOG_LEVEL": "verbose"},
            ["SMARTZONE_LOG_LEVEL", "DEBUG, INFO, WARNING, ERROR, CRITICAL"],
        ),
        (
            ["aggregate"],
            {"SMARTZONE_DATABASE_URL": "postgres://app:pw-123456@127.0.0.1/db"},
            ["SMARTZONE_DATABASE_URL", "write postgresql+psycopg://… (SQLAlchemy does not accept postgres://)"],
        ),
        (["serve"], {"SMARTZONE_DATABASE_URL": "mysql://127.0.0.1/db"}, ["SMARTZONE_DATABASE_URL", "sqlite:///"]),
        (["simulate", "--minutes", "1"], {"SMARTZONE_MQTT_URL": "http://127.0.0.1:1883"}, ["mqtt://", "mqtts://"]),
        (["aggregate"], {"SMARTZONE_CHAIN_URL": "ftp://127.0.0.1:8545"}, ["SMARTZONE_CHAIN_URL", "http://"]),
        (["simulate", "--speed", "0"], {}, ["--minutes"]),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2_before_anything_starts(
    args: list[str], variables: dict[str, str], expected: list[str], tmp_path: Path
) -> None:
    line = one_line(run(*args, env=env_for(tmp_path / "data", **variables)))
    assert all(part in line for part in expected), line
    assert "pw-123456" not in line
    assert not (tmp_path / "data").exists()  # nothing started: not even the data folder


def test_a_taken_port_is_told_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command in ("up", "serve"):
            line = one_line(run(command, "--port", str(port), env=env_for(tmp_path)))
            assert f"port {port} on 127.0.0.1 is already taken" in line and "--port" in line
    assert not (tmp_path / "smartzone.db").exists()  # no database, broker or chain was started


def test_db_reset_needs_yes_and_then_empties_the_database(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    assert run("db", "upgrade", env=env).returncode == 0
    assert run("registry", "trust", "op-x", "0x" + "11" * 20, env=env).returncode == 0
    database = tmp_path / "smartzone.db"
    refused = one_line(run("db", "reset", env=env))
    assert "--yes" in refused and count(database, "operators") == 1
    done = run("db", "reset", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    assert count(database, "operators") == 0


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    hold = (
        "import sys, time; from pathlib import Path; from smartzone.instance import acquire; "
        "acquire(Path(sys.argv[1]), 'smartzone up'); print('held', flush=True); time.sleep(600)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold, str(tmp_path)], text=True, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        line = one_line(run("aggregate", env=env_for(tmp_path)))
        assert f"is in use by `smartzone up` (pid {holder.pid} on {socket.gethostname()}, started 20" in line
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        from smartzone.instance import acquire

        acquire(tmp_path, "test").release()  # the OS released the dead holder's lock
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_second_up_in_one_folder_is_refused_and_a_later_up_keeps_the_earlier_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    database = data / "smartzone.db"
    # py-evm: its chain lives in memory, so the second run starts a new one and must keep the first's database
    env = env_for(data, SMARTZONE_SPEED="30", SMARTZONE_EPOCH_SECONDS="2", SMARTZONE_EMBEDDED_CHAIN="py-evm")
    first_port = services.free_port()
    first = start("up", "--port", str(first_port), env=env)
    try:
        vehicles_served(first_port, first)
        second_port = services.free_port()
        refused = one_line(run("up", "--port", str(second_port), env=env))
        assert f"{data}/ is in use by `smartzone up` (pid {first.pid} on " in refused, refused
        assert "stop it or set SMARTZONE_DATA_DIR to another folder" in refused
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", second_port))  # the refused `up` did not take its port
        assert f"(pid {first.pid} " in one_line(run("aggregate", env=env))
        serve_port = services.free_port()
        reader = start("serve", "--port", str(serve_port), env=env)  # serve only reads: no lock
        try:
            assert vehicles_served(serve_port, reader) == 20
        finally:
            stop(reader)
        assert reader.returncode == 0
        assert vehicles_served(first_port, first) == 20 and not (data / "previous").exists()
        assert count(database, "deployments") == 1  # neither reset nor moved by the refused commands
    finally:
        out, err = stop(first)
    assert first.returncode == 0 and "stopped cleanly" in out, err[-3000:]
    trips = count(database, "trips")
    assert trips > 0

    later_port = services.free_port()
    later = start("up", "--port", str(later_port), "--speed", "0", "--minutes", "30", env=env)
    try:
        vehicles_served(later_port, later)
    finally:
        out, err = stop(later)
    assert later.returncode == 0, err[-3000:]
    [kept] = (data / "previous").glob("smartzone-*Z.db")
    assert f"the earlier run's database (its in-memory chain is gone) is kept as {kept}" in out
    assert count(kept, "trips") == trips and count(kept, "deployments") == 1
    assert "as fast as possible" in out and "speed 0x" not in out
