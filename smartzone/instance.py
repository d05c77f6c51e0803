"""One instance per data folder: a lock file held for the life of the process, and moving an old database aside.

``<data_dir>/smartzone.lock`` is locked with ``flock`` by the process that writes the folder (``smartzone up``,
an ``aggregate`` or a ``db reset`` on the folder's SQLite file) and holds that process's pid, start time, command
and host. The operating system releases the lock when the process ends, however it ends, so a lock is never
stale; the file itself stays and is overwritten by the next holder. ``serve`` only reads and takes no lock.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sensors.errors import SmartZoneError
from smartzone.settings import Settings

LOCK_NAME = "smartzone.lock"
DATABASE_NAME = "smartzone.db"
PREVIOUS = "previous"
SQLITE_COMPANIONS = ("", "-wal", "-shm")


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a data folder."""

    pid: int
    host: str
    started: str  # UTC, ISO 8601
    command: str

    def describe(self) -> str:
        return f"`{self.command}` (pid {self.pid} on {self.host}, started {self.started})"


class DataDirInUse(SmartZoneError):
    """Another process holds the data folder."""

    def __init__(self, data_dir: Path, holder: Holder | None) -> None:
        who = holder.describe() if holder is not None else "another process"
        super().__init__(f"{_folder(data_dir)} is in use by {who}; stop it or set SMARTZONE_DATA_DIR to another folder")
        self.holder = holder


@dataclass
class InstanceLock:
    """A held lock on a data folder; ``release`` (or the end of the process) lets the next instance in."""

    path: Path
    holder: Holder
    _fd: int | None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def acquire(data_dir: Path, command: str) -> InstanceLock:
    """Lock ``data_dir`` for this process or raise ``DataDirInUse`` naming the holder."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes (PEP 446)
    except OSError as exc:
        raise SmartZoneError(f"cannot lock {_folder(data_dir)}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise DataDirInUse(data_dir, read_holder(path)) from None
        raise SmartZoneError(f"cannot lock {path}: {exc.strerror}") from None
    holder = Holder(os.getpid(), socket.gethostname(), _utc_now(), command)
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(_as_dict(holder)) + "\n").encode(), 0)
    return InstanceLock(path, holder, fd)


def read_holder(path: Path, attempts: int = 20) -> Holder | None:
    """The holder written in a lock file (retried briefly: a new holder writes just after locking)."""
    for _ in range(attempts):
        try:
            data = json.loads(path.read_text("utf-8"))
            return Holder(int(data["pid"]), str(data["host"]), str(data["started"]), str(data["command"]))
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.05)
    return None


def data_dir_database(settings: Settings) -> Path | None:
    """The data folder's SQLite file when the settings' database is that file, else ``None``."""
    default = settings.data_dir / DATABASE_NAME
    url = settings.db_url()
    if settings.database_url is not None:
        prefix = "sqlite:///"
        if not url.startswith(prefix) or Path(url[len(prefix) :]).resolve() != default.resolve():
            return None
    return default


def holds_deployment(database: Path) -> bool:
    """True when the SQLite file records a contract deployment (or cannot be read: then it is kept too)."""
    if not database.exists():
        return False
    try:
        conn = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return True
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return "deployments" in tables and conn.execute("SELECT count(*) FROM deployments").fetchone()[0] > 0
    except sqlite3.Error:
        return True
    finally:
        conn.close()


def move_aside(database: Path) -> Path:
    """Move ``database`` (with its -wal and -shm files) into ``previous/`` under a UTC timestamp; the new name."""
    folder = database.parent / PREVIOUS
    folder.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = folder / f"{database.stem}-{stamp}{database.suffix}"
    n = 1
    while any(Path(f"{target}{companion}").exists() for companion in SQLITE_COMPANIONS):
        n += 1
        target = folder / f"{database.stem}-{stamp}-{n}{database.suffix}"
    for companion in SQLITE_COMPANIONS:
        source = Path(f"{database}{companion}")
        if source.exists():
            source.rename(f"{target}{companion}")
    return target


def _as_dict(holder: Holder) -> dict[str, object]:
    return {"pid": holder.pid, "host": holder.host, "started": holder.started, "command": holder.command}


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _folder(data_dir: Path) -> str:
    return f"{str(data_dir).rstrip('/')}/"
