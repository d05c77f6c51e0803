"""The recorder's pieces without a broker: the header's scenario from the options, the handler and --count."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

import pytest

from sensors.errors import SmartZoneError
from sensors.ports import Received
from simulator.recording import RecordingHeader, RecordingWriter, read_recording
from smartzone.record import Recorder, run_record, scenario_of
from smartzone.settings import Settings


def options(name: str | None = None, seed: int | None = None, *meta: str) -> argparse.Namespace:
    return argparse.Namespace(scenario_name=name, scenario_seed=seed, meta=list(meta))


def test_the_scenario_in_the_header_is_what_the_options_say() -> None:
    assert scenario_of(options()) is None
    assert scenario_of(options("weekday", 7, "vehicles=20", "operator=acme", "start=2026-11-30T08:00")) == {
        "name": "weekday",
        "seed": 7,
        "vehicles": 20,
        "operator": "acme",
        "start": "2026-11-30T08:00",
    }


def test_a_meta_option_without_a_key_is_refused() -> None:
    with pytest.raises(SmartZoneError, match="KEY=VALUE"):
        scenario_of(options(None, None, "no-equals-sign"))


def test_the_handler_writes_and_acknowledges_each_message_and_stops_at_the_count(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.gz"
    acked: list[int] = []
    stop = threading.Event()
    with RecordingWriter(path, RecordingHeader("sz", "b", 0)) as writer:
        recorder = Recorder(writer, 3, stop)
        for i in range(5):
            recorder(Received(f"sz/v1/o/v{i}/event", b"x", 1.5 + i, lambda i=i: acked.append(i), qos=1, retain=i == 0))
    assert stop.is_set()
    got = list(read_recording(path)[1])
    assert [(r.at_ms, r.topic, r.qos, r.retain) for r in got] == [
        (1500, "sz/v1/o/v0/event", 1, True),
        (2500, "sz/v1/o/v1/event", 1, False),
        (3500, "sz/v1/o/v2/event", 1, False),
    ]
    assert acked == [0, 1, 2]  # past the count nothing is taken


def test_an_existing_recording_is_not_replaced_without_force(tmp_path: Path) -> None:
    out = tmp_path / "yesterday.jsonl.gz"
    out.write_bytes(b"precious")
    args = argparse.Namespace(out=out, force=False, count=None, seconds=None, root=None)
    with pytest.raises(SmartZoneError, match="exists already; choose another name, or pass --force"):
        run_record(Settings(data_dir=tmp_path), args)
    assert out.read_bytes() == b"precious"
