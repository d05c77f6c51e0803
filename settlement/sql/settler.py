"""The settler lock on SQL: a PostgreSQL session advisory lock on a connection of its own; SQLite needs none."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from settlement.db import Database, first_line
from settlement.settler import AlwaysSettler, SettlerLock

log = logging.getLogger(__name__)

# One key per schema: each schema is a deployment of its own (the tests' schemas share one database).
_KEY = sa.text("SELECT hashtext('smartzone settler:' || current_schema())::bigint")


class PgSettlerLock:
    """``SettlerLock`` on PostgreSQL: ``pg_try_advisory_lock`` on a dedicated connection in autocommit, held for as
    long as that connection lives; a connection found dead (a ``SELECT 1`` fails) loses it, and the next call
    tries to take it again on a new connection."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._conn: sa.Connection | None = None

    def holds(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql("SELECT 1")
                return True
            except SQLAlchemyError as exc:  # whatever it is, this connection (and its lock) is no longer ours
                log.warning("settler lock lost with its connection: %s", first_line(exc))
                self._drop()
        try:
            conn = self._database.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except (OperationalError, InterfaceError):
            return False  # the database is away: the unit of work says so where it matters
        try:
            key = conn.execute(_KEY).scalar_one()
            taken = bool(conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar_one())
        except BaseException as exc:  # the lock may or may not be on this session: the connection goes for good
            _discard(conn)
            if isinstance(exc, OperationalError | InterfaceError):
                return False
            raise
        if not taken:
            conn.close()
            return False
        self._conn = conn
        log.info("this aggregator is the settler (advisory lock %d taken)", key)
        return True

    def release(self) -> None:
        """Let the lock go and close its connection, whatever happens: back to the pool once unlocked, discarded if
        the unlock failed (never pooled with the lock on its session)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            key = conn.execute(_KEY).scalar_one()
            conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
        except BaseException as exc:
            _discard(conn)  # the lock goes with its session
            if isinstance(exc, OperationalError | InterfaceError):
                return  # the database is away: the lock is gone with the connection
            raise
        conn.close()

    def _drop(self) -> None:
        """Close the connection for good (never back to the pool with the lock on its session)."""
        assert self._conn is not None
        conn, self._conn = self._conn, None
        _discard(conn)


def _discard(conn: sa.Connection) -> None:
    """Invalidate and close ``conn``: its DBAPI connection is closed, never given back to the pool."""
    try:
        conn.invalidate()
    except SQLAlchemyError:
        pass
    finally:
        conn.close()


def settler_lock(database: Database) -> SettlerLock:
    """The settler lock of ``database``: an advisory lock on PostgreSQL; on SQLite none is needed (the data
    folder's instance lock, or the file's own write lock, makes one process its writer)."""
    if database.engine.dialect.name == "postgresql":
        return PgSettlerLock(database)
    return AlwaysSettler()
