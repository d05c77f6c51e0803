"""Account addresses: 20 bytes, compared as bytes everywhere, written in EIP-55 checksum form at the edges."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from eth_utils import keccak

from sensors.errors import InvalidReading

_HEX40 = re.compile(r"^0x[0-9a-fA-F]{40}$")


class InvalidAddress(InvalidReading):
    """Text that is not a 0x address, or whose mixed case fails its EIP-55 checksum."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="bad_address")


@dataclass(frozen=True, slots=True, order=True)
class Address:
    """An account address. Equal, hashed and ordered by its 20 bytes; ``str()`` gives the EIP-55 form."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 20:
            raise InvalidAddress(f"an address has 20 bytes, not {len(self.raw)}")

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse ``0x`` + 40 hex digits. All-lower or all-upper is accepted; mixed case must be EIP-55."""
        if not isinstance(text, str) or not _HEX40.match(text):
            raise InvalidAddress(f"{str(text)[:60]!r} is not an address (0x and 40 hex digits)")
        address = cls(bytes.fromhex(text[2:]))
        body = text[2:]
        if body != body.lower() and body != body.upper() and str(address) != text:
            raise InvalidAddress(f"{text} fails its EIP-55 checksum (expected {address})")
        return address

    @property
    def checksum(self) -> str:
        """The EIP-55 mixed-case form."""
        return _eip55(self.raw)

    def __str__(self) -> str:
        return _eip55(self.raw)

    def __repr__(self) -> str:
        return f"Address({_eip55(self.raw)})"


@lru_cache(maxsize=65536)
def _eip55(raw: bytes) -> str:
    """The EIP-55 form of ``raw``; kept, as a fleet's few thousand accounts are written again and again."""
    lower = raw.hex()
    digest = keccak(text=lower).hex()[:40]
    return "0x" + "".join(c.upper() if int(d, 16) >= 8 else c for c, d in zip(lower, digest, strict=True))


def checksummed(text: str) -> str:
    """``text`` parsed as an address and written in EIP-55 form (``InvalidAddress`` if it is none)."""
    return str(Address.parse(text))
