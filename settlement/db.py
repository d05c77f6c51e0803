"""The settlement database: engine, transactions, error translation and Alembic migrations.

The one module that opens engines. ``Database.connect`` checks that the schema is at the revision this
code expects and refuses one that is behind (run ``smartzone db upgrade``) or ahead (a newer smartzone
migrated it); ``upgrade`` brings it to the head revision.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from sensors.redaction import redact_url
from settlement.errors import SettlementError, StoreUnavailable

UPGRADE_COMMAND = "smartzone db upgrade"


class SchemaMismatch(SettlementError):
    """The database's schema revision is not the one this code works with."""


def redact(url: str) -> str:
    """``url`` without its credentials, for messages (the platform's one rule, ``sensors.redaction``)."""
    try:
        sa.make_url(url)
    except sa.exc.ArgumentError:
        return "<unparsable database URL>"
    return redact_url(url)


def first_line(exc: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's statement dump."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Database:
    """An engine on the settlement database and the transactions the repositories run in."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = redact(url)

    @classmethod
    def open(cls, url: str) -> Database:
        """Open ``url`` and check it answers; ``StoreUnavailable`` naming the URL if it can't."""
        kwargs: dict[str, object] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        elif url.startswith("postgresql"):
            kwargs["connect_args"] = {"connect_timeout": 5}  # a host that stops answering must not hang reads
        engine: Engine | None = None
        try:
            engine = sa.create_engine(url, **kwargs)
            if engine.dialect.name == "sqlite":
                file_backed = engine.url.database not in (None, "", ":memory:")
                sa.event.listen(engine, "connect", _sqlite_wal if file_backed else _sqlite_foreign_keys)
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            if engine.dialect.name not in ("sqlite", "postgresql"):
                raise SettlementError(f"unsupported database {engine.dialect.name}: use SQLite or PostgreSQL")
        except BaseException as exc:
            if engine is not None:
                engine.dispose()  # no pooled connection outlives a refusal
            if isinstance(exc, SQLAlchemyError | ImportError):
                raise StoreUnavailable(redact(url), first_line(exc)) from None
            raise
        return cls(engine, url)

    @classmethod
    def connect(cls, url: str) -> Database:
        """Open ``url`` and require its schema at the head revision (``SchemaMismatch`` says what to run); a
        database refused is closed before the error leaves."""
        database = cls.open(url)
        try:
            database.check_revision()
        except BaseException:
            database.close()
            raise
        return database

    def close(self) -> None:
        """Close the connections in the pool: those still checked out (a unit of work, the settler lock) are to be
        closed or released first, or they stay open until garbage-collected."""
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- migrations ---------------------------------------------------------------------------
    def _config(self, conn: sa.Connection | None = None) -> Config:
        config = Config()
        config.set_main_option("script_location", str(resources.files("settlement") / "migrations"))
        config.attributes["connection"] = conn
        return config

    def head_revision(self) -> str:
        head = ScriptDirectory.from_config(self._config()).get_current_head()
        assert head is not None, "the migrations have a head"
        return head

    def current_revision(self) -> str | None:
        with self.reading() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def check_revision(self) -> None:
        """Refuse a database whose schema is behind or ahead of this code, naming what to do."""
        current, head = self.current_revision(), self.head_revision()
        if current == head:
            return
        known = {s.revision for s in ScriptDirectory.from_config(self._config()).walk_revisions()}
        if current is None:
            raise SchemaMismatch(f"the database {self.url} has no schema yet: run `{UPGRADE_COMMAND}`")
        if current not in known:
            raise SchemaMismatch(
                f"the database {self.url} is at schema revision {current}, which this version of smartzone does "
                f"not know (it expects {head}): it was migrated by a newer smartzone; upgrade smartzone"
            )
        raise SchemaMismatch(
            f"the database {self.url} is at schema revision {current}, behind {head}: run `{UPGRADE_COMMAND}`"
        )

    def upgrade(self) -> tuple[str | None, str]:
        """Migrate the schema to the head revision; returns (revision before, revision after)."""
        before = self.current_revision()
        with self._translated(), self.engine.begin() as conn:
            command.upgrade(self._config(conn), "head")
        return before, self.head_revision()

    def reset(self) -> None:
        """Drop every table and migrate from scratch (for an embedded chain that starts empty)."""
        with self._translated(), self.engine.begin() as conn:
            meta = sa.MetaData()
            meta.reflect(conn)
            meta.drop_all(conn)
        self.upgrade()

    # --- transactions -------------------------------------------------------------------------
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
            if about_data(exc):
                raise
            raise StoreUnavailable(self.url, first_line(exc)) from None


def about_data(exc: OperationalError | InterfaceError) -> bool:
    """Whether an "operational" error is about one row's data: SQLite reports an integer too large this way."""
    text = str(exc.orig).lower()
    return "too large" in text or "overflow" in text


def _sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    """SQLite checks foreign keys only when asked, per connection; PostgreSQL always does."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    """Readers (the dashboard) and the writer (the aggregator) of a SQLite file do not block each other."""
    _sqlite_foreign_keys(dbapi_connection, _record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
