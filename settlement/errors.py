"""Errors of the settlement package (the whole hierarchy is drawn in ``sensors.errors``)."""

from __future__ import annotations

from sensors.errors import ServiceUnavailable, SmartZoneError


class SettlementError(SmartZoneError):
    """Base of the settlement errors."""


class StoreUnavailable(ServiceUnavailable, SettlementError):
    """The database cannot be reached."""

    def __init__(self, url: str, detail: str = "") -> None:
        super().__init__("database", url, detail)


class ChainUnavailable(ServiceUnavailable, SettlementError):
    """The chain node cannot be reached."""

    def __init__(self, url: str, detail: str = "") -> None:
        super().__init__("chain node", url, detail)


class ChainError(SettlementError):
    """The chain refused or reverted a transaction, or holds something we did not expect."""


class StoreRefused(SettlementError):
    """The database refused what a batch asked it to store (a value out of range, a broken constraint).

    Unlike ``StoreUnavailable`` this is about the data, not the service: the batch is retried one message at a
    time so that the one that causes it is dead-lettered and the rest are stored.
    """
