"""The aggregator: decode and store what arrives, build and price trips, close epochs and settle them."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sensors.codec import decode
from sensors.errors import InvalidReading, ServiceUnavailable
from sensors.messages import Event, Telemetry, VehicleKind, VehicleState
from sensors.ports import Received
from settlement.errors import ChainError
from settlement.fares import DEFAULT_TARIFFS, Tariff, price
from settlement.ports import Chain, ChainReceipt
from settlement.records import Batch, BatchResult, Reject
from settlement.store import Store
from settlement.trips import build_trip, pair_events

log = logging.getLogger(__name__)


@dataclass
class Counters:
    """What the aggregator has done since it started."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    trips: int = 0
    epochs_settled: int = 0

    def summary(self) -> str:
        return (
            f"{self.received} received, {self.stored} stored, {self.duplicates} duplicates, "
            f"{self.rejected} rejected, {self.trips} trips, {self.epochs_settled} epochs settled"
        )


class Aggregator:
    """Turns received messages into stored readings, trips, epochs and settlements."""

    def __init__(
        self,
        store: Store,
        chain: Chain,
        *,
        epoch_seconds: float = 30.0,
        epoch_max_trips: int = 1000,
        tariffs: Mapping[VehicleKind, Tariff] = DEFAULT_TARIFFS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.chain = chain
        self.epoch_seconds = epoch_seconds
        self.epoch_max_trips = epoch_max_trips
        self.tariffs = tariffs
        self.clock = clock
        self.counters = Counters()
        self._last_close = clock()

    def attach_contract(self, configured: str | None = None) -> str:
        """Attach to the settlement contract: the configured one, the one this database knows, or a new one."""
        chain_id = self.chain.chain_id()
        address = configured or self.store.deployment(chain_id)
        if address is None:
            address = self.chain.deploy()
            self.store.record_deployment(chain_id, address, self._now_ms())
            log.info("deployed the settlement contract at %s on chain %s", address, chain_id)
        elif configured:
            self.chain.attach(address)
        else:
            try:
                self.chain.attach(address)
            except ChainError as exc:
                raise ChainError(
                    f"{exc}, though the database {self.store.url} deployed it there: the chain was reset "
                    "(an embedded chain lives only as long as its process); start from an empty database"
                ) from None
        return address

    def handle(self, received: Sequence[Received]) -> BatchResult:
        """Decode and store a batch, then acknowledge it: a message is acked only once stored."""
        batch = Batch()
        for item in received:
            try:
                message = decode(item.topic, item.payload)
            except InvalidReading as exc:
                log.warning("rejected a message on %s: %s", item.topic, exc.reason)
                batch.rejects.append(Reject(item.topic, item.payload[:65536], exc.reason, int(item.received_at * 1000)))
                continue
            if isinstance(message, Telemetry):
                batch.telemetry.append(message)
            elif isinstance(message, Event):
                batch.events.append(message)
            elif isinstance(message, VehicleState):
                batch.states.append(message)
        result = self.store.ingest(batch)
        for item in received:
            item.ack()
        c = self.counters
        c.received += len(received)
        c.stored += result.telemetry_new + result.events_new
        c.duplicates += result.duplicates
        c.rejected += result.rejected
        return result

    def build_trips(self) -> int:
        """Derive, price and store the trips whose lock has arrived; returns how many are new."""
        new = 0
        for vehicle_id in self.store.unpaired_lock_vehicles():
            events, owner = self.store.trip_events(vehicle_id)
            if owner is None:
                continue  # the vehicle's birth state (with its owner) has not arrived yet
            trips = [build_trip(unlock, lock, owner) for unlock, lock in pair_events(events)]
            new += self.store.add_trips((trip, price(trip, self.tariffs[trip.kind])) for trip in trips)
        self.counters.trips += new
        return new

    def settle_due(self, force: bool = False) -> list[int]:
        """Close an epoch when one is due (or ``force``), then settle every unsettled epoch in order."""
        now = self.clock()
        if force or now - self._last_close >= self.epoch_seconds:
            self._last_close = now
            while self.store.close_epoch(self.epoch_max_trips, self._now_ms()) is not None:
                if not force:
                    break
        settled: list[int] = []
        for commit in self.store.unsettled_epochs():
            on_chain = self.chain.last_epoch()
            if commit.epoch_id <= on_chain:
                found = self.chain.epoch(commit.epoch_id)
                if found.trips_root != commit.trips_root or found.total_micro != commit.total_micro:
                    raise ChainError(f"epoch {commit.epoch_id} on chain differs from the database")
                self.store.mark_settled(commit.epoch_id, self._find_receipt(commit.epoch_id), self._now_ms())
            else:
                receipt = self.chain.settle(commit)
                self.store.mark_settled(commit.epoch_id, receipt, self._now_ms())
                log.info(
                    "settled epoch %d: %d trips, %d micro-EUR, gas %d, tx %s",
                    commit.epoch_id,
                    commit.trip_count,
                    commit.total_micro,
                    receipt.gas_used,
                    receipt.tx_hash,
                )
            settled.append(commit.epoch_id)
        self.counters.epochs_settled += len(settled)
        return settled

    def run(
        self,
        inbox: queue.Queue[Received],
        stop: threading.Event,
        batch_size: int = 2000,
        report_seconds: float = 10.0,
        retry_seconds: float = 2.0,
    ) -> None:
        """Process ``inbox`` until ``stop`` is set, then drain it and settle what is left.

        While the database or the chain cannot be reached it logs, waits ``retry_seconds`` and tries again;
        a batch that could not be stored stays unacknowledged, so the broker still owes it.
        """
        pending: list[Received] = []
        last_trips = last_report = self.clock()
        while True:
            if self.clock() - last_report >= report_seconds:
                last_report = self.clock()
                log.info("progress: %s; %d waiting in the inbox", self.counters.summary(), inbox.qsize())
            items = pending or _drain(inbox, batch_size, timeout=0.2)
            pending = []
            if items:
                try:
                    if self.handle(items).locks_new:
                        last_trips = 0.0
                except ServiceUnavailable as exc:
                    log.warning(
                        "%s; retrying in %g s (%d messages kept unacknowledged)", exc, retry_seconds, len(items)
                    )
                    if stop.is_set():
                        break  # the broker delivers them again after a restart
                    pending = items
                    time.sleep(retry_seconds)
                    continue
            if self.clock() - last_trips >= 2.0:
                last_trips = self.clock()
                self._maintain(force=False)
            if stop.is_set() and inbox.empty():
                break
        self._maintain(force=True)

    def _maintain(self, force: bool) -> None:
        """Build trips and settle what is due; a service that is away is logged and tried again later."""
        try:
            self.build_trips()
            self.settle_due(force=force)
        except (ServiceUnavailable, ChainError) as exc:
            log.warning("settlement postponed: %s", exc)

    def _find_receipt(self, epoch_id: int) -> ChainReceipt | None:
        """The transaction that settled ``epoch_id``, which is on chain but not recorded (a crash came between).

        The contract's state already proves the settlement; the receipt is bookkeeping. A node that cannot find
        the event (pruned logs, a capped log range) must not hold back every later epoch, so that case is logged
        and the epoch recorded without its transaction. A node that is away raises ``ChainUnavailable``.
        """
        try:
            receipt = self.chain.settlement_receipt(epoch_id)
        except ChainError as exc:
            log.warning("epoch %d is settled on chain; recording it without its transaction: %s", epoch_id, exc)
            return None
        log.info("epoch %d was already settled on chain in tx %s; recorded", epoch_id, receipt.tx_hash)
        return receipt

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)


def _drain(inbox: queue.Queue[Received], most: int, timeout: float) -> list[Received]:
    try:
        items = [inbox.get(timeout=timeout)]
    except queue.Empty:
        return []
    while len(items) < most:
        try:
            items.append(inbox.get_nowait())
        except queue.Empty:
            break
    return items
