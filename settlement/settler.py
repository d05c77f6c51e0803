"""One settler at a time: the lock an aggregator holds while closing and settling epochs is its job (a port).

Any number of aggregators ingest into one database; only the holder of the settler lock closes epochs and sends
them to the chain, so that two never send the same epoch or race for the account's nonce. On PostgreSQL the lock
is a session advisory lock on a connection of its own (``settlement.sql.settler``): it is the holder's while that
connection lives, and another aggregator takes it over within a round of maintenance once the holder stops or
its connection is lost. On SQLite the data folder's instance lock already makes one process the only writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class SettlerLock(Protocol):
    """The right to close and settle epochs, held by at most one aggregator of a database."""

    def holds(self) -> bool:
        """Whether this aggregator is the settler now: take the lock if it is free, check it is still held if it
        was taken (a lost connection loses it). Never blocks; a database that is away raises
        ``StoreUnavailable``."""
        ...

    def release(self) -> None:
        """Let another aggregator settle (on stop)."""
        ...


class AlwaysSettler:
    """The lock where nothing else can settle (SQLite: the instance lock already holds the data folder)."""

    def holds(self) -> bool:
        return True

    def release(self) -> None:
        return None


@dataclass
class FakeSettlerLocks:
    """Advisory locks in memory for tests: ``for_(name)`` is one aggregator's lock; ``lose(name)`` drops its
    connection."""

    holder: str | None = None

    def for_(self, name: str) -> FakeSettlerLock:
        return FakeSettlerLock(self, name)

    def lose(self, name: str) -> None:
        if self.holder == name:
            self.holder = None


@dataclass
class FakeSettlerLock:
    locks: FakeSettlerLocks
    name: str

    def holds(self) -> bool:
        if self.locks.holder is None:
            self.locks.holder = self.name
        return self.locks.holder == self.name

    def release(self) -> None:
        if self.locks.holder == self.name:
            self.locks.holder = None
