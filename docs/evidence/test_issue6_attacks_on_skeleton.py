"""Issue 6's attacks replayed on the skeleton (f3d66da) with its own API.

Each test asserts the SAFE outcome that the new code guarantees; on the skeleton each is expected to FAIL,
and its failure message says what the attack achieved. A record, written against the skeleton's API (its
``settlement.store``), not part of this project's suite; to rerun it:

    git worktree add /tmp/skeleton f3d66da
    cp docs/evidence/test_issue6_attacks_on_skeleton.py /tmp/skeleton/tests/
    cd /tmp/skeleton && PYTHONPATH=/tmp/skeleton <this project's venv>/bin/python -m pytest \
        tests/test_issue6_attacks_on_skeleton.py -q -p no:cacheprovider       # 5 failed, by design

The same attacks against this code: ``tests/e2e/test_attacks.py`` and ``tests/unit/test_aggregator.py``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sensors.codec import channel_of, encode
from sensors.messages import Event, EventType, Message, Position, VehicleKind, VehicleState
from sensors.ports import Received
from sensors.topics import topic_for
from settlement.aggregator import Aggregator
from settlement.ports import FakeChain
from settlement.queries import SqlReadModel
from settlement.schema import TripRow, table_of
from settlement.store import Store

T0 = 1_790_000_000_000
OP = "op"
ATTACKER = "0x" + "07" * 20
OWNER = "0x" + "aa" * 20
POS = Position(51.215, 4.396)
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class Acks:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def received(message: Message, acks: Acks, payload: bytes | None = None) -> Received:
    topic = topic_for(message.operator, message.vehicle_id, channel_of(message))
    return Received(topic, payload if payload is not None else encode(message), T0 / 1000, acks)


def event(vehicle: str, seq: int, kind: EventType, ts: int, odo: int, vk: VehicleKind = VehicleKind.EBIKE) -> Event:
    return Event(vehicle, OP, vk, seq, ts, kind, POS, odo, 80.0, rider="r1")


def trip(vehicle: str, seq: int, start: int, minutes: int, metres: int, vk: VehicleKind = VehicleKind.EBIKE) -> list[Event]:
    return [
        event(vehicle, seq, EventType.UNLOCK, start, 1000, vk),
        event(vehicle, seq + 1, EventType.LOCK, start + minutes * 60_000, 1000 + metres, vk),
    ]


def make(url: str) -> tuple[Aggregator, FakeChain]:
    chain = FakeChain()
    aggregator = Aggregator(Store.connect(url), chain, epoch_seconds=0.0, clock=lambda: T0 / 1000)
    aggregator.attach_contract()
    return aggregator, chain


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'agg.db'}"


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_BASE)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def test_a_forged_owner_of_a_made_up_vehicle_gets_nothing(sqlite_url: str) -> None:
    aggregator, chain = make(sqlite_url)
    acks = Acks()
    state = VehicleState("ghost-1", OP, T0, True, VehicleKind.EBIKE, ATTACKER)
    aggregator.handle([received(m, acks) for m in [state, *trip("ghost-1", 1, T0, minutes=10, metres=3000)]])
    aggregator.build_trips()
    aggregator.settle_due(force=True)
    owed = chain.owed(ATTACKER)
    assert owed == 0, f"attacker owed {owed:,} micro-EUR for made-up vehicle ghost-1 (epochs settled {list(chain.epochs)})"


def test_overwriting_the_owner_of_a_real_vehicle_does_not_redirect_its_fare(sqlite_url: str) -> None:
    aggregator, chain = make(sqlite_url)
    acks = Acks()
    birth = VehicleState("ebike-0", OP, T0, True, VehicleKind.EBIKE, OWNER)
    aggregator.handle([received(birth, acks)])
    hijack = {"v": 1, "vehicle_id": "ebike-0", "operator": OP, "timestamp": T0 + 1, "online": True,
              "owner": ATTACKER}  # fmt: skip
    aggregator.handle([received(birth, acks, payload=json.dumps(hijack).encode())])
    aggregator.handle([received(m, acks) for m in trip("ebike-0", 1, T0 + 1000, minutes=10, metres=3000)])
    aggregator.build_trips()
    aggregator.settle_due(force=True)
    fare = chain.total_settled()
    assert fare > 0
    assert (chain.owed(OWNER), chain.owed(ATTACKER)) == (fare, 0), (
        f"original owner owed {chain.owed(OWNER):,}, attacker owed {chain.owed(ATTACKER):,} micro-EUR"
    )


def test_an_odometer_of_10_19_is_dead_lettered_and_the_rest_of_the_batch_is_stored(postgres_url: str) -> None:
    aggregator, _ = make(postgres_url)
    acks = Acks()
    bad = event("ebike-1", 1, EventType.UNLOCK, T0, 1000)
    body = json.loads(encode(bad))
    body["odometer_m"] = 10**19
    good = [VehicleState("ebike-2", OP, T0, True, VehicleKind.EBIKE, OWNER), *trip("ebike-2", 1, T0, 5, 900)]
    batch = [received(bad, acks, payload=json.dumps(body).encode()), *(received(m, acks) for m in good)]
    raised: BaseException | None = None
    try:
        aggregator.handle(batch)
    except Exception as exc:  # noqa: BLE001 - recorded for the report
        raised = exc
    stats = SqlReadModel(aggregator.store).stats()
    summary = (
        f"handle raised {type(raised).__name__}: {str(raised).splitlines()[0] if raised else ''}; "
        f"acked {acks.count}/{len(batch)}; events stored {stats.events}; rejected {stats.rejected}"
    )
    assert raised is None, summary
    assert stats.rejected == 1 and stats.events == 2 and acks.count == len(batch), summary


def test_events_out_of_order_give_the_trips_of_the_in_order_run(sqlite_url: str) -> None:
    aggregator, _ = make(sqlite_url)
    acks = Acks()
    aggregator.handle([received(VehicleState("ebike-3", OP, T0, True, VehicleKind.EBIKE, OWNER), acks)])
    u1 = event("ebike-3", 1, EventType.UNLOCK, T0, 1000)
    l2 = event("ebike-3", 2, EventType.LOCK, T0 + 600_000, 3000)
    u3 = event("ebike-3", 3, EventType.UNLOCK, T0 + 900_000, 3000)
    l4 = event("ebike-3", 4, EventType.LOCK, T0 + 1_500_000, 4500)
    for e in (u1, l4, l2, u3):  # the order of the issue, each in its own batch
        aggregator.handle([received(e, acks)])
        aggregator.build_trips()
    t = table_of(TripRow)
    with aggregator.store.reading() as conn:
        rows = conn.execute(sa.select(t.c.trip_id, t.c.start_seq, t.c.end_seq, t.c.distance_m)).all()
    trips = {r.trip_id: (r.start_seq, r.end_seq, r.distance_m) for r in rows}
    assert trips == {"ebike-3:1": (1, 2, 2000), "ebike-3:3": (3, 4, 1500)}, f"trips (start, end, metres): {trips}"


def test_a_forged_odometer_jump_of_10_15_m_is_never_credited(sqlite_url: str) -> None:
    aggregator, chain = make(sqlite_url)
    acks = Acks()
    birth = VehicleState("car-1", OP, T0, True, VehicleKind.CAR, OWNER)
    forged = trip("car-1", 1, T0, minutes=30, metres=10**15, vk=VehicleKind.CAR)
    aggregator.handle([received(m, acks) for m in [birth, *forged]])
    aggregator.build_trips()
    aggregator.settle_due(force=True)
    total = chain.total_settled()
    assert total == 0, f"credited {total:,} micro-EUR (~EUR {total / 1e6:,.0f}) to {OWNER} for one 30-minute trip"
