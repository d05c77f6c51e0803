"""The issue's attacks, replayed by hostile publishers on Mosquitto (with its ACL), PostgreSQL and anvil.

On the skeleton each of these got money paid on chain or stopped settlement; here each is refused with a reason
code while the honest traffic next to it is settled.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from sensors.address import Address
from sensors.codec import channel_of, encode
from sensors.errors import BrokerUnavailable
from sensors.messages import EventType, Message, VehicleKind
from sensors.mqtt import MqttClient
from sensors.signing import address_of
from sensors.topics import topic_for
from sensors.wire import QOS, RETAIN
from settlement.balances import BalanceTree
from settlement.chain import Web3Clearing
from settlement.db import Database
from settlement.queries import SqlReadModel
from smartzone.broker import RunningBroker, mosquitto
from smartzone.broker_access import BrokerAccess, Role, generate, url_for
from smartzone.parts import AggregatorPart, build_aggregator, open_database, unit_of_work
from smartzone.riders import fund_accounts
from smartzone.settings import Settings
from tests import services
from tests.e2e.pipeline_checks import wait_until
from tests.signed import OPERATOR, RIDER_KEY, SignedFleet, payee_of

pytestmark = pytest.mark.services

ATTACKER = address_of(b"\x07" * 32)
T0 = int(time.time() * 1000) - 3_600_000


@dataclass
class Platform:
    """A running aggregator on real services, and the broker's logins."""

    broker: RunningBroker
    access: BrokerAccess
    part: AggregatorPart
    read: SqlReadModel
    fleet: SignedFleet
    database: Database

    def publisher(self, vehicle: str) -> MqttClient:
        """A client logged in as ``vehicle`` (the broker lets it write only under its own topic)."""
        url = url_for(self.access.find(Role.VEHICLE, vehicle), self.broker.url)
        return MqttClient(url, f"veh-{vehicle}-{uuid.uuid4().hex[:6]}").connect()

    def owed(self, address: Address) -> int:
        """What ``address`` earned by the last committed epoch, by the stored balances whose root is on chain."""
        clearing = self.part.aggregator.clearing
        with unit_of_work(self.database)() as uow:
            last = uow.epochs.last_committed()
            book = uow.epochs.balances(upto=last)
        if not last:
            return 0
        tree = BalanceTree.of(book, clearing.chain_id(), str(clearing.address))
        assert tree.root == clearing.balances_root(last), "the stored balances are not the ones committed"
        return book.get(address, (0, 0))[0]


def send(client: MqttClient, message: Message, payload: bytes | None = None) -> None:
    channel = channel_of(message)
    topic = topic_for(message.operator, message.vehicle_id, channel)
    client.publish(topic, payload if payload is not None else encode(message), QOS[channel], RETAIN[channel])


@pytest.fixture()
def platform(postgres_url: str, anvil_url: str, tmp_path: Path) -> Iterator[Platform]:
    fleet = SignedFleet(vehicles={"bike-1": VehicleKind.BIKE, "bike-2": VehicleKind.BIKE})
    access = generate("smartzone", [OPERATOR], vehicles=["bike-1", "bike-2", "ghost-1"])
    with ExitStack() as stack:
        broker = stack.enter_context(mosquitto(services.mosquitto_binary(), access=access))
        settings = Settings(
            database_url=postgres_url,
            chain_url=anvil_url,
            data_dir=tmp_path,
            epoch_seconds=1.0,
            aggregator_id=f"attacks-{uuid.uuid4().hex[:8]}",
            demo=True,  # the euro token's faucet funds the fleet's rider
        )
        database = stack.enter_context(open_database(settings, migrate=True))
        part = build_aggregator(
            settings, database, mqtt_url=url_for(access.find(Role.AGGREGATOR), broker.url), protocol="auto"
        )
        from settlement.enrolment import enrol, trust_operator

        trust_operator(unit_of_work(database), OPERATOR, fleet.operator_address, T0)
        enrol(unit_of_work(database), fleet.registrations(), fleet.domain, T0)
        part.aggregator.refresh_registry(force=True)
        assert isinstance(part.aggregator.clearing, Web3Clearing)
        fund_accounts(part.aggregator.clearing, [RIDER_KEY], 100_000_000)
        stop = threading.Event()
        worker = threading.Thread(target=part.run, args=(stop,))
        worker.start()
        try:
            yield Platform(broker, access, part, SqlReadModel(database), fleet, database)
        finally:
            stop.set()
            worker.join(timeout=60)
        assert not worker.is_alive(), "the aggregator did not stop"


def settled_trips(platform: Platform) -> dict[str, int]:
    return {t.trip_id: t.fare_micro or 0 for t in platform.read.trips(limit=1000) if t.status == "committed"}


def test_an_anonymous_publisher_is_refused_by_the_broker(platform: Platform) -> None:
    with pytest.raises(BrokerUnavailable, match="refused"):
        MqttClient(platform.broker.url, "anonymous-attacker").connect()


def test_a_forged_owner_and_a_forged_trip_get_nobody_paid_but_the_registered_payee(platform: Platform) -> None:
    fleet, ghost = platform.fleet, SignedFleet(vehicles={"ghost-1": VehicleKind.BIKE})
    attacker_state = {"v": 1, "vehicle_id": "ghost-1", "operator": OPERATOR, "timestamp": T0, "online": True,
                      "kind": "bike", "owner": str(ATTACKER)}  # fmt: skip
    with closing(platform.publisher("ghost-1")) as hostile:
        send(hostile, ghost.state("ghost-1", T0), json.dumps(attacker_state).encode())
        for event in ghost.trip("ghost-1", 1, T0, minutes=10, metres=3000):
            send(hostile, event)
        hostile.flush()
    real_owner = {**attacker_state, "vehicle_id": "bike-1"}
    with closing(platform.publisher("bike-1")) as bike:
        send(bike, fleet.state("bike-1", T0), json.dumps(real_owner).encode())  # overwriting a real vehicle's owner
        for event in fleet.trip("bike-1", 1, T0 + 1000, minutes=10, metres=3000):
            send(bike, event)
        bike.flush()
    wait_until(lambda: "bike-1:1" in settled_trips(platform), 60, "the honest trip settled")
    assert platform.owed(ATTACKER) == 0
    assert platform.owed(payee_of("bike-1")) == settled_trips(platform)["bike-1:1"] > 0
    codes = platform.read.rejects_by_code()
    assert codes == {"unknown_vehicle": 2, "schema": 2}, codes  # two ghost events; two states naming an owner


def test_an_odometer_of_10_19_is_dead_lettered_and_settlement_goes_on(platform: Platform) -> None:
    fleet = platform.fleet
    poison = fleet.event("bike-1", 1, EventType.UNLOCK, T0)
    body = json.loads(encode(poison))
    body["odometer_m"] = 10**19
    with closing(platform.publisher("bike-1")) as bike:
        for _ in range(3):  # sent again and again, as a broker redelivers an unacknowledged message
            send(bike, poison, json.dumps(body).encode())
        for event in fleet.trip("bike-1", 2, T0 + 1000, minutes=5, metres=1200):
            send(bike, event)
        bike.flush()
    wait_until(lambda: "bike-1:2" in settled_trips(platform), 60, "the next trip settled")
    assert platform.read.rejects_by_code() == {"out_of_range": 3}


def test_a_huge_odometer_jump_is_never_settled(platform: Platform) -> None:
    fleet = platform.fleet
    with closing(platform.publisher("bike-2")) as bike:
        for event in fleet.trip("bike-2", 1, T0, minutes=30, metres=10**15):
            send(bike, event)
        for event in fleet.trip("bike-2", 3, T0 + 3_600_000, minutes=11 * 60, metres=400_000):
            send(bike, event)
        for event in fleet.trip("bike-2", 5, T0 + 2 * 86_400_000, minutes=5, metres=900):
            send(bike, event)
        bike.flush()
    wait_until(lambda: "bike-2:5" in settled_trips(platform), 60, "the plausible trip settled")
    assert set(settled_trips(platform)) == {"bike-2:5"}
    assert platform.owed(payee_of("bike-2")) == settled_trips(platform)["bike-2:5"]
    rejected = {t.trip_id: t.reason for t in platform.read.trips(status="rejected")}
    assert rejected == {"bike-2:1": "unlock_twice", "bike-2:3": "trip_too_far"}  # 1: its lock was refused
    assert platform.read.rejects_by_code() == {"implausible_odometer": 1}


def test_events_out_of_order_settle_the_trips_of_the_in_order_run(platform: Platform) -> None:
    fleet = platform.fleet
    u1 = fleet.event("bike-1", 1, EventType.UNLOCK, T0, 1000)
    l2 = fleet.event("bike-1", 2, EventType.LOCK, T0 + 600_000, 3000, trip_seq=1)
    u3 = fleet.event("bike-1", 3, EventType.UNLOCK, T0 + 900_000, 3000)
    l4 = fleet.event("bike-1", 4, EventType.LOCK, T0 + 1_500_000, 4500, trip_seq=3)
    with closing(platform.publisher("bike-1")) as bike:
        for event in (u1, l4):
            send(bike, event)
        bike.flush()
        time.sleep(2.5)  # an epoch closes in between
        for event in (l2, u3):
            send(bike, event)
        bike.flush()
    wait_until(lambda: len(settled_trips(platform)) == 2, 60, "both trips settled")
    trips = {t.trip_id: (t.distance_m, t.duration_s) for t in platform.read.trips()}
    assert trips == {"bike-1:1": (2000, 600), "bike-1:3": (1500, 600)}
    assert platform.owed(payee_of("bike-1")) == sum(settled_trips(platform).values())


def test_a_vehicle_login_cannot_publish_for_another_vehicle(platform: Platform) -> None:
    fleet = platform.fleet
    with closing(platform.publisher("bike-1")) as bike:
        for event in fleet.trip("bike-2", 1, T0, minutes=5, metres=900):  # signed with bike-2's key even
            send(bike, event)
        bike.flush()
        refused = bike.refused
    time.sleep(2)
    assert refused == 2  # MQTT 5: the broker answered "not authorized"
    assert platform.read.stats().events == 0 and platform.read.rejects_by_code() == {}
