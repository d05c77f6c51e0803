"""The recording file: round trip, binary payloads, the header, and what a killed or damaged file still gives."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest

from simulator.recording import (
    RECORDING_FORMAT,
    InvalidRecording,
    Recorded,
    RecordingHeader,
    RecordingWriter,
    read_recording,
)

HEADER = RecordingHeader("sz-test", "mqtt://127.0.0.1:1883", 1_700_000_000_000, {"name": "tiny", "seed": 7})


def messages(n: int) -> list[Recorded]:
    return [
        Recorded(1_700_000_000_000 + 250 * i, f"sz-test/v1/op/bike-{i % 3:04d}/telemetry", f'{{"seq":{i}}}'.encode(),
                 i % 2, i % 5 == 0)
        for i in range(n)
    ]  # fmt: skip


def test_a_recording_reads_back_its_header_and_every_message_in_order(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl.gz"
    with RecordingWriter(path, HEADER) as writer:
        for item in messages(50):
            writer.write(item)
    header, records = read_recording(path)
    assert header == HEADER
    assert list(records) == messages(50)
    assert records.stopped is None


def test_the_file_is_gzip_json_lines_with_the_format_on_the_first_line(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl.gz"
    with RecordingWriter(path, HEADER) as writer:
        writer.write(Recorded(5, "a/v1/b/c/event", b'{"x":"\xc3\xa9"}', 1, False))
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").splitlines()
    assert json.loads(lines[0]) == {
        "format": RECORDING_FORMAT,
        "header": {"topic_root": "sz-test", "broker": "mqtt://127.0.0.1:1883", "started_ms": 1_700_000_000_000,
                   "scenario": {"name": "tiny", "seed": 7}},
    }  # fmt: skip
    assert json.loads(lines[1]) == {
        "t": 5,
        "topic": "a/v1/b/c/event",
        "qos": 1,
        "retain": False,
        "payload": '{"x":"é"}',
    }


def test_payloads_that_are_not_utf8_travel_as_base64_and_come_back_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "bin.jsonl.gz"
    odd = [b"\xff\xfe\x00binary", b"", b"\x00", bytes(range(256)), "plain ✓".encode()]
    with RecordingWriter(path, HEADER) as writer:
        for i, payload in enumerate(odd):
            writer.write(Recorded(i, "t/v1/o/v/telemetry", payload, 0, False))
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    assert '"payload_b64"' in text and '"payload":"plain ✓"' in text
    assert [r.payload for r in read_recording(path)[1]] == odd


def killed_copy(path: Path, writer: RecordingWriter, target: Path) -> None:
    """What a recorder killed right now leaves: the bytes on disk, without the end of the gzip stream."""
    target.write_bytes(path.read_bytes())


def test_a_killed_writer_leaves_every_flushed_message_readable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, copy = tmp_path / "live.jsonl.gz", tmp_path / "killed.jsonl.gz"
    writer = RecordingWriter(path, HEADER, flush_every=10_000, flush_s=3600)
    for item in messages(30):
        writer.write(item)
    writer.flush()
    writer.write(messages(31)[-1])  # written but not flushed: lost with the process
    killed_copy(path, writer, copy)
    writer.close()
    with caplog.at_level(logging.WARNING):
        header, records = read_recording(copy)
        got = list(records)
    assert header == HEADER
    assert got == messages(30)
    assert records.stopped is not None and "gzip stream" in records.stopped
    assert "read 30 messages" in caplog.text


def test_the_writer_flushes_every_n_messages_and_after_its_interval(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl.gz"
    now = [0.0]
    writer = RecordingWriter(path, HEADER, flush_every=5, flush_s=10, clock=lambda: now[0])
    for item in messages(7):
        writer.write(item)
    assert len(list(read_recording(path)[1])) == 5  # flushed at the fifth
    now[0] = 11.0
    writer.write(messages(8)[-1])  # the interval is over: flushed with it
    assert len(list(read_recording(path)[1])) == 8
    writer.close()


def test_a_truncated_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.gz"
    body = json.dumps({"format": RECORDING_FORMAT, "header": {"topic_root": "r", "broker": "b", "started_ms": 1}})
    line = json.dumps({"t": 1, "topic": "r/v1/o/v/event", "qos": 1, "retain": False, "payload": "{}"})
    path.write_bytes(gzip.compress(f"{body}\n{line}\n{line[:20]}".encode()))
    _, records = read_recording(path)
    assert [r.at_ms for r in records] == [1]
    assert records.stopped is not None and "line 3 is incomplete" in records.stopped


def test_a_corrupt_line_stops_the_reading_there_and_says_where(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.gz"
    body = json.dumps({"format": RECORDING_FORMAT, "header": {"topic_root": "r", "broker": "b", "started_ms": 1}})
    good = json.dumps({"t": 1, "topic": "r/v1/o/v/event", "qos": 1, "retain": False, "payload": "{}"})
    path.write_bytes(gzip.compress(f"{body}\n{good}\n{{not json\n{good}\n".encode()))
    _, records = read_recording(path)
    assert len(list(records)) == 1
    assert records.stopped is not None and "line 3" in records.stopped


def test_corrupt_compressed_bytes_stop_the_reading_after_the_last_good_line(tmp_path: Path) -> None:
    path = tmp_path / "flip.jsonl.gz"
    with RecordingWriter(path, HEADER, flush_every=1) as writer:
        for item in messages(200):
            writer.write(item)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = b"\x00\xff" * 4
    path.write_bytes(bytes(data))
    _, records = read_recording(path)
    got = list(records)
    assert 0 < len(got) < 200
    assert got == messages(200)[: len(got)]
    assert records.stopped is not None


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "not a recording"),
        (b"plain text, not gzip\n", "not a recording"),
        (gzip.compress(b'{"format": "other/9", "header": {}}\n'), "format 'other/9'"),
        (gzip.compress(b'{"hello": 1}\n'), "not a recording"),
    ],
)
def test_a_file_that_is_not_a_recording_is_refused_naming_it(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(content)
    with pytest.raises(InvalidRecording, match=why) as caught:
        read_recording(path)
    assert str(path) in str(caught.value)


def test_a_missing_file_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidRecording, match="cannot read the recording"):
        read_recording(tmp_path / "nope.gz")


def test_a_writer_to_an_unwritable_place_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        RecordingWriter(tmp_path / "no" / "such" / "dir.gz", HEADER)


def test_reading_streams_a_large_recording_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl.gz"
    with RecordingWriter(path, HEADER) as writer:
        for i in range(30_000):
            writer.write(Recorded(i, "r/v1/o/v/telemetry", b'{"pad":"' + b"x" * 200 + b'"}', 0, False))
    _, records = read_recording(path)
    seen = 0
    for seen, item in enumerate(records, start=1):  # noqa: B007 - the count is the test
        assert item.at_ms == seen - 1
    assert seen == 30_000
    assert records.fraction == 1.0
