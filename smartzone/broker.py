"""An MQTT broker for `smartzone up` and the tests: Mosquitto where its binary is installed, else amqtt in-process.

Either is started with a ``BrokerAccess`` (``smartzone.broker_access``): users with passwords, an ACL per
role, and anonymous clients refused unless that access says so (an explicit demo setting).

- **Mosquitto** (MQTT 5 and 3.1.1) gets the generated ``password_file`` and ``acl_file`` (in a private temporary
  folder, handed to the ``mosquitto`` account when we run as root, since Mosquitto reads them after dropping
  privileges) and, with ``BrokerTls``, a second listener that speaks TLS 1.2 or later only. A publish outside
  the ACL is refused: answered with PUBACK "Not authorized" under MQTT 5 (QoS 1), dropped silently under 3.1.1.
  Sessions and queued QoS 1 messages persist in a data folder (``data_dir``): stopped and started again on the
  same port with the same folder and access, it carries on (see docs/operations.md for what a SIGKILL loses).
- **amqtt** (MQTT 3.1.1 only, in-process: the fallback where Mosquitto is not installed), checked with amqtt
  0.12: passwords through its ``FileAuthPlugin`` (argon2 hashes, through ``pwdlib``) and the same topic
  rules through its ``TopicAccessControlListPlugin``, listed user by user since it has no ``%u`` pattern.
  Its limits: no TLS listener here, refused publishes are dropped without telling the publisher (3.1.1),
  no shared subscriptions, and its ACL is amqtt's own prefix/wildcard match rather than Mosquitto's.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import socket
import stat
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

from sensors.errors import BrokerUnavailable, SmartZoneError
from smartzone.broker_access import ANONYMOUS, BrokerAccess, write_private_file


@dataclass(frozen=True, slots=True)
class RunningBroker:
    """A broker that is up: its plain URL (no credentials), the protocol to ask for, and its TLS URL if any."""

    url: str
    protocol: str  # "auto" (Mosquitto speaks 5) or "3.1.1" (amqtt)
    name: str
    tls_url: str | None = None


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """PEM files for a TLS listener: the CA that signed the server certificate, the certificate, its key."""

    cafile: Path
    certfile: Path
    keyfile: Path


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


def mosquitto_config(
    folder: Path,
    port: int,
    access: BrokerAccess,
    tls: BrokerTls | None = None,
    tls_port: int | None = None,
    *,
    data_dir: Path | None = None,
) -> Path:
    """Write the project's settings with ``access``'s files and loopback listener(s) into ``folder``; the config.

    With ``tls``, a second listener on ``tls_port`` speaks TLS 1.2+ only; both listeners share the users and ACL.
    Sessions and queued messages are saved in ``data_dir`` (default: ``folder``/data), created if missing.
    """
    if tls is not None and tls_port is None:
        raise SmartZoneError("a TLS listener needs its own port")
    base = resources.files("smartzone").joinpath("mosquitto.conf").read_text("utf-8")
    anonymous = "true" if access.allow_anonymous else "false"
    lines = [re.sub(r"(?m)^allow_anonymous .*$", f"allow_anonymous {anonymous}", base)]
    store = data_dir if data_dir is not None else folder / "data"
    store.mkdir(parents=True, exist_ok=True)
    lines.append(f"persistence_location {store.resolve()}/")  # Mosquitto wants the trailing slash
    password, acl = access.write_mosquitto_files(folder)
    if password is not None:
        lines.append(f"password_file {password}")
    lines.append(f"acl_file {acl}")
    if tls is not None:  # copied: like the password file, Mosquitto reads them after dropping privileges
        tls = BrokerTls(
            _copy(tls.cafile, folder / "tls-ca.pem"),
            _copy(tls.certfile, folder / "tls-cert.pem"),
            _copy(tls.keyfile, folder / "tls-key.pem"),
        )
    if _keep_root(folder, store):
        lines.append("user root")
    lines.append(f"listener {port} 127.0.0.1")
    if tls is not None:
        lines += [
            f"listener {tls_port} 127.0.0.1",
            f"cafile {tls.cafile}",
            f"certfile {tls.certfile}",
            f"keyfile {tls.keyfile}",
            "tls_version tlsv1.2",
        ]
    return write_private_file(folder / "mosquitto.conf", "\n".join(lines) + "\n")


def _copy(source: Path, target: Path) -> Path:
    return write_private_file(target, source.read_text("utf-8"))


def _keep_root(folder: Path, store: Path) -> bool:
    """As root, Mosquitto drops to the ``mosquitto`` account before reading the password and ACL files and
    writing its store: hand ``folder`` and ``store`` to that account, or (no such account) tell Mosquitto to
    stay root. False when not root."""
    if os.geteuid() != 0:
        return False
    try:
        account = pwd.getpwnam("mosquitto")
    except KeyError:
        return True
    if not _reachable_by_others(store.resolve().parent, folder.resolve()):
        return True  # e.g. a store under a private home or test folder: the account could not get there
    for path in (folder, *folder.iterdir(), store, *store.iterdir()):
        os.chown(path, account.pw_uid, account.pw_gid)
    return False


def _reachable_by_others(folder: Path, ours: Path) -> bool:
    """True when any account may pass through ``folder`` and each folder above it (execute bit for others),
    but for ``ours``, which is handed to the account anyway."""
    return all(path == ours or path.stat().st_mode & stat.S_IXOTH for path in (folder, *folder.parents))


@contextmanager
def mosquitto(
    binary: str,
    port: int | None = None,
    *,
    access: BrokerAccess,
    tls: BrokerTls | None = None,
    tls_port: int | None = None,
    data_dir: Path | None = None,
) -> Iterator[RunningBroker]:
    """Run Mosquitto with the project's settings and ``access`` on loopback port(s) until the block ends.

    Its sessions and queued QoS 1 messages are kept in ``data_dir`` (created if missing; None: a temporary
    folder gone with the block), saved when the block ends and every few seconds: started again on the same
    port with the same ``data_dir`` and ``access``, it carries on where it stopped.
    """
    port = port or free_port()
    tls_port = (tls_port or free_port()) if tls is not None else None
    url = f"mqtt://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="smartzone-mosquitto-") as name:
        folder = Path(name)
        conf = mosquitto_config(folder, port, access, tls, tls_port, data_dir=data_dir)
        log_path = folder / "mosquitto.log"
        with log_path.open("wb") as log_file:
            # its own session: a Ctrl-C to the terminal must not stop the broker before the parts have drained
            proc = subprocess.Popen(
                [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=log_file, start_new_session=True
            )
        try:
            for listening in (port, tls_port):
                if listening is not None and not started(proc, listening):
                    raise BrokerUnavailable(url, f"mosquitto did not start: {_last_line(log_path)}")
            tls_url = f"mqtts://127.0.0.1:{tls_port}" if tls_port is not None else None
            yield RunningBroker(url, "auto", "mosquitto", tls_url)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def started(proc: subprocess.Popen[bytes], port: int, seconds: float = 10.0) -> bool:
    """Whether the process ``proc`` opened the loopback ``port`` within ``seconds`` (False once it has exited)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if wait_open(port, 0.2):
            return True
    return False


def _last_line(log_path: Path) -> str:
    lines = log_path.read_text("utf-8", errors="replace").strip().splitlines()
    return lines[-1] if lines else "no message (see its exit code)"


@contextmanager
def amqtt_broker(port: int | None = None, *, access: BrokerAccess) -> Iterator[RunningBroker]:
    """Run an amqtt broker (MQTT 3.1.1) with ``access`` on its own event loop thread until the block ends."""
    from amqtt.broker import Broker

    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="smartzone-amqtt-") as name:
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": amqtt_plugins(access, Path(name)),
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


def amqtt_plugins(access: BrokerAccess, folder: Path) -> dict[str, Any]:
    """amqtt's plugin settings for ``access``: password file (written into ``folder``), anonymous switch, ACL."""
    if not access.users and not access.allow_anonymous:
        raise SmartZoneError("the broker access has no users and refuses anonymous clients: nobody could connect")
    plugins: dict[str, Any] = {}
    if access.users:
        path = write_private_file(folder / "passwd", amqtt_password_file(access))
        plugins["amqtt.plugins.authentication.FileAuthPlugin"] = {"password_file": str(path)}
    if access.allow_anonymous:
        plugins["amqtt.plugins.authentication.AnonymousAuthPlugin"] = {"allow_anonymous": True}
    read: dict[str, list[str]] = {}
    write: dict[str, list[str]] = {}
    for user in (None, *access.users):
        rules = access.rules(user)
        name = ANONYMOUS if user is None else user.username
        read[name], write[name] = list(rules.read), list(rules.write)
    # "acl" is what amqtt 0.12 checks subscriptions against; an absent user may do nothing
    plugins["amqtt.plugins.topic_checking.TopicAccessControlListPlugin"] = {"acl": read, "publish_acl": write}
    return plugins


def amqtt_password_file(access: BrokerAccess) -> str:
    """``user:<argon2 hash>`` lines for amqtt's ``FileAuthPlugin`` (cheap parameters: the passwords are random)."""
    try:
        from pwdlib.hashers.argon2 import Argon2Hasher
    except ImportError as exc:  # amqtt installs pwdlib; argon2-cffi may be absent
        raise SmartZoneError(
            f"amqtt's password check needs pwdlib with argon2-cffi ({exc}); or install Mosquitto"
        ) from exc
    hasher = Argon2Hasher(time_cost=1, memory_cost=8192, parallelism=1)
    return "".join(f"{u.username}:{hasher.hash(u.password)}\n" for u in access.users)


def mosquitto_binary() -> str | None:
    """The installed ``mosquitto`` binary (also found in /usr/sbin outside root's PATH), or None."""
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


@contextmanager
def embedded_broker(
    prefer: str = "auto", *, access: BrokerAccess, data_dir: Path | None = None
) -> Iterator[RunningBroker]:
    """Mosquitto if installed (unless ``prefer`` is "amqtt"), else amqtt; "mosquitto" insists on it.

    Mosquitto keeps its sessions and queued messages in ``data_dir`` (see ``mosquitto``); amqtt keeps nothing.
    """
    binary = mosquitto_binary()
    if prefer == "mosquitto" and binary is None:
        raise BrokerUnavailable("mqtt://127.0.0.1", "no mosquitto binary is installed")
    if binary and prefer != "amqtt":
        with mosquitto(binary, access=access, data_dir=data_dir) as running:
            yield running
    else:
        with amqtt_broker(access=access) as running:
            yield running
