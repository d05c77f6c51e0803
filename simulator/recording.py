"""The recording file: what came over MQTT, one message per line of gzip-compressed JSON Lines (pure, no broker).

Line 1 is ``{"format": "smartzone-recording/1", "header": {...}}`` (``RecordingHeader``: the topic root, the broker
without credentials, when recording started, and the scenario as the recorder was told). Every later line is one
message as it arrived::

    {"t": <arrival ms>, "topic": "...", "qos": 0|1, "retain": false, "payload": "<UTF-8 text>"}

with ``"payload_b64"`` (standard base64) in place of ``"payload"`` when the bytes are not UTF-8. The writer keeps
nothing but zlib's window: it flushes the compressed stream (a sync flush, which any gzip reader decodes up to
there) every ``flush_every`` messages and every ``flush_s`` seconds, so a recorder that is killed leaves every
flushed line readable. The reader streams: it holds one chunk of the file and one line at a time, stops at the
first damaged line (a gzip stream cut short, corrupt bytes, a line that is not a message) with a warning naming
the line, and skips an incomplete last line (a writer stopped in the middle of it).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import logging
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from sensors.errors import SmartZoneError

log = logging.getLogger(__name__)

RECORDING_FORMAT = "smartzone-recording/1"
FLUSH_EVERY = 1000
"""Messages after which the writer flushes the compressed stream to the file."""
FLUSH_S = 1.0
"""Seconds after which the writer flushes at its next message (the recorder also flushes when idle)."""
CHUNK = 1 << 16
SLICE = 1 << 10
MAX_LINE = 64 << 20
"""The longest line the reader accepts (a message is at most a few kB; a line without end is damage)."""


class InvalidRecording(SmartZoneError):
    """A file that is not a recording (or not one of this format): the message names the file and the cause."""


@dataclass(frozen=True)
class RecordingHeader:
    """Where and when a recording was made: the topic root subscribed, the broker URL (credentials masked), the
    start (ms since the Unix epoch) and the scenario the recorder was told (name, seed, start, ... or None)."""

    topic_root: str
    broker: str
    started_ms: int
    scenario: dict[str, Any] | None = None


@dataclass(frozen=True)
class Recorded:
    """One message as it arrived: arrival time (ms since the Unix epoch), topic, payload, QoS and retain flag."""

    at_ms: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


def _line(item: Recorded) -> bytes:
    obj: dict[str, Any] = {"t": item.at_ms, "topic": item.topic, "qos": item.qos, "retain": item.retain}
    try:
        obj["payload"] = item.payload.decode("utf-8")
    except UnicodeDecodeError:
        obj["payload_b64"] = base64.b64encode(item.payload).decode("ascii")
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


class RecordingWriter:
    """Writes a recording to ``path`` (a new file, or one replaced), header first; a context manager.

    ``OSError`` at once when the file cannot be created. ``write`` never holds more than zlib's buffers:
    the stream is flushed every ``flush_every`` messages and, at the next message, once ``flush_s`` seconds
    have passed; ``flush`` flushes now (call it when idle); ``close`` ends the gzip stream.
    """

    def __init__(
        self,
        path: Path | str,
        header: RecordingHeader,
        *,
        flush_every: int = FLUSH_EVERY,
        flush_s: float = FLUSH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self._file: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._gzip = gzip.GzipFile(fileobj=self._file, mode="wb", compresslevel=6, mtime=0)
        self._flush_every, self._flush_s, self._clock = flush_every, flush_s, clock
        self.written = 0
        self._unflushed = 0
        self._last_flush = clock()
        first = {"format": RECORDING_FORMAT, "header": asdict(header)}
        self._gzip.write(json.dumps(first, separators=(",", ":")).encode("utf-8") + b"\n")
        self.flush()

    def write(self, item: Recorded) -> None:
        """Append one message (flushing when due)."""
        self._gzip.write(_line(item))
        self.written += 1
        self._unflushed += 1
        if self._unflushed >= self._flush_every or self._clock() - self._last_flush >= self._flush_s:
            self.flush()

    def flush(self) -> None:
        """Make every message written so far readable from the file."""
        self._gzip.flush()  # a zlib sync flush: decodable up to here without the stream's end
        self._file.flush()
        self._unflushed, self._last_flush = 0, self._clock()

    def close(self) -> None:
        """End the gzip stream and close the file (idempotent)."""
        if self._file.closed:
            return
        try:
            self._gzip.close()
        finally:
            self._file.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None) -> None:
        self.close()


class _Lines:
    """The decompressed lines of a gzip file, one at a time; ``damage`` says where and why reading stopped early."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        self._file: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._inflate = zlib.decompressobj(wbits=31)
        self._buffer = b""
        self._pos = 0  # where the next line starts in the buffer
        self._ended = False
        self.number = 0  # the number of the last line returned
        self.damage: str | None = None

    @property
    def consumed(self) -> int:
        """Compressed bytes read so far (for progress)."""
        return self._file.tell() if not self._file.closed else self.size

    def next(self) -> bytes | None:
        """The next complete line without its newline, or None at the end (or at damage: see ``damage``)."""
        while True:
            end = self._buffer.find(b"\n", self._pos)
            if end >= 0:
                line, self._pos = self._buffer[self._pos : end], end + 1
                self.number += 1
                return line
            rest = len(self._buffer) - self._pos
            if rest > MAX_LINE:
                self._stop(f"line {self.number + 1} is longer than {MAX_LINE} bytes")
                return None
            if self._ended:
                if rest:
                    self._stop(f"line {self.number + 1} is incomplete (the writer stopped while writing it)")
                return None
            self._buffer, self._pos = self._buffer[self._pos :], 0
            self._fill()

    def _fill(self) -> None:
        chunk = self._file.read(CHUNK)
        try:
            data = chunk
            if self._inflate.eof:  # the gzip member ended: what follows is another member
                data = self._inflate.unused_data + chunk
                if data:
                    self._inflate = zlib.decompressobj(wbits=31)
            if data:
                for start in range(0, len(data), SLICE):  # in slices: damage loses one slice's lines, not more
                    self._buffer += self._inflate.decompress(data[start : start + SLICE])
                return
        except zlib.error as exc:
            self._ended = True
            self._buffer = self._buffer[: self._buffer.rfind(b"\n") + 1]  # the whole lines before the damage
            self.damage = f"corrupt compressed data before byte {self._file.tell()}: {exc}"
            return
        self._ended = True
        if not self._inflate.eof:
            self.damage = f"the file ends without the end of its gzip stream (cut short after line {self.number})"

    def _stop(self, why: str) -> None:
        self.damage = why if self.damage is None else f"{self.damage}; {why}"
        self._buffer, self._pos, self._ended = b"", 0, True

    def close(self) -> None:
        self._file.close()


class Records(Iterator[Recorded]):
    """The messages of a recording in file order, read as they are iterated.

    At damage it stops and logs a warning; ``stopped`` then says where and why (None: the whole file was read).
    ``fraction`` is the share of the compressed file read so far.
    """

    def __init__(self, lines: _Lines) -> None:
        self._lines = lines
        self.stopped: str | None = None
        self.count = 0

    @property
    def fraction(self) -> float:
        return self._lines.consumed / self._lines.size if self._lines.size else 1.0

    def __iter__(self) -> Records:
        return self

    def __next__(self) -> Recorded:
        lines = self._lines
        raw = lines.next()
        if raw is not None:
            try:
                item = _parse(raw)
            except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
                lines.damage = f"line {lines.number} is not a recorded message ({exc})"
            else:
                self.count += 1
                return item
        self.close()
        if lines.damage is not None and self.stopped is None:
            self.stopped = f"{lines.path}: {lines.damage}; read {self.count} messages up to there"
            log.warning("%s", self.stopped)
        raise StopIteration

    def close(self) -> None:
        self._lines.close()


def _parse(raw: bytes) -> Recorded:
    obj = json.loads(raw)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if "payload" in obj:
        payload = obj["payload"].encode("utf-8")
    else:
        payload = base64.b64decode(obj["payload_b64"], validate=True)
    at_ms, topic, qos, retain = obj["t"], obj["topic"], obj["qos"], obj["retain"]
    if type(at_ms) is not int or not isinstance(topic, str) or qos not in (0, 1, 2) or type(retain) is not bool:
        raise ValueError("a field has the wrong type")
    return Recorded(at_ms, topic, payload, qos, retain)


def read_recording(path: Path | str) -> tuple[RecordingHeader, Records]:
    """The header of the recording at ``path`` and an iterator of its messages (streamed: bounded memory).

    ``InvalidRecording`` when the file cannot be read or its first line is not this format's header; ``OSError``
    is translated too. Damage after the header ends the iteration early with a warning (``Records.stopped``).
    """
    path = Path(path)
    try:
        lines = _Lines(path)
    except OSError as exc:
        raise InvalidRecording(f"cannot read the recording {path}: {exc.strerror or exc}") from None
    try:
        first = lines.next()
        if first is None:
            raise InvalidRecording(f"{path} is not a recording: {lines.damage or 'it is empty'}")
        header = _header(first, path)
    except BaseException:
        lines.close()
        raise
    return header, Records(lines)


def _header(raw: bytes, path: Path) -> RecordingHeader:
    try:
        obj = json.loads(raw)
        if not isinstance(obj, dict) or "format" not in obj:
            raise ValueError("its first line has no format")
        if obj["format"] != RECORDING_FORMAT:
            raise InvalidRecording(f"{path} is a recording of format {obj['format']!r}, not {RECORDING_FORMAT!r}")
        h = obj["header"]
        scenario = h.get("scenario")
        if not isinstance(scenario, dict | None):
            raise ValueError("its scenario is not an object")
        return RecordingHeader(str(h["topic_root"]), str(h["broker"]), int(h["started_ms"]), scenario)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidRecording(f"{path} is not a recording: {exc}") from None
