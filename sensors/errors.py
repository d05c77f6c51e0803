"""The project's error hierarchy, drawn once.

    SmartZoneError                   base of every error the project raises on purpose
    ├── InvalidReading               (sensors) bytes that are not a valid v1 message; ``reason`` and ``code``
    │   └── InvalidAddress           (sensors.address) not an address, or a failed EIP-55 checksum
    ├── ServiceUnavailable           an external service cannot be reached; the message names its URL
    │   ├── BrokerUnavailable        (sensors) the MQTT broker
    │   ├── StoreUnavailable         (settlement) the database; also a SettlementError
    │   └── ChainUnavailable         (settlement) the chain node; also a SettlementError
    └── SettlementError              (settlement) base of the settlement errors
        ├── ChainError               the chain refused or reverted a transaction, or disagrees with the database
        ├── StoreRefused             the database refused a value or constraint of one batch (not an outage)
        ├── SchemaMismatch           (settlement.db) the database's schema revision is not this code's
        ├── RegistryError            (settlement.registry) a registration the registry refuses; ``code`` says why
        ├── IllegalTransition        (settlement.lifecycle) a trip or epoch status change the life cycle forbids
        └── ExportError              (settlement.exports) an export into a non-empty directory, an unknown format

Adapters translate library errors into these; entry points turn them into a one-line message
and an exit code (CLI) or a problem-details response (HTTP).
"""

from __future__ import annotations


class SmartZoneError(Exception):
    """Base of every error the project raises on purpose."""


class InvalidReading(SmartZoneError):
    """A payload that is not a valid message; ``reason`` says why in one line, ``code`` names the rule.

    Codes are short snake_case words counted per rule (``malformed``, ``too_large``, ``schema``,
    ``topic_mismatch``, ``out_of_range``, ``bad_address``, ``bad_signature``, ...); the full list of codes is
    ``settlement.reasons.RejectCode``.
    """

    def __init__(self, reason: str, code: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class ServiceUnavailable(SmartZoneError):
    """An external service cannot be reached; the message names its URL."""

    def __init__(self, service: str, url: str, detail: str = "") -> None:
        text = f"cannot reach the {service} at {url}"
        if detail:
            text += f": {detail}"
        super().__init__(text)
        self.service = service
        self.url = url


class BrokerUnavailable(ServiceUnavailable):
    """The MQTT broker cannot be reached."""

    def __init__(self, url: str, detail: str = "") -> None:
        super().__init__("MQTT broker", url, detail)
