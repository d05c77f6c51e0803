"""Storage of settlement in SQLAlchemy (SQLite by default, PostgreSQL by URL): the only module with session work."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from sensors.messages import Event, EventType, Telemetry, VehicleState
from settlement.epochs import plan_epoch
from settlement.errors import SettlementError, StoreUnavailable
from settlement.fares import Fare
from settlement.ports import ChainReceipt, EpochCommit
from settlement.records import (
    Batch,
    BatchResult,
    event_from_row,
    event_row,
    priced,
    reject_row,
    telemetry_row,
    trip_row,
    within_owner_limit,
)
from settlement.schema import (
    Base,
    DeploymentRow,
    EpochRow,
    EventRow,
    PayoutRow,
    RejectRow,
    TelemetryRow,
    TripRow,
    VehicleRow,
    table_of,
)
from settlement.trips import Trip

MAX_OWNERS_PER_EPOCH = 256  # the contract's MAX_OWNERS: one commit credits at most this many owners
VEHICLE_STATE_AFTER = {
    EventType.UNLOCK: "on_trip",
    EventType.LOCK: "available",
    EventType.FAULT: "non_operational",
    EventType.FAULT_CLEARED: "available",
}


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    return sa.make_url(url).render_as_string(hide_password=True)


class Store:
    """The settlement database."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = redact(url)

    @classmethod
    def connect(cls, url: str) -> Store:
        """Open ``url``, check it answers and create missing tables; ``StoreUnavailable`` if it can't."""
        kwargs: dict[str, object] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        try:
            engine = sa.create_engine(url, **kwargs)
            if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
                sa.event.listen(engine, "connect", _sqlite_wal)
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            Base.metadata.create_all(engine)
        except (SQLAlchemyError, ImportError) as exc:
            raise StoreUnavailable(redact(url), _first_line(exc)) from None
        return cls(engine, url)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A connection in a transaction committed at the end; a lost database becomes ``StoreUnavailable``."""
        with self._translated(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A connection for reads; a lost database becomes ``StoreUnavailable``."""
        with self._translated(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailable(self.url, _first_line(exc)) from None

    def _insert(self, table: sa.Table) -> sa.Insert:
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        if dialect == "sqlite":
            return sqlite.insert(table).on_conflict_do_nothing()
        raise SettlementError(f"unsupported database {dialect}")

    # --- ingest -------------------------------------------------------------------------------
    def ingest(self, batch: Batch) -> BatchResult:
        """Store a batch once: (vehicle, seq) duplicates are dropped by the unique keys."""
        with self.transaction() as conn:
            t_new = self._insert_rows(conn, TelemetryRow, [telemetry_row(t) for t in batch.telemetry])
            e_new = self._insert_rows(conn, EventRow, [event_row(e) for e in batch.events])
            if batch.rejects:
                conn.execute(sa.insert(RejectRow), [reject_row(r) for r in batch.rejects])
            for state in batch.states:
                self._apply_state(conn, state)
            self._update_vehicles(conn, batch.telemetry, batch.events)
        locks = sum(1 for e in batch.events if e.event_type is EventType.LOCK)
        duplicates = len(batch.telemetry) + len(batch.events) - t_new - e_new
        return BatchResult(t_new, e_new, duplicates, len(batch.rejects), locks)

    def _insert_rows(self, conn: sa.Connection, model: type[Base], rows: list[dict[str, object]]) -> int:
        if not rows:
            return 0
        table: sa.Table = model.__table__  # type: ignore[assignment]
        key = table.primary_key.columns[0]
        # RETURNING counts the rows really inserted, on every backend (rowcount is not reliable in executemany)
        result = conn.execute(self._insert(table).returning(key), rows)
        return len(result.all())

    def _apply_state(self, conn: sa.Connection, state: VehicleState) -> None:
        vehicles = table_of(VehicleRow)
        if state.vehicle_id.startswith("_"):
            conn.execute(sa.update(vehicles).where(vehicles.c.operator == state.operator).values(online=state.online))
            return
        values: dict[str, object] = {"online": state.online}
        if state.kind is not None:
            values["kind"] = state.kind.value
        if state.owner is not None:
            values["owner"] = state.owner
        updated = conn.execute(sa.update(vehicles).where(vehicles.c.vehicle_id == state.vehicle_id).values(**values))
        if updated.rowcount == 0:
            row = {
                "vehicle_id": state.vehicle_id,
                "operator": state.operator,
                "kind": "bike",
                "owner": None,
                "state": "unknown",
                "last_seq": 0,
                **values,
            }
            conn.execute(self._insert(vehicles), [row])

    def _update_vehicles(self, conn: sa.Connection, telemetry: list[Telemetry], events: list[Event]) -> None:
        latest: dict[str, Telemetry | Event] = {}
        messages: list[Telemetry | Event] = [*telemetry, *events]
        for message in messages:
            seen = latest.get(message.vehicle_id)
            if seen is None or message.seq > seen.seq:
                latest[message.vehicle_id] = message
        vehicles = table_of(VehicleRow)
        for vehicle_id, message in latest.items():
            values: dict[str, object] = {
                "battery_pct": message.battery_pct,
                "lat": message.position.lat,
                "lon": message.position.lon,
                "last_seq": message.seq,
                "last_seen_ms": message.timestamp,
                "online": True,
            }
            if isinstance(message, Event) and message.event_type in VEHICLE_STATE_AFTER:
                values["state"] = VEHICLE_STATE_AFTER[message.event_type]
            elif isinstance(message, Telemetry):
                values["state"] = sa.case((vehicles.c.state == "unknown", "available"), else_=vehicles.c.state)
            newer = sa.update(vehicles).where(vehicles.c.vehicle_id == vehicle_id, vehicles.c.last_seq < message.seq)
            if conn.execute(newer.values(**values)).rowcount == 0:
                if isinstance(values.get("state"), sa.ColumnElement):
                    values["state"] = "available"
                row = {
                    "vehicle_id": vehicle_id,
                    "operator": message.operator,
                    "kind": message.kind.value,
                    "owner": None,
                    **values,
                }
                conn.execute(self._insert(vehicles), [row])

    # --- trips --------------------------------------------------------------------------------
    def unpaired_lock_vehicles(self) -> list[str]:
        """Vehicles with a stored lock event that no trip ends with yet."""
        e, t = table_of(EventRow), table_of(TripRow)
        ended = sa.select(t.c.trip_id).where(t.c.vehicle_id == e.c.vehicle_id, t.c.end_seq == e.c.seq)
        query = sa.select(e.c.vehicle_id).where(e.c.event_type == EventType.LOCK.value, ~ended.exists()).distinct()
        with self.reading() as conn:
            return sorted(conn.execute(query).scalars())

    def trip_events(self, vehicle_id: str) -> tuple[list[Event], str | None]:
        """The unlock and lock events of a vehicle, and its owner."""
        e = table_of(EventRow)
        kinds = (EventType.UNLOCK.value, EventType.LOCK.value)
        with self.reading() as conn:
            rows = conn.execute(
                sa.select(e).where(e.c.vehicle_id == vehicle_id, e.c.event_type.in_(kinds)).order_by(e.c.seq)
            ).all()
            owner = conn.execute(
                sa.select(VehicleRow.owner).where(VehicleRow.vehicle_id == vehicle_id)
            ).scalar_one_or_none()
        return [event_from_row(r) for r in rows], owner

    def add_trips(self, priced: Iterable[tuple[Trip, Fare]]) -> int:
        """Store priced trips; a trip already stored is left as it is. Returns how many were new."""
        rows = [trip_row(trip, fare) for trip, fare in priced]
        with self.transaction() as conn:
            return self._insert_rows(conn, TripRow, rows)

    # --- epochs -------------------------------------------------------------------------------
    def close_epoch(self, max_trips: int, now_ms: int, max_owners: int = MAX_OWNERS_PER_EPOCH) -> EpochCommit | None:
        """Put up to ``max_trips`` priced trips of at most ``max_owners`` owners into the next epoch.

        Returns None when there are none. Trips left out wait for the next epoch.
        """
        t = table_of(TripRow)
        with self.transaction() as conn:
            query = (
                sa.select(t)
                .where(t.c.status == "priced", t.c.epoch_id.is_(None))
                .order_by(t.c.end_ms, t.c.trip_id)
                .limit(max_trips)
            )
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = within_owner_limit(conn.execute(query).all(), max_owners)
            if not rows:
                return None
            last = conn.execute(sa.select(sa.func.max(EpochRow.epoch_id))).scalar_one_or_none() or 0
            commit = plan_epoch(last + 1, [priced(r) for r in rows])
            conn.execute(
                sa.insert(EpochRow),
                [
                    {
                        "epoch_id": commit.epoch_id,
                        "trip_count": commit.trip_count,
                        "total_micro": commit.total_micro,
                        "trips_root": "0x" + commit.trips_root.hex(),
                        "status": "closed",
                        "closed_ms": now_ms,
                    }
                ],
            )
            conn.execute(
                sa.insert(PayoutRow),
                [
                    {"epoch_id": commit.epoch_id, "owner": owner, "amount_micro": amount}
                    for owner, amount in commit.payouts
                ],
            )
            ids = [r.trip_id for r in rows]
            conn.execute(sa.update(t).where(t.c.trip_id.in_(ids)).values(epoch_id=commit.epoch_id, status="batched"))
        return commit

    def unsettled_epochs(self) -> list[EpochCommit]:
        """Closed epochs not yet settled, oldest first, rebuilt from their trips."""
        t = table_of(TripRow)
        with self.reading() as conn:
            ids = (
                conn.execute(
                    sa.select(EpochRow.epoch_id).where(EpochRow.status == "closed").order_by(EpochRow.epoch_id)
                )
                .scalars()
                .all()
            )
            commits = []
            for epoch_id in ids:
                rows = conn.execute(
                    sa.select(t).where(t.c.epoch_id == epoch_id).order_by(t.c.end_ms, t.c.trip_id)
                ).all()
                commits.append(plan_epoch(epoch_id, [priced(r) for r in rows]))
        return commits

    def mark_settled(self, epoch_id: int, receipt: ChainReceipt | None, now_ms: int) -> None:
        """Record that ``epoch_id`` is on chain, in the transaction of ``receipt`` (None: not found again)."""
        values: dict[str, object] = {"status": "settled", "settled_ms": now_ms}
        if receipt is not None:
            values.update(
                tx_hash=receipt.tx_hash,
                block_number=receipt.block_number,
                block_hash=receipt.block_hash,
                gas_used=receipt.gas_used,
            )
        with self.transaction() as conn:
            conn.execute(sa.update(EpochRow).where(EpochRow.epoch_id == epoch_id).values(**values))
            conn.execute(sa.update(TripRow).where(TripRow.epoch_id == epoch_id).values(status="settled"))

    # --- deployments --------------------------------------------------------------------------
    def deployment(self, chain_id: int) -> str | None:
        with self.reading() as conn:
            query = sa.select(DeploymentRow.address).where(DeploymentRow.chain_id == chain_id)
            return conn.execute(query).scalar_one_or_none()

    def record_deployment(self, chain_id: int, address: str, now_ms: int) -> None:
        with self.transaction() as conn:
            conn.execute(sa.delete(DeploymentRow).where(DeploymentRow.chain_id == chain_id))
            conn.execute(sa.insert(DeploymentRow), [{"chain_id": chain_id, "address": address, "deployed_ms": now_ms}])

    def reset(self) -> None:
        """Drop and recreate every table (for an embedded chain that starts empty)."""
        Base.metadata.drop_all(self.engine)
        Base.metadata.create_all(self.engine)


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    """Readers (the dashboard) and the writer (the aggregator) of a SQLite file do not block each other."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
