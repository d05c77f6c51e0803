"""The README's researcher's quick start still says what the commands do: the tiny scenario's messages and trips,
and the what-if figures of its tariff file (run without a broker, on a fake clock, into SQLite)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from settlement.fares import format_eur
from simulator.recording import Recorded, RecordingHeader, RecordingWriter
from simulator.run import run_simulation
from simulator.scenario import load_scenario, shipped_scenario
from smartzone.offline import replay_offline
from smartzone.parts import fleet_registrations, make_fleet
from smartzone.replay import load_plans
from smartzone.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def quick_start() -> str:
    """The README's quick-start section."""
    text = README.read_text("utf-8")
    return text[text.index("## Researcher's quick start") : text.index("## The device registry")]


def prose(text: str) -> str:
    """``text`` with every run of white space one space (lines wrap anywhere)."""
    return " ".join(text.split())


@dataclass
class Recording:
    """A publisher writing to a recording, each message arriving at a fake clock's time."""

    writer: RecordingWriter
    start_ms: int
    now: list[float] = field(default_factory=lambda: [0.0])

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.writer.write(Recorded(self.start_ms + round(self.now[0] * 1000), topic, payload, qos, retain))

    def flush(self, timeout: float = 30.0) -> None:
        return None


def test_the_quick_starts_figures_are_what_the_tiny_scenario_and_its_tariff_file_give(tmp_path: Path) -> None:
    section = quick_start()
    assert "smartzone simulate --scenario tiny --speed 60 --no-register --registrations fleet.jsonl" in section
    tariffs = tmp_path / "cheaper-ebikes.json"
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block is not None
    tariffs.write_text(block.group(1), "utf-8")
    scenario = load_scenario(shipped_scenario("tiny")).overridden(speed=60)
    settings = Settings(data_dir=tmp_path, chain_id=31337)
    fleet = make_fleet(settings, 31337, scenario=scenario)
    registrations = fleet_registrations(fleet)
    assert scenario.start_ms is not None
    path = tmp_path / "run.jsonl.gz"
    header = RecordingHeader("lab", "mqtt://test", scenario.start_ms, {"name": "tiny", "seed": 11})
    with RecordingWriter(path, header) as writer:
        recording = Recording(writer, scenario.start_ms)

        def advance(seconds: float) -> None:
            recording.now[0] += seconds

        summary = run_simulation(
            fleet, recording, start_ms=scenario.start_ms, duration_s=scenario.minutes * 60, speed=scenario.speed,
            root="lab", sleep=advance, monotonic=lambda: recording.now[0],
        )  # fmt: skip
    published = {channel.value: n for channel, n in summary.published.items()}
    said = (
        f"published {sum(published.values())} messages ({published['telemetry']} telemetry, {published['event']} "
        f"events, {published['state']} states, {published['voucher']} vouchers) and completed "
        f"{summary.completed_trips} trips"
    )
    assert said in prose(section)
    runs = [
        replay_offline(path, f"sqlite:///{tmp_path / f'{n}.db'}", settings=settings, plans=plans,
                       registrations=registrations, require_consent=False)
        for n, plans in enumerate([None, load_plans(tariffs)])
    ]  # fmt: skip
    assert [r.trips_priced for r in runs] == [summary.completed_trips] * 2
    default, cheaper = (format_eur(r.revenue_micro) for r in runs)
    assert f"{summary.completed_trips} trips at {default} under the default plans and {cheaper} with cheaper" in prose(
        section
    )
    assert default != cheaper
