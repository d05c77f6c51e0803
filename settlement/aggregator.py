"""The aggregator: verify and store what arrives, derive and price trips, close epochs and settle them.

One batch is one unit of work: its readings, its dead letters and the trips it completes are committed
together and only then acknowledged to the broker. A message the database refuses is isolated: the batch is
stored again one message at a time and the culprit dead-lettered with its reason, so no input can stop the
aggregator or make the broker deliver it again and again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from sensors.address import Address
from sensors.codec import decode
from sensors.errors import InvalidReading, ServiceUnavailable
from sensors.messages import Event, EventType, Message, RiderVoucher, Telemetry, VehicleKind, VehicleState
from sensors.ports import Received
from sensors.signing import Domain
from settlement.bounds import DEFAULT_BOUNDS, Bounds
from settlement.clearing import ClearingPort
from settlement.dead_letters import (
    LOG_INTERVAL_S,
    PRUNE_EVERY_S,
    SAMPLE_BYTES,
    SAMPLE_DAYS,
    SAMPLES_MAX,
    RejectLog,
    SampleLimits,
)
from settlement.epochs import LeafContext, clear, close, riders_of
from settlement.errors import ChainError, StoreRefused
from settlement.fares import DEFAULT_TARIFFS, Tariff
from settlement.lifecycle import TripStatus
from settlement.ports import ChainReceipt, TokenPort
from settlement.reasons import RejectCode
from settlement.records import BatchResult, Reject
from settlement.registry import Registry, registry_root
from settlement.repositories import UnitOfWork
from settlement.settler import SettlerLock
from settlement.trips import (
    ConsentRules,
    TripRecord,
    apply_vouchers,
    derive,
    expire,
    trip_ids_named,
    vehicles_named,
)
from settlement.vehicles import latest_updates
from settlement.verification import Verifier

log = logging.getLogger(__name__)

WAY_OUT = "start from an empty database or point SMARTZONE_CHAIN_URL at the chain this database settled on"
"""What to do when the chain does not hold what the database settled on it."""
REGISTRY_POLL_S = 2.0
"""How often the aggregator looks for registry changes made by another process."""
MAINTAIN_S = 2.0
"""How often open trips are expired and due epochs closed and settled."""
EPOCHS_PER_ROUND = 16
"""The most epochs closed in one round of maintenance while a backlog remains (the next round closes more)."""


@dataclass(frozen=True, slots=True)
class MoneyRules:
    """How the aggregator moves money: the fee, who earns it, the clearing contract's windows, the token.

    ``zone`` None: the aggregator's own account earns the fees. ``token_address`` None: the aggregator deploys the
    euro token (with a faucet of ``faucet_cap`` per call when > 0: demo mode only) before the clearing contract.
    """

    fee_bps: int = 0
    zone: Address | None = None
    challenge_blocks: int = 0
    withdraw_delay_blocks: int = 100
    token_address: str | None = None
    faucet_cap: int = 0


@dataclass
class Counters:
    """What the aggregator has done since it started."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    trips: int = 0
    epochs_settled: int = 0
    trips_unpaid: int = 0
    by_code: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        text = (
            f"{self.received} received, {self.stored} stored, {self.duplicates} duplicates, "
            f"{self.rejected} rejected, {self.trips} trip changes, {self.epochs_settled} epochs settled, "
            f"{self.trips_unpaid} trips nobody could be charged for"
        )
        if self.by_code:
            text += " (" + ", ".join(f"{code} {n}" for code, n in sorted(self.by_code.items())) + ")"
        return text


class Aggregator:
    """Turns received messages into stored readings, trips, epochs and settlements."""

    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        clearing: ClearingPort,
        *,
        token: TokenPort | None = None,
        money: MoneyRules = MoneyRules(),
        epoch_seconds: float = 30.0,
        epoch_max_trips: int = 1000,
        confirmations: int = 1,
        settler: SettlerLock | None = None,
        tariffs: Mapping[VehicleKind, Tariff] = DEFAULT_TARIFFS,
        bounds: Bounds = DEFAULT_BOUNDS,
        sign_telemetry: bool = False,
        require_consent: bool = True,
        max_clock_skew_ms: int | None = None,
        signing_chain_id: int | None = None,
        reject_sample_bytes: int = SAMPLE_BYTES,
        reject_samples_max: int = SAMPLES_MAX,
        reject_sample_days: float = SAMPLE_DAYS,
        reject_log_interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clearing`` is the clearing contract's port (deployed or attached by ``attach_contract``), ``token`` the
        euro token's (needed only to deploy one). An epoch closes every ``epoch_seconds`` with at most
        ``epoch_max_trips`` trips (several at once while a backlog remains) and is final after ``confirmations``
        blocks. Only the holder of ``settler`` (None: this aggregator alone) closes and settles epochs. With
        ``require_consent`` a trip is priced only under its rider's signed consent and charged what the rider's
        vouchers allow (``settlement.consent``); without, at its metered fare (tests of other rules). The
        ``reject_*`` keywords bound the dead letters (``settlement.dead_letters``): samples' payload size, number
        and age, and how often rejects are logged."""
        self.uow = unit_of_work
        self.clearing = clearing
        self.token = token
        self.money = money
        self.epoch_seconds = epoch_seconds
        self.epoch_max_trips = epoch_max_trips
        if confirmations < 1:
            raise ValueError(f"confirmations must be at least 1, not {confirmations}")
        self.confirmations = confirmations
        self.settler = settler
        self._backlog = False  # the last epoch closed was full: more are due at once
        self.tariffs = tariffs
        self.bounds = bounds
        self.require_consent = require_consent
        self.clock = clock
        self.counters = Counters()
        self._last_close = clock()
        self._registry_checked = 0.0
        self._registry_version: tuple[int, ...] | None = None
        self.registry = Registry({}, [])
        self.registry_root = registry_root([])
        self.signing_chain_id = signing_chain_id
        self.verifier = Verifier(
            self.registry,
            Domain(signing_chain_id or 1),  # the settlement chain's id once attach_contract has asked it
            bounds,
            sign_telemetry=sign_telemetry,
            clock=None if max_clock_skew_ms is None else clock,
        )
        if max_clock_skew_ms is not None:
            self.verifier.bounds = replace(bounds, max_future_skew_ms=max_clock_skew_ms)
        self.watermark_ms = 0
        self.leaf_context: LeafContext | None = None  # the chain and contract trip leaves are bound to
        self.samples = SampleLimits(reject_sample_bytes, reject_samples_max, reject_sample_days)
        self.reject_log = RejectLog(reject_log_interval_s, clock)
        self._last_prune: float | None = None
        self._samples_since_prune = 0

    # --- start ----------------------------------------------------------------------------------
    def attach_contract(self, configured: str | None = None) -> str:
        """Attach to the clearing contract (the configured one, the one this database knows, or a new one over the
        configured euro token or a new one), then load the registry and what each vehicle has sent, so that
        verification starts where it stopped."""
        chain_id = self.clearing.chain_id()
        with self.uow() as uow:
            address = configured or uow.registry.deployment(chain_id)
            url = uow.url
        if address is None:
            token = self.money.token_address or self._deploy_token()
            rules = self.money
            address = self.clearing.deploy(token, rules.challenge_blocks, rules.withdraw_delay_blocks)
            with self.uow() as uow:
                uow.registry.record_deployment(chain_id, address, self._now_ms())
                uow.commit()
            log.info("deployed the clearing contract at %s over the euro token %s (chain %s)", address, token, chain_id)
        elif configured:
            try:
                self.clearing.attach(address)
            except ChainError as exc:
                raise ChainError(f"{exc}: check SMARTZONE_CONTRACT_ADDRESS and SMARTZONE_CHAIN_URL") from None
            with self.uow() as uow:
                if uow.registry.deployment(chain_id) != address:  # receipts name the contract epochs settle on
                    uow.registry.record_deployment(chain_id, address, self._now_ms())
                    uow.commit()
            self._check_chain(address, url)
        else:
            try:
                self.clearing.attach(address)
            except ChainError:
                raise ChainError(
                    f"the chain at {self.clearing.url} has no clearing contract at {address}, though the database "
                    f"{url} deployed it there: the chain was reset (an embedded chain lives only as long as its "
                    f"process); {WAY_OUT}"
                ) from None
            self._check_chain(address, url)
        self.verifier.domain = Domain(self.signing_chain_id or chain_id)
        self.leaf_context = LeafContext(chain_id, Address.parse(address), self.signing_chain_id)
        with self.uow() as uow:
            self.verifier.marks = uow.readings.vehicle_marks()
            self.watermark_ms = uow.readings.watermark_ms()
        self.refresh_registry(force=True)
        return address

    def _check_chain(self, address: str, database: str) -> None:
        """Refuse (``ChainError``, one line naming the way out) a contract whose chain lost an epoch this database
        holds as final, or whose roots are not this database's. A committed epoch not yet final that the chain
        lacks is a reorg, which settling repairs."""
        with self.uow() as uow:
            last = uow.epochs.last_committed()
            waiting = [epoch_id for epoch_id, _ in uow.epochs.awaiting_finality()]
            last_final = min(waiting) - 1 if waiting else last
            commits = [c for c in (uow.epochs.commit_of(i) for i in (last_final, *waiting) if i > 0) if c]
        if not last:
            return
        on_chain = self.clearing.last_epoch()
        if on_chain < last_final:
            raise ChainError(
                f"the clearing contract {address} on {self.clearing.url} has epoch {on_chain} last, but the "
                f"database {database} settled epoch {last_final} there for good: the chain was reset; {WAY_OUT}"
            )
        for commit in commits:
            if commit.epoch_id <= on_chain and self.clearing.trips_root(commit.epoch_id) != commit.trips_root:
                raise ChainError(
                    f"epoch {commit.epoch_id} on the clearing contract {address} ({self.clearing.url}) is not the "
                    f"one the database {database} settled: another database settles on it; point "
                    "SMARTZONE_DATABASE_URL at that database or SMARTZONE_CONTRACT_ADDRESS at this one's contract"
                )

    def _deploy_token(self) -> str:
        if self.token is None:
            raise ChainError("no euro token to clear in: configure its address (SMARTZONE_TOKEN_ADDRESS)")
        address = self.token.deploy(self.money.faucet_cap)
        log.info("deployed the euro token at %s%s", address, " with a faucet (demo)" if self.money.faucet_cap else "")
        return address

    @property
    def zone(self) -> Address:
        """The account the fees are earned by."""
        return self.money.zone or self.clearing.account

    def refresh_registry(self, force: bool = False) -> bool:
        """Reload the registry if it changed (looked at most every ``REGISTRY_POLL_S`` unless ``force``)."""
        now = self.clock()
        if not force and now - self._registry_checked < REGISTRY_POLL_S:
            return False
        self._registry_checked = now
        with self.uow() as uow:
            version = uow.registry.version()
            if version == self._registry_version:
                return False
            operators, entries = uow.registry.operators(), uow.registry.entries()
        self._registry_version = version
        self.registry = Registry(operators, entries)
        self.registry_root = registry_root(entries)
        self.verifier.registry = self.registry
        log.info("registry loaded: %d operators, %d entries", len(operators), len(entries))
        return True

    # --- ingest ---------------------------------------------------------------------------------
    def handle(self, received: Sequence[Received]) -> BatchResult:
        """Verify and store a batch, then acknowledge it: a message is acked only once stored or dead-lettered."""
        self.refresh_registry()
        now_ms = self._now_ms()
        accepted: list[tuple[Received, Message]] = []
        rejects: list[Reject] = []
        recheck = [True]  # one fresh look at the registry per batch, whatever the number of unknown vehicles in it
        for item in received:
            try:
                accepted.append((item, self._verified(item, recheck)))
            except InvalidReading as exc:
                rejects.append(Reject(item.topic, item.payload, exc.code, exc.reason, int(item.received_at * 1000)))
        try:
            result = self._store(accepted, rejects, now_ms)
        except StoreRefused as exc:
            log.warning("%s; storing the batch of %d one message at a time", exc, len(accepted))
            result = self._store_one_by_one(accepted, rejects, now_ms)
        for item in received:
            item.ack()
        self._count(len(received), result)
        self._log_rejects(rejects)
        return result

    def _verified(self, item: Received, recheck: list[bool]) -> Message:
        """The decoded, verified message; an unknown vehicle makes the first such message of a batch look at the
        registry again (it may have been registered a moment ago by another process)."""
        message = decode(item.topic, item.payload)
        try:
            self.verifier.check(message)
        except InvalidReading as exc:
            if exc.code != RejectCode.UNKNOWN_VEHICLE or not recheck[0]:
                raise
            recheck[0] = False
            if not self.refresh_registry(force=True):
                raise
            self.verifier.check(message)
        return message

    def _store(
        self, accepted: Sequence[tuple[Received, Message]], rejects: Sequence[Reject], now_ms: int
    ) -> BatchResult:
        messages = [m for _, m in accepted]
        telemetry = [m for m in messages if isinstance(m, Telemetry)]
        events = [m for m in messages if isinstance(m, Event)]
        states = [m for m in messages if isinstance(m, VehicleState)]
        notes = [(item, m) for item, m in accepted if isinstance(m, RiderVoucher)]
        rejects = list(rejects)
        result = BatchResult()
        with self.uow() as uow:
            result.telemetry_new = uow.readings.add_telemetry(telemetry)
            new_events = uow.readings.add_events(events)
            result.events_new = len(new_events)
            repeated = len(telemetry) + len(events) - result.telemetry_new - result.events_new
            # received_ms: the injected clock's wall ms when the batch is handled (drained and stored), the platform's
            # receipt time, not the device's (a simulation's time may run ahead of the wall clock)
            uow.readings.apply_states(states, received_ms=now_ms)
            uow.readings.update_vehicles(latest_updates([*telemetry, *new_events], received_ms=now_ms))
            halves = [e for e in new_events if e.event_type in (EventType.UNLOCK, EventType.LOCK)]
            changed: dict[str, TripRecord] = {}
            if halves:
                known = uow.trips.get(trip_ids_named(halves))
                known.update(uow.trips.unfinished_of(vehicles_named(halves)))
                derivation = derive(
                    halves,
                    known,
                    payee_of=self.registry.payee_at,
                    tariffs=self.tariffs,
                    bounds=self.bounds,
                    consent=self._consent_rules(uow, halves, known.values()),
                )
                changed.update((r.trip_id, r) for r in derivation.changed)
                for event, code in derivation.anomalies:
                    log.info("trip anomaly %s on %s:%d", code, event.vehicle_id, event.seq)
                    result.rejects_by_code[str(code)] = result.rejects_by_code.get(str(code), 0) + 1
            if notes:
                taken, result.duplicates = self._vouchers(uow, notes, changed, rejects)
                changed.update(taken)
            uow.trips.save(list(changed.values()))
            result.trips_changed = len(changed)
            result.rejected = len(rejects)
            result.duplicates += repeated
            uow.readings.add_rejects(rejects, self.samples.sample_bytes)
            uow.commit()
        for r in rejects:
            result.rejects_by_code[str(r.code)] = result.rejects_by_code.get(str(r.code), 0) + 1
        if new_events:
            self.watermark_ms = max(self.watermark_ms, max(e.timestamp for e in new_events))
        return result

    def _consent_rules(
        self, uow: UnitOfWork, halves: Sequence[Event], known: Iterable[TripRecord]
    ) -> ConsentRules | None:
        """The consent rules for a batch's trip halves, with the used nonces of every rider whose consent it may
        judge (the unlocks' and the stored trips'); None when consent is not required."""
        if not self.require_consent:
            return None
        riders = {e.consent.rider for e in halves if e.consent is not None}
        riders.update(r.consent.rider for r in known if r.consent is not None)
        return ConsentRules(self.verifier.domain, uow.trips.used_nonces(riders) if riders else {})

    def _vouchers(
        self,
        uow: UnitOfWork,
        notes: Sequence[tuple[Received, RiderVoucher]],
        changed: Mapping[str, TripRecord],
        rejects: list[Reject],
    ) -> tuple[dict[str, TripRecord], int]:
        """Take the vouchers relayed during rides onto their trips (as this batch left them); the refused ones
        are dead-lettered with their reason. The trips that changed, and how many vouchers were superseded."""
        if not self.require_consent:
            for item, _ in notes:
                rejects.append(
                    Reject(item.topic, item.payload, RejectCode.VOUCHER_NO_CONSENT, "consent is not required here",
                           int(item.received_at * 1000))
                )  # fmt: skip
            return {}, 0
        ids = {note.voucher.trip_id for _, note in notes}
        known = uow.trips.get(ids - set(changed))
        known.update((i, changed[i]) for i in ids & set(changed))
        source = {id(note): item for item, note in notes}
        outcome = apply_vouchers([n for _, n in notes], known, self.verifier.domain)
        for note, code, reason in outcome.refused:
            item = source[id(note)]
            rejects.append(Reject(item.topic, item.payload, code, reason, int(item.received_at * 1000)))
        return {r.trip_id: r for r in outcome.changed}, outcome.superseded

    def _store_one_by_one(
        self, accepted: Sequence[tuple[Received, Message]], rejects: list[Reject], now_ms: int
    ) -> BatchResult:
        """Store each message alone; one the database refuses is dead-lettered with the database's reason."""
        total = BatchResult()
        for item, message in accepted:
            try:
                part = self._store([(item, message)], [], now_ms)
            except StoreRefused as exc:
                rejects.append(Reject(item.topic, item.payload, RejectCode.STORE_ERROR, str(exc), now_ms))
                continue
            total.telemetry_new += part.telemetry_new
            total.events_new += part.events_new
            total.duplicates += part.duplicates
            total.trips_changed += part.trips_changed
            for code, n in part.rejects_by_code.items():
                total.rejects_by_code[code] = total.rejects_by_code.get(code, 0) + n
        dead = self._store([], rejects, now_ms)
        total.rejected = dead.rejected
        for code, n in dead.rejects_by_code.items():
            total.rejects_by_code[code] = total.rejects_by_code.get(code, 0) + n
        return total

    def _count(self, received: int, result: BatchResult) -> None:
        c = self.counters
        c.received += received
        c.stored += result.telemetry_new + result.events_new
        c.duplicates += result.duplicates
        c.rejected += result.rejected
        c.trips += result.trips_changed
        c.by_code.update(result.rejects_by_code)

    # --- dead letters ---------------------------------------------------------------------------
    def _log_rejects(self, rejects: Sequence[Reject]) -> None:
        """One WARNING line at most per ``reject_log_interval_s``, with the running counts (the first at once)."""
        self._samples_since_prune += len(rejects)
        if rejects:
            last = rejects[-1]
            line = self.reject_log.record(Counter(str(r.code) for r in rejects), f"{last.code}: {last.reason}")
            if line is not None:
                log.warning("%s", line)

    def prune_samples(self, force: bool = False) -> int:
        """Delete dead-letter samples beyond the limits of number and age, at most once per ``PRUNE_EVERY_S``
        unless a flood stored more than ``reject_samples_max`` since (or ``force``); how many went."""
        now = self.clock()
        if not force and self._last_prune is not None:
            if now - self._last_prune < PRUNE_EVERY_S and self._samples_since_prune < self.samples.samples_max:
                return 0
        with self.uow() as uow:
            n = uow.readings.prune_rejects(self.samples.older_than_ms(self._now_ms()), self.samples.samples_max)
            uow.commit()
        self._last_prune, self._samples_since_prune = now, 0
        if n:
            log.info("pruned %d dead-letter samples (the counts per reason stay)", n)
        return n

    # --- trips and epochs -----------------------------------------------------------------------
    def expire_open(self) -> int:
        """Hold open trips whose other half is overdue (by the stream's clock) as rejected; returns how many."""
        with self.uow() as uow:
            expired = expire(uow.trips.open(), self.watermark_ms, self.bounds)
            uow.trips.save(expired)
            uow.commit()
        self.counters.trips += len(expired)
        return len(expired)

    def close_epoch(self) -> int | None:
        """Put the oldest priced trips whose riders can pay into the next epoch; its id, or None if none.

        Trips whose rider has no account or too small a deposit are rejected on the way (for good), in the same
        unit of work; each rider's deposit is read from the chain once per epoch.
        """
        context = self._leaf_context()
        while True:
            with self.uow() as uow:
                candidates = uow.trips.priced_unbatched(self.epoch_max_trips)
                self._backlog = len(candidates) == self.epoch_max_trips  # as many as it takes: more may wait
                if not candidates:
                    return None
                riders = riders_of(candidates)
                clearance = clear(candidates, uow.epochs.balances(riders), self._unspent(riders), self.money.fee_bps)
                if clearance.rejected:
                    uow.trips.save([t.with_status(TripStatus.REJECTED, str(code)) for t, code in clearance.rejected])
                    for trip, code in clearance.rejected:
                        log.info("trip %s not settled: %s (rider %r)", trip.trip_id, code, trip.rider)
                if not clearance.accepted:
                    uow.commit()
                    self.counters.trips_unpaid += len(clearance.rejected)
                    continue  # every candidate was turned away: look at the next ones
                epoch_id = uow.epochs.last_id() + 1
                closed = close(
                    epoch_id,
                    clearance.accepted,
                    uow.epochs.balances(),
                    self.zone,
                    self.registry_root,
                    context=context,
                )
                uow.epochs.add(closed, self._now_ms())
                chosen = [t.trip_id for t, _ in clearance.accepted]
                if uow.trips.batch(chosen, epoch_id, closed.splits) != len(chosen):
                    # another aggregator on this database batched some of them since we read them: this epoch's
                    # root would name trips it does not hold; leave it unwritten and choose again next time
                    log.info("epoch %d not closed: another aggregator batched some of its trips first", epoch_id)
                    return None
                uow.commit()
            self.counters.trips_unpaid += len(clearance.rejected)
            return epoch_id

    def _unspent(self, riders: Sequence[Address]) -> dict[Address, int]:
        """Each rider's deposit on chain less what was withdrawn or asked back (before what the book spent)."""
        return self.clearing.unspent(riders)

    def settle_due(self, force: bool = False) -> list[int]:
        """If this aggregator is the settler: look at the epochs awaiting finality, close epochs when due (every
        one while ``force``; while a backlog remains, up to ``EPOCHS_PER_ROUND`` at once), then commit every
        closed epoch in order; the epochs committed. Another aggregator's settler does nothing and returns [].

        An epoch already on chain (a crash came between sending its commit and recording it, or a reorg put it back
        in another block) is recorded, once its trips root on chain is the database's; a different root stops
        settlement with ``ChainError``.
        """
        if self.settler is not None and not self.settler.holds():
            return []
        self.check_finality()
        now = self.clock()
        if force or self._backlog or now - self._last_close >= self.epoch_seconds:
            self._last_close = now
            closed = 0
            while (force or closed < EPOCHS_PER_ROUND) and self.close_epoch() is not None:
                closed += 1
                if not (force or self._backlog):
                    break
        return self._commit_closed()

    def _commit_closed(self) -> list[int]:
        """Commit every closed epoch in order, or record it where the chain has it already; the epochs recorded."""
        with self.uow() as uow:
            unsettled = uow.epochs.unsettled()
        settled: list[int] = []
        on_chain = self.clearing.last_epoch() if unsettled else 0
        for commit in unsettled:
            epoch_id, receipt = commit.epoch_id, None
            if epoch_id > on_chain:
                try:
                    receipt = self.clearing.commit(commit)
                except ChainError:
                    on_chain = self.clearing.last_epoch()  # sent before (a crash, a timeout) and mined since?
                    if epoch_id > on_chain:
                        raise
                else:
                    on_chain = epoch_id
                    log.info(
                        "committed epoch %d: %d trips, %d micro-EUR spent in all, gas %d, tx %s",
                        epoch_id,
                        commit.trip_count,
                        commit.spent_total,
                        receipt.gas_used,
                        receipt.tx_hash,
                    )
            if receipt is None:
                if self.clearing.trips_root(epoch_id) != commit.trips_root:
                    raise ChainError(f"epoch {epoch_id} on chain differs from the database")
                receipt = self._find_receipt(epoch_id)
            with self.uow() as uow:
                uow.epochs.mark_committed(epoch_id, receipt, self._now_ms())
                uow.trips.commit_epoch(epoch_id)
                uow.commit()
            settled.append(epoch_id)
        self.counters.epochs_settled += len(settled)
        return settled

    def check_finality(self) -> tuple[list[int], list[int]]:
        """Look again at each committed epoch not yet final (cheap: only those): the ones with ``confirmations``
        blocks on their recorded block, its hash re-checked, and the contract's challenge window over become final
        with their trips; one whose block a reorg took away goes back to closed with every later one (their trips
        back to batched), to be committed again. An epoch mined again in another block gets its new receipt.
        The epochs made final and those reopened."""
        from settlement.chain.finality import Status, classify  # pure, but its package imports web3

        with self.uow() as uow:
            waiting = uow.epochs.awaiting_finality()
        final: list[int] = []
        moved: dict[int, ChainReceipt] = {}
        reorged: list[int] = []
        for epoch_id, recorded in waiting:
            if recorded is None:  # recorded without its transaction: the contract's state is the proof
                if self._final_on_chain(epoch_id):
                    final.append(epoch_id)
                continue
            found = classify(recorded, self.clearing, self.confirmations)
            if found.status is Status.REORGED and found.receipt is not None:
                moved[epoch_id] = found.receipt  # mined again in another block: track that one
            elif found.status is Status.REORGED:
                reorged = [i for i, _ in waiting if i >= epoch_id]
                break
            elif found.status is Status.FINAL and self.clearing.is_final(epoch_id):
                final.append(epoch_id)
        if final or moved or reorged:
            with self.uow() as uow:
                for epoch_id in final:
                    uow.epochs.mark_final(epoch_id)
                    uow.trips.finalise_epoch(epoch_id)
                for epoch_id, receipt in moved.items():
                    uow.epochs.mark_committed(epoch_id, receipt, self._now_ms())
                for epoch_id in reorged:
                    uow.epochs.reopen(epoch_id)
                    uow.trips.reopen_epoch(epoch_id)
                uow.commit()
        for epoch_id, receipt in moved.items():
            log.warning("epoch %d was mined again in block %d after a reorg", epoch_id, receipt.block_number)
        if reorged:
            log.warning("a reorg took epochs %s off the chain: they go back to be committed again", reorged)
        return final, reorged

    def _final_on_chain(self, epoch_id: int) -> bool:
        with self.uow() as uow:
            commit = uow.epochs.commit_of(epoch_id)
        return (
            commit is not None
            and self.clearing.is_final(epoch_id)
            and self.clearing.trips_root(epoch_id) == commit.trips_root
        )

    def run(
        self,
        inbox: queue.Queue[Received],
        stop: threading.Event,
        batch_size: int = 2000,
        report_seconds: float = 10.0,
        retry_seconds: float = 2.0,
        wait_seconds: float = 0.2,
    ) -> None:
        """Process ``inbox`` until ``stop`` is set, then drain it, settle what is left (if the settler) and let
        the settler lock go.

        While the database or the chain cannot be reached it logs, waits ``retry_seconds`` and tries again;
        a batch that could not be stored stays unacknowledged, so the broker still owes it.
        """
        pending: list[Received] = []
        last_maintain = last_report = self.clock()
        while True:
            if self.clock() - last_report >= report_seconds:
                last_report = self.clock()
                log.info("progress: %s; %d waiting in the inbox", self.counters.summary(), inbox.qsize())
            items = pending or _drain(inbox, batch_size, timeout=wait_seconds)
            pending = []
            if items:
                try:
                    self.handle(items)
                except ServiceUnavailable as exc:
                    log.warning(
                        "%s; retrying in %g s (%d messages kept unacknowledged)", exc, retry_seconds, len(items)
                    )
                    if stop.is_set():
                        break  # the broker delivers them again after a restart
                    pending = items
                    time.sleep(retry_seconds)
                    continue
            if self.clock() - last_maintain >= MAINTAIN_S:
                last_maintain = self.clock()
                self._maintain(force=False)
            if stop.is_set() and inbox.empty():
                break
        try:
            self._maintain(force=True)
        finally:
            if self.settler is not None:
                self.settler.release()  # another aggregator settles from its next round on

    def _maintain(self, force: bool) -> None:
        """Log the rejects counted since the last line (when due), prune dead-letter samples (when due), expire
        overdue open trips and settle what is due; a service that is away, or a database that refuses the epoch
        (another aggregator on the same database took its id a moment before), is logged and tried later."""
        line = self.reject_log.due()
        if line is not None:
            log.warning("%s", line)
        try:
            self.prune_samples()
            self.expire_open()
            self.settle_due(force=force)
        except (ServiceUnavailable, ChainError, StoreRefused) as exc:
            log.warning("settlement postponed: %s", exc)

    def _find_receipt(self, epoch_id: int) -> ChainReceipt | None:
        """The transaction that committed ``epoch_id``, which is on chain but not recorded (a crash came between).

        The contract's state already proves the settlement; the receipt is bookkeeping. A node that cannot find
        the event (pruned logs, a capped log range) must not hold back every later epoch, so that case is logged
        and the epoch recorded without its transaction. A node that is away raises ``ChainUnavailable``.
        """
        try:
            receipt = self.clearing.commit_receipt(epoch_id)
        except ChainError as exc:
            log.warning("epoch %d is committed on chain; recording it without its transaction: %s", epoch_id, exc)
            return None
        log.info("epoch %d was already committed on chain in tx %s; recorded", epoch_id, receipt.tx_hash)
        return receipt

    def _leaf_context(self) -> LeafContext:
        """The chain and contract this aggregator settles on; ``ChainError`` before ``attach_contract``."""
        if self.leaf_context is None:
            raise ChainError("no settlement contract attached: attach_contract() first")
        return self.leaf_context

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
