"""Where a broker listens, and the last will a client leaves there; the form errors of an MQTT URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from sensors.errors import SmartZoneError
from sensors.redaction import redact_url as redact


@dataclass(frozen=True, slots=True)
class Will:
    """A last will: published by the broker, retained, when the connection dies uncleanly."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a broker listens, parsed from ``mqtt[s]://[user[:password]@]host[:port]`` (user and password
    URL-quoted); ``mqtts`` (or ``ssl``) means TLS, on port 8883 unless given."""

    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if "@" in parts.path + parts.query + parts.fragment:  # a "/", "?" or "#" in the password, not quoted
            raise SmartZoneError(f"MQTT URL {redact(url)!r}: URL-quote its user and password (%2F for /, %23 for #)")
        try:
            port = parts.port
        except ValueError:
            raise SmartZoneError(f"MQTT URL {redact(url)!r} has a port that is not a number") from None
        tls = parts.scheme in ("mqtts", "ssl")
        if not (tls or parts.scheme in ("mqtt", "tcp")) or not parts.hostname:
            raise SmartZoneError(f"MQTT URL {redact(url)!r} must look like mqtt://host:port or mqtts://host:port")
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(parts.hostname, port or (8883 if tls else 1883), username, password, tls)
