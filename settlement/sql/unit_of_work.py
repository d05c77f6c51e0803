"""The SQL unit of work: the four repositories on one connection, in one transaction."""

from __future__ import annotations

from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from settlement.db import Database, about_data, first_line
from settlement.errors import StoreRefused, StoreUnavailable
from settlement.sql.epochs import SqlEpochs
from settlement.sql.readings import SqlReadings
from settlement.sql.registry import SqlRegistry
from settlement.sql.trips import SqlTrips


class SqlUnitOfWork:
    """``UnitOfWork`` on a ``Database``: enter opens a transaction, ``commit`` commits, leaving rolls back.

    A lost database (connection refused or dropped) becomes ``StoreUnavailable`` naming the URL; an error
    about the data itself (an integer out of range, a constraint) becomes ``StoreRefused``, so that the caller
    can isolate the message that caused it.
    """

    readings: SqlReadings
    trips: SqlTrips
    epochs: SqlEpochs
    registry: SqlRegistry

    def __init__(self, database: Database) -> None:
        self._database = database
        self.url = database.url
        self._conn: sa.Connection | None = None
        self._tx: sa.RootTransaction | None = None

    def __enter__(self) -> SqlUnitOfWork:
        try:
            self._conn = self._database.engine.connect()
            self._tx = self._conn.begin()
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailable(self.url, first_line(exc)) from None
        self.readings = SqlReadings(self._conn)
        self.trips = SqlTrips(self._conn)
        self.epochs = SqlEpochs(self._conn)
        self.registry = SqlRegistry(self._conn)
        return self

    def commit(self) -> None:
        assert self._tx is not None, "commit inside `with`"
        try:
            self._tx.commit()
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailable(self.url, first_line(exc)) from None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        conn, tx = self._conn, self._tx
        self._conn = self._tx = None
        if conn is None:
            return
        try:
            if tx is not None and tx.is_active:
                tx.rollback()
            conn.close()
        except (OperationalError, InterfaceError):
            conn.invalidate()
        if isinstance(exc, (OperationalError, InterfaceError)) and not about_data(exc):
            raise StoreUnavailable(self.url, first_line(exc)) from None
        if isinstance(exc, SQLAlchemyError | OverflowError):  # the SQLite driver raises OverflowError itself
            raise StoreRefused(f"the database {self.url} refused it: {first_line(exc)}") from None
