"""``smartzone analyse`` on a SQLite database (and on a recording, once offline replay is there)."""

from __future__ import annotations

import gzip
import importlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from sensors.codec import channel_of, encode
from sensors.messages import Message
from sensors.topics import topic_for
from sensors.wire import QOS, RETAIN
from settlement.db import Database
from settlement.errors import SettlementError
from smartzone.analyse import zone_map
from smartzone.cli import main
from tests.research_example import build

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def example_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("example") / "example.db"
    build(f"sqlite:///{path}").close()
    yield path


def test_the_summary_gives_trips_by_status_revenue_per_owner_and_the_busiest_hour(
    example_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["analyse", f"sqlite:///{example_file}"]) == 0
    out = capsys.readouterr().out
    assert "trips: 8\n  committed       5\n  open            1\n  priced          1\n  rejected        1\n" in out
    assert "0xF6416c57A96536ADc50a69E34e7DF84dc3127BCe      1     €14.18     €1.58     €14.18         0" in out
    assert "busiest hour: 2026-11-30 09:00 UTC, 4 trips started" in out
    assert "epochs: 1 (1 on chain), 5 trips, €23.30" in out


def test_a_sqlite_file_or_the_configured_database_is_a_source_too(
    example_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["analyse", str(example_file)]) == 0
    by_path = capsys.readouterr().out
    monkeypatch.setenv("SMARTZONE_DATABASE_URL", f"sqlite:///{example_file}")
    assert main(["analyse"]) == 0
    assert capsys.readouterr().out == by_path and "trips: 8" in by_path


def test_out_gets_partitioned_datasets_and_plots(
    example_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["analyse", str(example_file), "--out", str(tmp_path), "--plots", "--readings"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'trips'}: 8 rows in 3 files" in out
    assert ds.dataset(tmp_path / "trips", partitioning="hive").count_rows() == 8
    assert ds.dataset(tmp_path / "utilisation", partitioning="hive").count_rows() == 20
    assert ds.dataset(tmp_path / "readings", partitioning="hive").count_rows() == 3
    assert (tmp_path / "revenue" / "part-0.parquet").is_file()
    assert (tmp_path / "epochs" / "day=2026-11-30" / "hour=09" / "part-0.parquet").is_file()
    for name in ("trips_per_hour", "utilisation", "origins"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes().startswith(PNG)


def test_csv_is_written_when_asked(example_file: Path, tmp_path: Path) -> None:
    assert main(["analyse", str(example_file), "--out", str(tmp_path), "--format", "csv"]) == 0
    header = (tmp_path / "trips" / "day=2026-11-30" / "hour=07" / "part-0.csv").read_text().splitlines()[0]
    assert header.startswith("trip_id,vehicle_id,unlock_seq,kind,operator,owner,rider,status,reason,start_time")


def test_an_output_already_used_plots_without_out_and_an_unknown_source_are_refused(
    example_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "trips").mkdir()
    (tmp_path / "trips" / "mine.txt").write_text("keep me")
    assert main(["analyse", str(example_file), "--out", str(tmp_path)]) == 2
    assert "is not empty: choose another --out" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trips"]
    assert main(["analyse", str(example_file), "--plots"]) == 2
    assert "--plots needs --out" in capsys.readouterr().err
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert main(["analyse", str(text)]) == 2
    assert "neither a database URL, a SQLite file nor a recording" in capsys.readouterr().err
    assert main(["analyse", str(tmp_path / "missing.db")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["analyse", str(example_file), "--freq", "ME"]) == 2
    assert "fixed period" in capsys.readouterr().err


def test_a_database_behind_the_schema_is_refused_with_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Database.open(f"sqlite:///{tmp_path / 'empty.db'}").close()
    assert main(["analyse", f"sqlite:///{tmp_path / 'empty.db'}"]) == 2
    assert "smartzone db upgrade" in capsys.readouterr().err


def _offline_replay_available() -> bool:
    try:
        return hasattr(importlib.import_module("smartzone.replay"), "replay_offline")
    except ImportError:
        return False


@pytest.mark.skipif(not _offline_replay_available(), reason="smartzone.replay has no replay_offline yet (issue 10)")
def test_a_recording_is_replayed_offline_then_analysed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recording, trips = _record_a_simulated_run(tmp_path / "run.jsonl.gz", seed=11, vehicles=6, minutes=40)
    assert trips > 0
    assert main(["analyse", str(recording), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr()
    assert f"trips: {trips}\n" in out.out and "replaying" in out.err
    assert ds.dataset(tmp_path / "out" / "trips", partitioning="hive").count_rows() == trips


def _record_a_simulated_run(path: Path, *, seed: int, vehicles: int, minutes: int) -> tuple[Path, int]:
    """A recording (the agreed format: gzip JSON lines, header first) of the seeded fleet of the settings, stepped
    once a second; returns it and how many trips the fleet completed."""
    from smartzone.parts import make_fleet
    from smartzone.settings import Settings

    settings = Settings.model_validate({"seed": seed, "vehicles": vehicles})
    fleet = make_fleet(settings, 31337, first_seq=1)
    start = 1_796_022_000_000
    header = {"topic_root": "smartzone", "broker": "mqtt://localhost:1883", "started_ms": start,
              "scenario": {"seed": seed, "vehicles": vehicles, "chain_id": 31337}}  # fmt: skip
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.write(json.dumps({"format": "smartzone-recording/1", "header": header}) + "\n")
        batches: list[tuple[int, Sequence[Message]]] = [(start, fleet.birth_messages(start))]
        batches += [(start + s * 1000, fleet.step(start + s * 1000)) for s in range(1, minutes * 60)]
        end = start + minutes * 60_000
        batches += [(end, [*fleet.finish(end), *fleet.offline_messages(end)])]
        for at, messages in batches:
            for m in messages:
                channel = channel_of(m)
                line = {"t": at, "topic": topic_for(m.operator, m.vehicle_id, channel), "qos": QOS[channel],
                        "retain": RETAIN[channel], "payload": encode(m).decode("utf-8")}  # fmt: skip
                file.write(json.dumps(line) + "\n")
    return path, len(fleet.completed_trips)


def test_the_map_draws_the_streets_given_and_the_zones_boundary(tmp_path: Path) -> None:
    line = {"type": "LineString", "coordinates": [[4.39, 51.21], [4.4, 51.22]]}
    parts = [[[4.391, 51.211], [4.392, 51.212]], [[4.393, 51.213], [4.394, 51.214], [4.395, 51.215]]]
    shapes = [line, {"type": "MultiLineString", "coordinates": parts}, {"type": "Point", "coordinates": [4.39, 51.21]}]
    streets = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": g} for g in shapes]}
    (tmp_path / "streets.geojson").write_text(json.dumps(streets))
    zone = zone_map(tmp_path / "streets.geojson")
    assert [len(line) for line in zone.streets] == [2, 2, 3] and zone.streets[0][0] == (4.39, 51.21)
    assert len(zone.boundary) > 10 and zone.bbox() is not None
    assert "Stad Antwerpen" in zone.attribution and zone.notes == []
    (tmp_path / "broken.geojson").write_text("{")
    with pytest.raises(SettlementError, match="cannot draw the streets"):
        zone_map(tmp_path / "broken.geojson")
