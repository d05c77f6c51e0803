"""Offline replay into SQLite: a seeded fleet's recording priced as the simulator completed it, what-if tariffs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sensors.messages import VehicleKind
from sensors.registration import to_json
from settlement.fares import DEFAULT_PLANS
from settlement.pricing import flat_plan, plan_to_gbfs
from simulator.recording import Recorded, RecordingHeader, RecordingWriter
from simulator.run import RunSummary, run_simulation
from smartzone.cli import main
from smartzone.offline import replay_offline
from smartzone.parts import fleet_registrations, make_fleet
from smartzone.replay import format_results, load_plans
from smartzone.settings import Settings

START_MS = 1_790_000_000_000
SCENARIO = {"name": "offline-test", "seed": 11, "vehicles": 6, "operator": "op"}


@dataclass
class RecordingPublisher:
    """A publisher that records what it is given, arriving at the simulated time (a fake clock paced at speed 1)."""

    writer: RecordingWriter
    now: list[float] = field(default_factory=lambda: [0.0])

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.writer.write(Recorded(START_MS + round(self.now[0] * 1000), topic, payload, qos, retain))

    def flush(self, timeout: float = 30.0) -> None:
        return None


def settings_for(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, seed=11, vehicles=6, operator="op", sim_minutes=30)


def record_fleet(tmp_path: Path, minutes: float = 40) -> tuple[Path, RunSummary]:
    fleet = make_fleet(settings_for(tmp_path), 31337, first_seq=1)
    path = tmp_path / "fleet.jsonl.gz"
    with RecordingWriter(path, RecordingHeader("sz", "mqtt://test", START_MS, dict(SCENARIO))) as writer:
        publisher = RecordingPublisher(writer)

        def sleep(seconds: float) -> None:
            publisher.now[0] += seconds

        summary = run_simulation(
            fleet, publisher, start_ms=START_MS, duration_s=minutes * 60, speed=1.0, root="sz",
            sleep=sleep, monotonic=lambda: publisher.now[0],
        )  # fmt: skip
    return path, summary


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunSummary]:
    return record_fleet(tmp_path_factory.mktemp("recorded"))


def test_offline_replay_prices_every_trip_the_simulator_completed(
    recorded: tuple[Path, RunSummary], tmp_path: Path
) -> None:
    path, summary = recorded
    result = replay_offline(path, f"sqlite:///{tmp_path / 'a.db'}", settings=settings_for(tmp_path))
    assert summary.completed_trips > 5
    assert set(result.trips) == set(summary.trip_ids)
    assert result.trips_priced == summary.completed_trips and result.trips_rejected == {}
    assert result.rejected == {}  # every message verified against the registry rebuilt from the header's seed
    assert result.consent and result.epochs >= 1
    assert result.revenue_micro == result.settled_micro == sum(result.revenue_by_owner.values()) > 0
    assert result.messages == summary.total_published


def test_the_registrations_file_gives_the_same_run_as_the_header_seed(
    recorded: tuple[Path, RunSummary], tmp_path: Path
) -> None:
    path, _ = recorded
    settings = settings_for(tmp_path)
    registrations = fleet_registrations(make_fleet(settings, 31337))
    from_seed = replay_offline(path, f"sqlite:///{tmp_path / 'a.db'}", settings=settings)
    from_file = replay_offline(path, f"sqlite:///{tmp_path / 'b.db'}", settings=settings, registrations=registrations)
    assert from_file.trips == from_seed.trips
    assert from_file.revenue_by_owner == from_seed.revenue_by_owner


def test_a_what_if_tariff_reprices_the_same_trips_at_their_metered_fare(
    recorded: tuple[Path, RunSummary], tmp_path: Path
) -> None:
    path, _ = recorded
    settings = settings_for(tmp_path)
    dearer = {kind: flat_plan(f"{plan.plan_id}-x2", 2 * plan.price_micro, 0, 0) for kind, plan in DEFAULT_PLANS.items()}
    base = replay_offline(path, f"sqlite:///{tmp_path / 'a.db'}", settings=settings, require_consent=False)
    what_if = replay_offline(path, f"sqlite:///{tmp_path / 'b.db'}", settings=settings, plans=dearer, label="x2")
    assert not what_if.consent
    assert set(what_if.trips) == set(base.trips)
    unlock_only = {kind.value: 2 * plan.price_micro for kind, plan in DEFAULT_PLANS.items()}
    assert what_if.revenue_micro == sum(
        unlock_only[kind] for kind in (trip_id.split("-")[0] for trip_id in what_if.trips)
    )
    assert what_if.trips_priced == base.trips_priced
    table = format_results([base, what_if])
    assert "metered" in table and "x2" in table and "consent not required" in table


def test_signatures_under_another_chain_id_are_rejected_and_the_table_says_why(
    recorded: tuple[Path, RunSummary], tmp_path: Path
) -> None:
    path, _ = recorded
    result = replay_offline(path, f"sqlite:///{tmp_path / 'a.db'}", settings=settings_for(tmp_path),
                            signing_chain_id=5)  # fmt: skip
    assert result.trips_priced == 0 and result.stored > 0  # the telemetry is not signed (a setting)
    assert result.rejected["bad_signature"] > 0
    assert "signed under another chain id than 5? (--chain-id)" in format_results([result])


def test_offline_replay_refuses_a_database_that_already_settled(
    recorded: tuple[Path, RunSummary], tmp_path: Path
) -> None:
    from sensors.errors import SmartZoneError

    path, _ = recorded
    url = f"sqlite:///{tmp_path / 'a.db'}"
    replay_offline(path, url, settings=settings_for(tmp_path))
    with pytest.raises(SmartZoneError, match="fresh database"):
        replay_offline(path, url, settings=settings_for(tmp_path))


def test_the_command_compares_two_tariffs_side_by_side(
    recorded: tuple[Path, RunSummary],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _ = recorded
    monkeypatch.setenv("SMARTZONE_DATA_DIR", str(tmp_path))
    bike = plan_to_gbfs(flat_plan("bike-2027", 1_000_000, 100_000, name="Bike 2027", about="Dearer."))
    tariffs = tmp_path / "bike-2027.json"
    tariffs.write_text(json.dumps({"bike": bike}, default=str))
    assert load_plans(tariffs)[VehicleKind.BIKE].price_micro == 1_000_000
    assert load_plans(tariffs)[VehicleKind.CAR] == DEFAULT_PLANS[VehicleKind.CAR]
    assert main(["replay", str(path), "--offline", "--compare", "--tariffs", str(tariffs)]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["default", "plans", "bike-2027.json"]
    assert "revenue (fares)" in out and "trips priced" in out and "epochs" in out


def test_the_command_reads_a_registrations_file_and_a_bad_tariffs_file_is_one_line(
    recorded: tuple[Path, RunSummary],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, summary = recorded
    monkeypatch.setenv("SMARTZONE_DATA_DIR", str(tmp_path))
    fleet_file = tmp_path / "fleet.jsonl"
    registrations = fleet_registrations(make_fleet(settings_for(tmp_path), 31337))
    fleet_file.write_text("\n".join(json.dumps(to_json(r)) for r in registrations) + "\n")
    db = f"sqlite:///{tmp_path / 'kept.db'}"
    assert main(["replay", str(path), "--offline", "--registrations", str(fleet_file), "--database", db]) == 0
    out = capsys.readouterr().out
    assert f"trips priced {summary.completed_trips}".split() == [
        w for line in out.splitlines() if line.startswith("trips priced") for w in line.split()
    ]
    bad = tmp_path / "bad.json"
    bad.write_text('{"tram": {}}')
    assert main(["replay", str(path), "--offline", "--tariffs", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "tram" in err and len(err.strip().splitlines()) == 1


def test_options_for_the_broker_are_refused_offline(
    recorded: tuple[Path, RunSummary], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = recorded
    assert main(["replay", str(path), "--offline", "--loop"]) == 2
    assert "--loop" in capsys.readouterr().err
