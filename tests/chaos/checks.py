"""The chaos suite's checks: what the database and the chain hold against the stream's expectation, and the
figures each experiment prints and appends to ``$SMARTZONE_CHAOS_REPORT``."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from settlement.schema import DeploymentRow, EpochRow, EventRow, TelemetryRow, TripRow
from tests.chaos.stream import Stream

SETTLED = ("committed", "final")


@dataclass
class Outcome:
    """What the database and the chain hold after an experiment, against the stream's expectation."""

    events_stored: int = 0
    events_lost: int = 0
    events_duplicated: int = 0
    events_unexpected: int = 0
    telemetry_stored: int = 0
    trips_stored: int = 0
    trips_settled: int = 0
    trips_lost: int = 0
    trips_unsettled: int = 0
    trips_unexpected: int = 0
    trips_in_epochs: int = 0  # the epochs' trip counts added up: more than trips_settled is a double settlement
    epochs: int = 0
    epochs_unsettled: int = 0
    db_total_micro: int = 0
    epochs_total_micro: int = 0
    epochs_miscounted: int = 0  # epochs whose trip count differs from the trips that name them
    chain_epochs: int | None = None
    chain_epochs_differing: int = 0  # epochs whose trips root differs on chain
    chain_total_micro: int | None = None
    lost_examples: list[str] = field(default_factory=list)
    lost_positions: list[int] = field(default_factory=list)  # where the lost events are in the stream (0-based)

    def complete(self) -> bool:
        """Every event stored and every trip settled: the run may be stopped."""
        return self.events_lost == 0 and self.trips_lost == 0 and self.trips_unsettled == 0

    def problems(self) -> list[str]:
        """Each broken guarantee, in words; empty when the run kept every one."""
        found = []
        if self.events_lost:
            found.append(f"{self.events_lost} events lost (e.g. {', '.join(self.lost_examples[:5])})")
        if self.events_duplicated:
            found.append(f"{self.events_duplicated} events stored more than once")
        if self.events_unexpected:
            found.append(f"{self.events_unexpected} events stored that the fleet never sent")
        if self.trips_lost or self.trips_unsettled:
            found.append(f"{self.trips_lost} trips missing, {self.trips_unsettled} stored but not settled")
        if self.trips_unexpected:
            found.append(f"{self.trips_unexpected} trips stored that the fleet never made")
        if self.trips_in_epochs != self.trips_settled:
            found.append(f"epochs hold {self.trips_in_epochs} trips, {self.trips_settled} are settled: one twice")
        if self.epochs_unsettled:
            found.append(f"{self.epochs_unsettled} epochs not committed")
        if self.epochs_total_micro != self.db_total_micro:
            found.append(f"epochs total {self.epochs_total_micro} != trips' fares {self.db_total_micro}")
        if self.epochs_miscounted:
            found.append(f"{self.epochs_miscounted} epochs count other trips than those in them")
        if self.chain_epochs_differing:
            found.append(f"{self.chain_epochs_differing} epochs differ between the chain and the database")
        if self.chain_epochs is not None and self.chain_epochs != self.epochs:
            found.append(f"chain has {self.chain_epochs} epochs, the database {self.epochs}")
        if self.chain_total_micro is not None and self.chain_total_micro != self.db_total_micro:
            found.append(f"chain total {self.chain_total_micro} != database total {self.db_total_micro}")
        return found


def observe(database_url: str, stream: Stream, chain_url: str | None = None) -> Outcome:
    """Read the database (and, with ``chain_url``, the contract it deployed) and compare with ``stream``."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            events = Counter((v, int(s)) for v, s in conn.execute(sa.select(EventRow.vehicle_id, EventRow.seq)).all())
            telemetry = conn.execute(sa.select(sa.func.count()).select_from(TelemetryRow)).scalar_one()
            trips = conn.execute(sa.select(TripRow.trip_id, TripRow.status, TripRow.fare_micro, TripRow.epoch_id)).all()
            epochs = conn.execute(
                sa.select(
                    EpochRow.epoch_id, EpochRow.status, EpochRow.trip_count, EpochRow.total_micro, EpochRow.trips_root
                )
            ).all()
            deployment = conn.execute(sa.select(DeploymentRow.address)).scalar()
    finally:
        engine.dispose()
    lost = sorted(stream.events - events.keys())
    settled = {t.trip_id for t in trips if t.status in SETTLED}
    in_epoch = Counter(t.epoch_id for t in trips if t.epoch_id is not None)
    stored = {t for t, *_ in trips}
    committed_epochs = [e for e in epochs if e.status in SETTLED]
    out = Outcome(
        events_stored=len(events),
        events_lost=len(lost),
        events_duplicated=sum(n - 1 for n in events.values()),
        events_unexpected=len(events.keys() - stream.events),
        telemetry_stored=int(telemetry),
        trips_stored=len(trips),
        trips_settled=len(settled & stream.trips),
        trips_lost=len(stream.trips - stored),
        trips_unsettled=len((stream.trips & stored) - settled),
        trips_unexpected=len(stored - stream.trips),
        trips_in_epochs=sum(e.trip_count for e in committed_epochs),
        epochs=len(epochs),
        epochs_unsettled=len(epochs) - len(committed_epochs),
        epochs_miscounted=sum(1 for e in epochs if e.trip_count != in_epoch[e.epoch_id]),
        db_total_micro=sum(t.fare_micro or 0 for t in trips if t.status in SETTLED),
        epochs_total_micro=sum(e.total_micro for e in committed_epochs),
        lost_examples=[f"{v}:{s}" for v, s in lost[:5]],
        lost_positions=sorted(stream.position[event] for event in lost),
    )
    if chain_url is not None and deployment is not None:
        from settlement.chain import Web3Clearing

        chain = Web3Clearing.connect(chain_url)
        chain.attach(deployment)
        out.chain_epochs = chain.last_epoch()
        out.chain_total_micro = chain.totals().spent_total  # what the riders spent: every settled fare, once
        for e in committed_epochs:
            held = chain.trips_root(e.epoch_id) if e.epoch_id <= out.chain_epochs else None
            if held is None or "0x" + held.hex() != e.trips_root:
                out.chain_epochs_differing += 1
    return out


def settled_in_time(database_url: str, stream: Stream, seconds: float, stall: float = 30.0) -> Outcome:
    """Poll the database until every event is stored and every trip settled; give up after ``seconds``, or once
    nothing has changed for ``stall`` seconds (something is lost: waiting longer shows nothing new). The last look."""
    deadline = time.monotonic() + seconds
    seen: tuple[int, ...] = ()
    since = time.monotonic()
    while True:
        outcome = observe(database_url, stream)
        now = time.monotonic()
        progress = (outcome.events_stored, outcome.telemetry_stored, outcome.trips_stored, outcome.trips_settled)
        if progress != seen:
            seen, since = progress, now
        if outcome.complete() or now > deadline or now - since > stall:
            return outcome
        time.sleep(0.5)


# --- the figures ------------------------------------------------------------------------------------
def report(name: str, stream: Stream, outcome: Outcome, started: float, **figures: Any) -> dict[str, Any]:
    """Print the experiment's figures and append them as a JSON line to ``$SMARTZONE_CHAOS_REPORT`` if set."""
    line: dict[str, Any] = {
        "experiment": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **figures,
        "published": stream.per_qos(),
        "events_expected": len(stream.events),
        "events_stored": outcome.events_stored,
        "events_lost": outcome.events_lost,
        "events_duplicated": outcome.events_duplicated,
        "events_lost_at": outcome.lost_positions[:20],
        "telemetry_published_qos0": stream.telemetry,
        "telemetry_stored": outcome.telemetry_stored,
        "telemetry_lost_qos0": stream.telemetry - outcome.telemetry_stored,
        "trips_expected": len(stream.trips),
        "trips_settled": outcome.trips_settled,
        "trips_lost": outcome.trips_lost,
        "trips_unsettled": outcome.trips_unsettled,
        "trips_in_epochs": outcome.trips_in_epochs,
        "epochs": outcome.epochs,
        "chain_total_micro": outcome.chain_total_micro,
        "db_total_micro": outcome.db_total_micro,
        "problems": outcome.problems(),
        "wall_s": round(time.monotonic() - started, 1),
    }
    print(f"\nchaos {name}: {json.dumps(line)}", flush=True)
    path = os.environ.get("SMARTZONE_CHAOS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(line) + "\n")
    return line
