"""The dashboard's ``ReplayControl`` on a folder of recordings: one replay at a time in a thread, onto a broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from dashboard.replay_control import (
    IDLE,
    RecordingInfo,
    ReplayBusy,
    ReplayStatus,
    UnknownRecording,
    check_name,
    check_speed,
)
from simulator.recording import InvalidRecording, read_recording
from simulator.replay import ReplayOptions, ReplayProgress, replay

SUFFIXES = (".jsonl.gz",)
SCAN_NOW_BYTES = 4 << 20
"""A recording up to this size is scanned while the page waits; a larger one in the background."""
STOP_WAIT_S = 5.0
FLUSH_S = 5.0


class BrokerClient(Protocol):
    """A connected publisher that can be closed (``sensors.mqtt.MqttClient`` after ``connect``)."""

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None: ...

    def flush(self, timeout: float = 30.0) -> None: ...

    def close(self) -> None: ...


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def scan(path: Path) -> RecordingInfo:
    """What a recording holds, read once from end to end (streamed): messages, recorded span, scenario; a file
    that is not a recording is listed with the reason in ``damage``."""
    size = path.stat().st_size
    try:
        header, records = read_recording(path)
    except InvalidRecording as exc:
        return RecordingInfo(path.name, size, None, None, None, damage=str(exc).replace(str(path.parent), "")[:200])
    first = last = None
    count = 0
    try:
        for item in records:
            first = item.at_ms if first is None else first
            last = item.at_ms
            count += 1
    finally:
        records.close()
    scenario = header.scenario or {}
    name, seed = scenario.get("name"), scenario.get("seed")
    duration = None if first is None or last is None else (last - first) / 1000
    damage = records.stopped.replace(str(path.parent), "")[:200] if records.stopped else None
    return RecordingInfo(
        path.name, size, count, duration, header.started_ms, header.topic_root,
        str(name) if name is not None else None, seed if isinstance(seed, int) else None, damage,
    )  # fmt: skip


class RecordingFolder:
    """The recordings of a folder, each scanned once per version of the file (size and modification time): a small
    file at once, a large one in the background (listed without its counts until then)."""

    def __init__(self, folder: Path, scan_now_bytes: int = SCAN_NOW_BYTES) -> None:
        self.folder = Path(folder)
        self.scan_now_bytes = scan_now_bytes
        self._scanned: dict[str, tuple[tuple[int, int], RecordingInfo]] = {}
        self._pending: set[str] = set()
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        """The file of recording ``name``, resolved inside the folder; ``UnknownRecording`` for anything else."""
        check_name(name)
        base = self.folder.resolve()
        path = (base / name).resolve()
        if path.parent != base or not path.name.endswith(SUFFIXES) or not path.is_file():
            raise UnknownRecording(f"no recording {name!r}")
        return path

    def list(self) -> list[RecordingInfo]:
        if not self.folder.is_dir():
            return []
        found = []
        for entry in sorted(self.folder.iterdir()):
            try:
                found.append(self.info(self.path(entry.name)))
            except (UnknownRecording, OSError):
                continue
        return found

    def info(self, path: Path) -> RecordingInfo:
        """What the recording holds; counts None while a large file is still being scanned."""
        stat = path.stat()
        version = (stat.st_size, stat.st_mtime_ns)
        with self._lock:
            kept = self._scanned.get(path.name)
            if kept is not None and kept[0] == version:
                return kept[1]
            if stat.st_size > self.scan_now_bytes:
                if path.name not in self._pending:
                    self._pending.add(path.name)
                    threading.Thread(target=self._scan, args=(path, version), daemon=True).start()
                return RecordingInfo(path.name, stat.st_size, None, None, None)
        return self._scan(path, version)

    def _scan(self, path: Path, version: tuple[int, int]) -> RecordingInfo:
        try:
            info = scan(path)
        except OSError as exc:
            info = RecordingInfo(path.name, version[0], None, None, None, damage=exc.strerror or type(exc).__name__)
        with self._lock:
            self._scanned[path.name] = (version, info)
            self._pending.discard(path.name)
        return info


class ThreadedReplayControl:
    """Replays a recording of ``folder`` onto the broker ``connect`` opens, in a thread, at most one at a time.

    ``root``: (recorded root, new root) to publish under another topic root. ``stop`` ends the replay within half a
    second (``simulator.replay`` sleeps in slices) and waits for its thread a few seconds at most.
    """

    def __init__(
        self,
        folder: Path,
        connect: Callable[[], BrokerClient],
        *,
        root: tuple[str, str] | None = None,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.folder = RecordingFolder(folder)
        self.connect = connect
        self.root = root
        self.clock = clock
        self._lock = threading.Lock()
        self._current = IDLE
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def recordings(self) -> list[RecordingInfo]:
        return self.folder.list()

    def start(self, name: str, speed: float) -> ReplayStatus:
        check_speed(speed)
        path = self.folder.path(name)
        with self._lock:
            if self._current.running:
                raise ReplayBusy(f"a replay of {self._current.recording} is running; stop it first")
            info = self.folder.info(path)
            self._stop = threading.Event()
            self._current = ReplayStatus(
                "running", path.name, speed, 0, 0.0, 0.0, info.messages, info.duration_s, started_ms=self.clock()
            )
            self._thread = threading.Thread(
                target=self._run, args=(path, speed, self._stop), name="smartzone-replay", daemon=True
            )
            self._thread.start()
            return self._current

    def stop(self) -> ReplayStatus:
        with self._lock:
            thread = self._thread
            self._stop.set()
        if thread is not None:
            thread.join(STOP_WAIT_S)
        return self.status()

    def status(self) -> ReplayStatus:
        with self._lock:
            return self._current

    def _progress(self, at: ReplayProgress) -> None:
        with self._lock:
            if self._current.running:
                self._current = replace(
                    self._current, published=at.published, recorded_s=at.recorded_s, fraction=at.fraction
                )

    def _run(self, path: Path, speed: float, stop: threading.Event) -> None:
        state, error = "finished", None
        try:
            client = self.connect()
            try:
                options = ReplayOptions(speed, root=self.root)
                summary = replay(
                    lambda: read_recording(path)[1], client, options,
                    stop=stop.is_set, progress=self._progress, progress_every_s=0.25, flush_timeout_s=FLUSH_S,
                )  # fmt: skip
            finally:
                client.close()
            state = "stopped" if summary.stopped_early or stop.is_set() else "finished"
            error = summary.damage.replace(str(path.parent), "")[:200] if summary.damage else None
        except Exception as exc:  # noqa: BLE001 - a failed replay is shown on the page, not lost in a thread
            state, error = "failed", (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        with self._lock:
            fraction = 1.0 if state == "finished" else self._current.fraction
            self._current = replace(self._current, state=state, error=error, ended_ms=self.clock(), fraction=fraction)

    def close(self) -> None:
        """Stop the replay, if any (at shutdown)."""
        self.stop()


def broker_connector(url: str, protocol: str = "auto", ca_file: str | None = None) -> Callable[[], BrokerClient]:
    """Opens a fresh MQTT connection for each replay, with a client id of its own."""

    def connect() -> BrokerClient:
        import secrets

        from sensors.mqtt import MqttClient

        return MqttClient(url, f"smartzone-replay-{secrets.token_hex(4)}", protocol=protocol, ca_file=ca_file).connect()

    return connect
