"""Real services for integration and end-to-end tests: find them, start them, or skip/fail."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from smartzone import broker
from smartzone.broker import BrokerTls, free_port, wait_open

ROOT = Path(__file__).resolve().parent.parent


def services_required() -> bool:
    """True where CI demands every real service (``SMARTZONE_REQUIRE_SERVICES=1``)."""
    return os.environ.get("SMARTZONE_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def unavailable(what: str) -> None:
    """Fail when services are required, else skip, naming what is missing."""
    if services_required():
        pytest.fail(f"{what} (SMARTZONE_REQUIRE_SERVICES is set)", pytrace=False)
    pytest.skip(what)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, seconds: float) -> bool:
    assert host == "127.0.0.1", "tests only use loopback"
    return wait_open(port, seconds)


def mosquitto_url() -> str:
    url = os.environ.get("SMARTZONE_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
    parts = urlsplit(url)
    if not port_open(parts.hostname or "127.0.0.1", parts.port or 1883):
        unavailable(f"no MQTT broker at {url}")
    return url


def postgres_base_url() -> str:
    url = os.environ.get("SMARTZONE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parts = urlsplit(url)
    if not port_open(parts.hostname or "127.0.0.1", parts.port or 5432):
        unavailable(f"no PostgreSQL at {url}")
    return url


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A database URL whose search_path is a fresh schema, dropped afterwards."""
    import sqlalchemy as sa

    base = postgres_base_url()
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    try:
        yield f"{base}?options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def anvil_binary() -> str | None:
    local = ROOT / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return str(local)
    return shutil.which("anvil")


@contextmanager
def anvil() -> Iterator[str]:
    """An anvil node on a free loopback port, stopped afterwards."""
    binary = anvil_binary()
    if binary is None:
        unavailable("no anvil binary (npm install @foundry-rs/anvil)")
        raise AssertionError("unreachable")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_for_port("127.0.0.1", port, 30):
            unavailable(f"anvil did not open 127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def mosquitto_binary() -> str:
    """The installed mosquitto binary; skip (or fail, when services are required) without one."""
    binary = broker.mosquitto_binary()
    if binary is None:
        unavailable("no mosquitto binary")
        raise AssertionError("unreachable")
    return binary


def make_test_tls(folder: Path) -> BrokerTls:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost signed by it, valid two days.

    Made with the openssl command (P-256 keys); skip (or fail when services are required) without it.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        unavailable("no openssl command to make a test certificate")
        raise AssertionError("unreachable")
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = folder / "ca.key", folder / "ca.crt"
    key, csr, crt, ext = folder / "server.key", folder / "server.csr", folder / "server.crt", folder / "server.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        [openssl, "req", "-x509", *new_key, "-keyout", ca_key, "-out", ca_crt, "-days", "2"]
        + ["-subj", "/CN=Smart Zone test CA", "-addext", "basicConstraints=critical,CA:TRUE"]
        + ["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [openssl, "req", *new_key, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-out", crt, "-days", "2"]
        + ["-set_serial", str(uuid.uuid4().int >> 64), "-extfile", ext],
    ]
    for command in commands:
        subprocess.run([str(part) for part in command], check=True, capture_output=True)
    return BrokerTls(ca_crt, crt, key)
