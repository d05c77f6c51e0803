"""The SQL read model behind the dashboard (implements ``settlement.views.ReadModel``)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import sqlalchemy as sa

from sensors.address import Address, InvalidAddress
from settlement.db import Database
from settlement.lifecycle import ON_CHAIN_EPOCH, SETTLED, UNSETTLED, TripStatus
from settlement.schema import (
    AddressType,
    EpochRow,
    OwnerTotalRow,
    PayoutRow,
    RejectCountRow,
    RejectRow,
    TallyRow,
    TelemetryRow,
    TripRow,
    VehicleRow,
    table_of,
)
from settlement.views import (
    EpochView,
    InvalidCursor,
    Kpis,
    NotCommitted,
    PayoutView,
    RegistryProofView,
    Stats,
    TrackPoint,
    TripView,
    VehicleView,
    check_sort,
    cursor_key,
    vehicle_cursor,
)

PRICED_OR_LATER = sorted(s.value for s in (TripStatus.PRICED, *UNSETTLED, *SETTLED, TripStatus.ADJUSTED))
BEFORE_PRICED = sorted(s.value for s in TripStatus if s.value not in PRICED_OR_LATER)
_ON_CHAIN = sorted(s.value for s in ON_CHAIN_EPOCH)


class SqlReadModel:
    """Read-only queries over the settlement database: keyset pages over indexed orders, and totals kept as the
    data changes (``owner_totals``, ``tallies``) rather than aggregated over every trip or reading."""

    def __init__(self, database: Database, signing_chain_id: int | None = None) -> None:
        """``signing_chain_id``: the chain id of the EIP-712 domain riders sign in (None: the settlement chain's)."""
        self._db = database
        self._signing_chain_id = signing_chain_id

    def vehicles(
        self,
        limit: int = 100,
        cursor: str | None = None,
        *,
        state: str | None = None,
        kind: str | None = None,
        owner: str | None = None,
        online: bool | None = None,
        search: str | None = None,
        sort: str = "vehicle_id",
    ) -> list[VehicleView]:
        """Vehicles filtered and sorted (``settlement.views.VEHICLE_SORTS``): by id through the primary key; the
        other sorts are a top-N sort of the (filtered) fleet, tens of thousands of rows at most (an index would not
        give PostgreSQL descending order with nulls last)."""
        query = vehicles_query(
            limit, cursor, state=state, kind=kind, owner=owner, online=online, search=search, sort=sort
        )
        with self._db.reading() as conn:
            rows = conn.execute(query).all()
        return [_vehicle(r) for r in rows]

    def fleet(self) -> list[VehicleView]:
        """Every vehicle by id in one core select (addresses read as text, no row objects of the ORM)."""
        v = table_of(VehicleRow)
        with self._db.reading() as conn:
            rows = conn.execute(sa.select(*_vehicle_columns(v)).order_by(v.c.vehicle_id)).all()
        return [_vehicle(r) for r in rows]

    def vehicles_received_since(self, since_ms: int, limit: int = 10_000) -> list[VehicleView]:
        """Through the ``received_ms`` index; inclusive, so that a row stamped in the same millisecond as the last
        one a client saw, but committed after its read, is not missed (the client may see a row twice)."""
        with self._db.reading() as conn:
            rows = conn.execute(received_since_query(since_ms, limit)).all()
        return [_vehicle(r) for r in rows]

    def vehicle(self, vehicle_id: str) -> VehicleView | None:
        v = table_of(VehicleRow)
        with self._db.reading() as conn:
            row = conn.execute(sa.select(*_vehicle_columns(v)).where(v.c.vehicle_id == vehicle_id)).first()
        return _vehicle(row) if row else None

    def track(self, vehicle_id: str, *, since_ms: int | None = None, limit: int = 500) -> list[TrackPoint]:
        """The raw telemetry still kept (``smartzone retention`` folds older readings into per-minute tracks),
        read newest first along the (vehicle, seq) key and returned oldest first."""
        t = table_of(TelemetryRow)
        query = (
            sa.select(t.c.timestamp_ms, t.c.lat, t.c.lon, t.c.speed_mps, t.c.battery_pct, t.c.seq)
            .where(t.c.vehicle_id == vehicle_id)
            .order_by(t.c.seq.desc())
            .limit(limit)
        )
        if since_ms is not None:
            query = query.where(t.c.timestamp_ms >= since_ms)
        with self._db.reading() as conn:
            rows = sorted(conn.execute(query).all(), key=lambda r: (r.timestamp_ms, r.seq))
        return [TrackPoint(r.timestamp_ms, r.lat, r.lon, r.speed_mps, r.battery_pct) for r in rows]

    def trips(
        self,
        limit: int = 100,
        vehicle_id: str | None = None,
        rider: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        *,
        owner: str | None = None,
        kind: str | None = None,
        epoch_id: int | None = None,
        from_ms: int | None = None,
        to_ms: int | None = None,
    ) -> list[TripView]:
        query = trips_query(
            limit, vehicle_id=vehicle_id, rider=rider, status=status, cursor=cursor,
            owner=owner, kind=kind, epoch_id=epoch_id, from_ms=from_ms, to_ms=to_ms,
        )  # fmt: skip
        with self._db.reading() as conn:
            return [_trip(r) for r in conn.execute(query).all()]

    def running_trips(self, rider: str | None = None, limit: int = 1000) -> list[TripView]:
        with self._db.reading() as conn:
            return [_trip(r) for r in conn.execute(running_query(rider, limit)).all()]

    def kpis(self, now_ms: int, day_start_ms: int) -> Kpis:
        """One range scan of the (end_ms, trip_id) index over the day (and the last hour, if it began before)."""
        with self._db.reading() as conn:
            row = conn.execute(kpis_query(now_ms, day_start_ms)).one()
        hour, today, revenue, duration, distance = row
        today = int(today or 0)
        revenue = int(revenue or 0)
        return Kpis(
            trips_last_hour=int(hour or 0),
            trips_today=today,
            revenue_today_micro=revenue,
            avg_duration_s=float(duration) if today else None,
            avg_distance_m=float(distance) if today and distance is not None else None,
            avg_fare_micro=(revenue + today // 2) // today if today else None,  # rounded half up, in integers
        )

    def rejects_since(self, since_ms: int) -> dict[str, int]:
        """From the dead-letter samples through their ``received_ms`` index: samples are pruned by age and number
        (``settlement.dead_letters``), so a window longer than what they keep counts fewer than arrived."""
        r = table_of(RejectRow)
        query = sa.select(r.c.code, sa.func.count()).where(r.c.received_ms >= since_ms).group_by(r.c.code)
        with self._db.reading() as conn:
            return {code: int(n) for code, n in conn.execute(query).all()}

    def trip(self, trip_id: str) -> TripView | None:
        t = table_of(TripRow)
        with self._db.reading() as conn:
            row = conn.execute(sa.select(t).where(t.c.trip_id == trip_id)).first()
        return _trip(row) if row else None

    def trip_receipt(self, trip_id: str) -> dict[str, Any] | None:
        from settlement.epochs import LeafContext
        from settlement.receipts import build_receipt
        from settlement.sql.registry import SqlRegistry
        from settlement.sql.trips import SqlTrips

        e = table_of(EpochRow)
        with self._db.reading() as conn:
            trips = SqlTrips(conn)
            trip = trips.get([trip_id]).get(trip_id)
            if trip is None:
                return None
            epoch = None
            if trip.epoch_id is not None:
                epoch = conn.execute(sa.select(e).where(e.c.epoch_id == trip.epoch_id)).first()
            if trip.epoch_id is None or epoch is None or epoch.status not in _ON_CHAIN:
                raise NotCommitted(f"trip {trip_id} is {trip.status}: it has a receipt once its epoch is on chain")
            deployment = SqlRegistry(conn).any_deployment()
            epoch_trips = trips.in_epoch(trip.epoch_id)
        if deployment is None:
            raise NotCommitted(f"trip {trip_id}: no settlement contract is recorded in this database")
        chain_id, contract = deployment
        signing = epoch.signing_chain_id or self._signing_chain_id  # the epoch's own, recorded when it closed
        context = LeafContext(chain_id, Address.parse(contract), signing)
        return build_receipt(trip, epoch_trips, context, tx_hash=epoch.tx_hash, status=epoch.status)

    def balance_proof(self, account: Address) -> dict[str, Any] | None:
        from settlement.balances import BalanceTree
        from settlement.claims import balance_document
        from settlement.clearing import ZERO_ROOT
        from settlement.sql.epochs import SqlEpochs
        from settlement.sql.registry import SqlRegistry

        with self._db.reading() as conn:
            epochs = SqlEpochs(conn)
            last = epochs.last_committed()
            commit = epochs.commit_of(last) if last else None
            if commit is None or commit.balances_root == ZERO_ROOT:
                return None
            book = epochs.balances(upto=last)
            deployment = SqlRegistry(conn).any_deployment()
        if account not in book or deployment is None:
            return None
        chain_id, contract = deployment
        tree = BalanceTree.of(book, chain_id, contract)  # every account: the proof needs the whole tree
        return balance_document(tree.proof(account, last), commit.balances_root, chain_id, contract)

    def epochs(self, limit: int = 100, cursor: str | None = None) -> list[EpochView]:
        e = table_of(EpochRow)
        query = sa.select(e).order_by(e.c.epoch_id.desc()).limit(limit)
        if cursor is not None:
            query = query.where(e.c.epoch_id < cursor_key(cursor, int)[0])
        with self._db.reading() as conn:
            rows = conn.execute(query).all()
        return [
            EpochView(
                r.epoch_id,
                r.trip_count,
                r.total_micro,
                r.trips_root,
                r.status,
                r.tx_hash,
                r.block_number,
                r.gas_used,
                r.closed_ms,
                r.settled_ms,
                r.registry_root,
            )
            for r in rows
        ]

    def payouts(self, limit: int = 100, cursor: str | None = None, *, owner: str | None = None) -> list[PayoutView]:
        """Owners' totals of batched and settled trips (kept per epoch) plus their priced trips not yet batched
        (few: read through the status index); only ``owner``'s (an address, ``ValueError`` else) when given.

        Claims and withdrawals happen on chain (``smartzone claim``/``withdraw``, ``settlement.claims``) and the
        database records none of them: ``claimed_micro`` is 0 and ``claimable_micro`` is ``settled_micro`` minus
        it, an upper bound of what the owner can still claim (the contract knows the exact figure).
        """
        o, t = table_of(OwnerTotalRow), table_of(TripRow)
        kept_owner, trip_owner = _text(o.c.owner), _text(t.c.owner)
        priced = t.c.status == TripStatus.PRICED.value  # a priced trip has its owner (the payee)
        kept, waiting = (
            sa.select(kept_owner.label("owner")),
            sa.select(trip_owner.label("owner")).where(priced, trip_owner.is_not(None)),
        )
        if cursor is not None:
            after = str(_owner_key(cursor))
            kept, waiting = kept.where(kept_owner > after), waiting.where(trip_owner > after)
        if owner is not None:
            only = _address(owner)
            kept, waiting = kept.where(kept_owner == only), waiting.where(trip_owner == only)
        owners = sa.union(kept, waiting).subquery()
        page_query = sa.select(owners.c.owner).order_by(owners.c.owner).limit(limit)
        with self._db.reading() as conn:
            page = [owner for (owner,) in conn.execute(page_query)]
            if not page:
                return []
            columns = (kept_owner, o.c.trip_count, o.c.settled_micro, o.c.pending_micro)
            totals = {
                owner: (n, settled, pending)
                for owner, n, settled, pending in conn.execute(sa.select(*columns).where(kept_owner.in_(page)))
            }
            waiting_sums = sa.select(trip_owner, sa.func.count(), sa.func.coalesce(sa.func.sum(t.c.fare_micro), 0))
            extra = {
                owner: (int(n), int(total))
                for owner, n, total in conn.execute(
                    waiting_sums.where(priced, trip_owner.in_(page)).group_by(trip_owner)
                )
            }
        views = []
        for payee in page:
            n, settled, pending = totals.get(payee, (0, 0, 0))
            more_n, more_pending = extra.get(payee, (0, 0))
            claimed = 0  # claims live on chain only (see the docstring)
            views.append(
                PayoutView(
                    payee, int(n) + more_n, int(settled), int(pending) + more_pending, claimed, int(settled) - claimed
                )
            )
        return views

    def stats(self) -> Stats:
        """Counts from kept totals: the tallies of the reading tables (rows ever stored: what retention folded or
        pruned still counts), the owners' totals of trips in epochs plus an index count of the trips priced and not
        batched (or adjusted); vehicles and epochs are counted."""
        with self._db.reading() as conn:
            row = conn.execute(_stats_query()).one()
        return Stats(*(int(x) for x in row))

    def rejects_by_code(self) -> dict[str, int]:
        """Dead letters per reason code, from the counts kept forever (not the samples, which are pruned)."""
        r = table_of(RejectCountRow)
        with self._db.reading() as conn:
            rows = conn.execute(sa.select(r.c.code, r.c["count"]).where(r.c["count"] > 0)).all()
        return {code: int(n) for code, n in rows}

    def rejected_trips_by_reason(self) -> dict[str, int]:
        """How many trips are held as rejected, per reason code."""
        t = table_of(TripRow)
        query = (
            sa.select(t.c.reason, sa.func.count()).where(t.c.status == TripStatus.REJECTED.value).group_by(t.c.reason)
        )
        with self._db.reading() as conn:
            return {reason: int(n) for reason, n in conn.execute(query).all()}

    def registry_proof(self, vehicle_id: str) -> RegistryProofView | None:
        from settlement.registry import Registry
        from settlement.sql.registry import SqlRegistry

        with self._db.reading() as conn:
            repository = SqlRegistry(conn)
            registry = Registry(repository.operators(), repository.entries())
        entry = registry.latest(vehicle_id)
        if entry is None:
            return None
        reg = entry.registration
        return RegistryProofView(
            vehicle_id=reg.vehicle_id,
            operator=reg.operator,
            kind=reg.kind.value,
            device=str(reg.device),
            payee=str(reg.payee),
            valid_from_ms=reg.valid_from_ms,
            valid_until_ms=reg.valid_until_ms,
            revoked_ms=entry.revoked_ms,
            leaf=entry.leaf(),
            proof=["0x" + step.hex() for step in registry.proof(entry)],
            root="0x" + registry.root.hex(),
        )

    def payout_totals(self) -> dict[str, int]:
        """Settled micro-EUR per owner (EIP-55) according to the epochs' payout rows (to compare with the chain)."""
        p, e = table_of(PayoutRow), table_of(EpochRow)
        query = (
            sa.select(p.c.owner, sa.func.sum(p.c.amount_micro))
            .join(e, e.c.epoch_id == p.c.epoch_id)
            .where(e.c.status.in_(_ON_CHAIN))
            .group_by(p.c.owner)
        )
        with self._db.reading() as conn:
            return {str(owner): int(total) for owner, total in conn.execute(query).all()}


def trips_query(
    limit: int,
    *,
    vehicle_id: str | None = None,
    rider: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    owner: str | None = None,
    kind: str | None = None,
    epoch_id: int | None = None,
    from_ms: int | None = None,
    to_ms: int | None = None,
) -> sa.Select[Any]:
    """The statement of ``SqlReadModel.trips`` (its order is served by an index; see the integration tests).

    ``owner`` is an address in any case (``ValueError`` else); the time range is ``from_ms <= end < to_ms``,
    on the start for a trip without an end.
    """
    t = table_of(TripRow)
    # priced trips and later always have an end; a list of another status may hold trips without one, last
    may_lack_end = status is not None and status not in PRICED_OR_LATER
    end = t.c.end_ms.desc().nulls_last() if may_lack_end else t.c.end_ms.desc()
    query = sa.select(*_as_text(t)).order_by(end, t.c.trip_id.desc()).limit(limit)
    # "not before priced" rather than "in (priced, …)": an IN list would draw the planner to the status index
    # and a sort of every trip; this way the (end_ms, trip_id) index or the rider's or vehicle's serves it
    query = query.where(t.c.status == status) if status else query.where(t.c.status.not_in(BEFORE_PRICED))
    equal = {"vehicle_id": vehicle_id, "rider": rider, "kind": kind, "epoch_id": epoch_id}
    query = query.where(*(t.c[name] == value for name, value in equal.items() if value is not None))
    if owner is not None:
        query = query.where(_text(t.c.owner) == _address(owner))
    query = query.where(*_time_range(t, from_ms, to_ms, may_lack_end))
    if cursor is not None:
        end_ms, trip_id = cursor_key(cursor, int, str)
        if end_ms is None:
            query = query.where(t.c.end_ms.is_(None), t.c.trip_id < trip_id)
        else:
            before = sa.tuple_(t.c.end_ms, t.c.trip_id) < sa.tuple_(sa.literal(end_ms), sa.literal(trip_id))
            query = query.where(sa.or_(before, t.c.end_ms.is_(None)) if may_lack_end else before)
    return query


def _time_range(
    t: sa.Table, from_ms: int | None, to_ms: int | None, may_lack_end: bool
) -> list[sa.ColumnElement[bool]]:
    """``from_ms <= end < to_ms``, or on the start of a trip without an end when the list may hold such trips."""
    if from_ms is None and to_ms is None:
        return []

    def within(column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        bounds = [column >= from_ms] if from_ms is not None else []
        bounds += [column < to_ms] if to_ms is not None else []
        return sa.and_(*bounds)

    if not may_lack_end:
        return [within(t.c.end_ms)]
    return [sa.or_(within(t.c.end_ms), sa.and_(t.c.end_ms.is_(None), within(t.c.start_ms)))]


def vehicles_query(
    limit: int,
    cursor: str | None = None,
    *,
    state: str | None = None,
    kind: str | None = None,
    owner: str | None = None,
    online: bool | None = None,
    search: str | None = None,
    sort: str = "vehicle_id",
) -> sa.Select[Any]:
    """The statement of ``SqlReadModel.vehicles``: filtered, in ``sort`` order (nulls last, the id breaking ties),
    after ``cursor`` (which must be of the same sort: ``InvalidCursor`` else)."""
    v = table_of(VehicleRow)
    column = {"battery_pct": v.c.battery_pct, "-battery_pct": v.c.battery_pct, "-received_ms": v.c.received_ms}
    descending = check_sort(sort).startswith("-")
    query = sa.select(*_vehicle_columns(v)).limit(limit)
    equal = {"state": state, "kind": kind, "online": online}
    query = query.where(*(v.c[name] == value for name, value in equal.items() if value is not None))
    if owner is not None:
        query = query.where(_text(v.c.owner) == _address(owner))
    if search:
        query = query.where(sa.func.lower(v.c.vehicle_id).contains(search.lower(), autoescape=True))
    if sort == "vehicle_id":
        query = query.order_by(v.c.vehicle_id)
        if cursor is not None:
            query = query.where(v.c.vehicle_id > vehicle_cursor(cursor, sort)[1])
        return query
    key = column[sort]
    query = query.order_by((key.desc() if descending else key.asc()).nulls_last(), v.c.vehicle_id)
    if cursor is not None:
        value, after = vehicle_cursor(cursor, sort)
        if value is None:  # past every vehicle with a value: the nulls, by id
            query = query.where(key.is_(None), v.c.vehicle_id > after)
        else:
            beyond = key < value if descending else key > value
            query = query.where(sa.or_(beyond, sa.and_(key == value, v.c.vehicle_id > after), key.is_(None)))
    return query


def running_query(rider: str | None, limit: int) -> sa.Select[Any]:
    """The statement of ``SqlReadModel.running_trips``: open trips along the (status, start_ms, trip_id) index, or a
    rider's along theirs (open trips have no end)."""
    t = table_of(TripRow)
    query = (
        sa.select(*_as_text(t))
        .where(t.c.status == TripStatus.OPEN.value)
        .order_by(t.c.start_ms.desc(), t.c.trip_id.desc())
        .limit(limit)
    )
    return query if rider is None else query.where(t.c.rider == rider, t.c.end_ms.is_(None))


def received_since_query(since_ms: int, limit: int) -> sa.Select[Any]:
    """The statement of ``SqlReadModel.vehicles_received_since``, along the (received_ms, vehicle_id) index."""
    v = table_of(VehicleRow)
    return (
        sa.select(*_vehicle_columns(v))
        .where(v.c.received_ms >= since_ms)
        .order_by(v.c.received_ms, v.c.vehicle_id)
        .limit(limit)
    )


def kpis_query(now_ms: int, day_start_ms: int) -> sa.Select[Any]:
    """The statement of ``SqlReadModel.kpis``: trips priced or later ended since ``min(day start, an hour ago)``,
    each figure over its own part of the range. A trip ended "after now" counts as recent: its device's clock runs
    ahead of ours (a simulation at speed 30 does, by design), and leaving it out would show an idle fleet."""
    t = table_of(TripRow)
    hour_ago = now_ms - 3_600_000
    today = t.c.end_ms >= day_start_ms
    charged = sa.func.coalesce(t.c.charged_micro, t.c.fare_micro)  # what the rider pays (``TripView``)
    return sa.select(
        sa.func.count().filter(t.c.end_ms >= hour_ago),
        sa.func.count().filter(today),
        sa.func.sum(charged).filter(today),
        sa.func.avg(t.c.duration_s).filter(today),
        sa.func.avg(t.c.distance_m).filter(today),
    ).where(
        t.c.end_ms >= min(day_start_ms, hour_ago),
        t.c.status.not_in(BEFORE_PRICED),
    )


@cache
def _stats_query() -> sa.Select[Any]:
    """The one statement of ``SqlReadModel.stats``, built once."""

    def count(table: sa.Table, *where: sa.ColumnElement[bool]) -> sa.ScalarSelect[int]:
        return sa.select(sa.func.count()).select_from(table).where(*where).scalar_subquery()

    def tally(name: str) -> sa.ScalarSelect[int]:
        n = table_of(TallyRow)
        return sa.select(sa.func.coalesce(sa.func.sum(n.c.n), 0)).where(n.c.name == name).scalar_subquery()

    v, e, t, o = table_of(VehicleRow), table_of(EpochRow), table_of(TripRow), table_of(OwnerTotalRow)
    outside_epochs = [TripStatus.PRICED.value, TripStatus.ADJUSTED.value]
    return sa.select(  # the vehicles in one scan; the rest from small tables and an index
        sa.func.count(),
        sa.func.count().filter(v.c.online.is_(True)),
        tally("telemetry"),
        tally("events"),
        tally("rejects"),
        sa.select(sa.func.coalesce(sa.func.sum(o.c.trip_count), 0)).scalar_subquery()
        + count(t, t.c.status.in_(outside_epochs)),
        count(e),
        sa.select(sa.func.coalesce(sa.func.sum(e.c.total_micro), 0)).where(e.c.status.in_(_ON_CHAIN)).scalar_subquery(),
    ).select_from(v)


def _text(column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """An address column read and compared as its stored EIP-55 text: the views want text, and checking the
    checksum of every address of a page (a Keccak hash each) would cost more than the query."""
    return sa.type_coerce(column, sa.String)


def _as_text(table: sa.Table) -> list[sa.ColumnElement[Any]]:
    """The columns of ``table``, addresses as text (``_text``)."""
    return [_text(c).label(c.name) if isinstance(c.type, AddressType) else c for c in table.columns]


def _address(owner: str) -> str:
    """An owner's address in its stored EIP-55 text, from any case; ``ValueError`` naming it if it is none."""
    try:
        return str(Address.parse(owner))
    except InvalidAddress:
        raise ValueError(f"not an owner address: {owner[:60]!r}") from None


def _owner_key(cursor: str) -> Address:
    (owner,) = cursor_key(cursor, str)
    try:
        return Address.parse(str(owner))
    except InvalidAddress:
        raise InvalidCursor(f"not a cursor of this list: {cursor!r}") from None


_VEHICLE_VIEW_COLUMNS = (
    "vehicle_id", "operator", "kind", "owner", "state", "online", "battery_pct", "lat", "lon", "last_seen_ms",
    "received_ms", "fault_code", "state_ms",
)  # fmt: skip


def _vehicle_columns(v: sa.Table) -> list[sa.ColumnElement[Any]]:
    """The columns a ``VehicleView`` is made of, in its order (the owner as text)."""
    return [_text(v.c[n]).label(n) if n == "owner" else v.c[n] for n in _VEHICLE_VIEW_COLUMNS]


def _vehicle(r: sa.Row) -> VehicleView:
    """A view of a row of ``_vehicle_columns``: they come in the view's order, the owner as text and ``online`` as a
    bool (SQLAlchemy's Boolean on SQLite too), so the row is passed as is (attribute access per column would cost
    more than the query for the whole fleet)."""
    return VehicleView(*r)


def _trip(r: sa.Row) -> TripView:
    return TripView(
        r.trip_id,
        r.vehicle_id,
        r.kind,
        str(r.owner) if r.owner else None,
        r.rider,
        r.start_ms,
        r.end_ms,
        r.duration_s,
        r.distance_m,
        r.fare_micro,
        r.status,
        r.epoch_id,
        r.reason,
        r.charged_micro if r.charged_micro is not None else r.fare_micro,
        _signed(r.voucher),
    )


def _signed(voucher: str | None) -> int | None:
    """The cumulative amount of a stored voucher (its wire object as JSON), None without one."""
    if voucher is None:
        return None
    amount = json.loads(voucher).get("cumulative_micro")
    return amount if isinstance(amount, int) else None
