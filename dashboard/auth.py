"""Who may sign in: scrypt password hashes, Sign-In with Ethereum (EIP-4361) messages, single-use nonces, throttles.

Pure: no web framework here. The routes in ``dashboard.routes.auth`` call these with the request's host and the
injected clock; every refusal of a Sign-In with Ethereum message is a ``SiweError`` with its own ``reason``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Protocol
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import encode_defunct

from sensors.address import Address, InvalidAddress

# --- passwords -----------------------------------------------------------------------------------------------
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # 16 MiB per hash: OWASP's floor for scrypt
MAX_SCRYPT_N = 2**20
MAX_PASSWORD_BYTES = 1024


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=256 * r * n + 2**20)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``password`` hashed with scrypt and a fresh 16-byte salt, as ``scrypt$n$r$p$salt$hash`` (base64url)."""
    salt = secrets.token_bytes(16)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(_scrypt(password, salt, n, r, p))}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded`` (compared in constant time); a malformed hash matches nothing."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or len(password.encode()) > MAX_PASSWORD_BYTES:
        return False
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return False
    if not (1 < n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 0 < r <= 32 and 0 < p <= 16 and salt and expected):
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)


def dummy_hash(like: str | None = None) -> str:
    """A hash no password is known for, with the cost parameters of ``like`` (a real user's hash) when it has
    readable ones: checked for unknown user names so that they take as long as known ones."""
    parts = (like or "").split("$")
    if len(parts) == 6 and parts[0] == "scrypt" and all(x.isdigit() for x in parts[1:4]):
        n, r, p = (int(x) for x in parts[1:4])
        if 1 < n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 0 < r <= 32 and 0 < p <= 16:
            return _dummy(n, r, p)
    return _dummy(SCRYPT_N, SCRYPT_R, SCRYPT_P)


@cache
def _dummy(n: int, r: int, p: int) -> str:
    return hash_password(secrets.token_urlsafe(16), n=n, r=r, p=p)


# --- Sign-In with Ethereum (EIP-4361) ------------------------------------------------------------------------
class SiweError(ValueError):
    """A Sign-In with Ethereum message refused; ``reason`` says which check failed."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


MALFORMED, DOMAIN, URI, CHAIN, EXPIRED, NOT_YET = "malformed", "domain", "uri", "chain_id", "expired", "not_yet_valid"
SIGNATURE, SIGNER, NONCE = "bad_signature", "signer", "nonce"
MAX_MESSAGE = 4096
SKEW_MS = 60_000  # a wallet's clock may run a little ahead of ours

_PCT = r"%[0-9A-Fa-f]{2}"
_UNRESERVED, _SUB_DELIMS = r"A-Za-z0-9\-._~", r"!$&'()*+,;="
_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"
_AUTHORITY = (
    rf"(?:(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*@)?"  # userinfo
    rf"(?:\[[0-9A-Fa-f:.]+\]|(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*)"  # IP-literal or reg-name / IPv4
    r"(?::[0-9]*)?"
)
_URI = rf"{_SCHEME}:(?:[{_UNRESERVED}{_SUB_DELIMS}:/?#\[\]@]|{_PCT})*"
_DATE_TIME = r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})"
HEADER = re.compile(rf"(?:({_SCHEME})://)?({_AUTHORITY}) wants you to sign in with your Ethereum account:")
FIELDS = {
    "URI": re.compile(_URI),
    "Version": re.compile("1"),
    "Chain ID": re.compile(r"[0-9]{1,20}"),
    "Nonce": re.compile(r"[A-Za-z0-9]{8,128}"),
    "Issued At": re.compile(_DATE_TIME),
    "Expiration Time": re.compile(_DATE_TIME),
    "Not Before": re.compile(_DATE_TIME),
    "Request ID": re.compile(rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})*"),
}
REQUIRED = ("URI", "Version", "Chain ID", "Nonce", "Issued At")
OPTIONAL = ("Expiration Time", "Not Before", "Request ID")
STATEMENT = re.compile(rf"[{_UNRESERVED}{_SUB_DELIMS}:/?#\[\]@ ]+")
ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
RESOURCE = re.compile(rf"- ({_URI})")


@dataclass(frozen=True, slots=True)
class SiweMessage:
    """A parsed EIP-4361 message; times are ms since the Unix epoch."""

    scheme: str | None
    domain: str
    address: str
    statement: str | None
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at_ms: int
    expiration_ms: int | None = None
    not_before_ms: int | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = ()


def _ms(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        raise SiweError(MALFORMED, f"{text!r} is not an RFC 3339 date-time") from None
    return int(moment.timestamp() * 1000)


def _fullmatch(pattern: re.Pattern[str], text: str, what: str) -> re.Match[str]:
    found = pattern.fullmatch(text)
    if found is None:
        raise SiweError(MALFORMED, f"the {what} line does not follow EIP-4361: {text[:80]!r}")
    return found


def parse_siwe(text: str) -> SiweMessage:
    """The message's fields, parsed exactly as EIP-4361's ABNF says (``SiweError`` ``malformed`` otherwise); the
    address must be in its EIP-55 form."""
    if not isinstance(text, str) or len(text) > MAX_MESSAGE or "\r" in text:
        raise SiweError(MALFORMED, "not an EIP-4361 message (too long, or not LF-separated text)")
    lines = text.split("\n")
    if len(lines) < 8:
        raise SiweError(MALFORMED, "an EIP-4361 message has at least eight lines")
    header = _fullmatch(HEADER, lines[0], "first")
    address = _fullmatch(ADDRESS, lines[1], "address").group()
    try:
        if str(Address.parse(address)) != address:
            raise InvalidAddress("not in EIP-55 form")
    except InvalidAddress:
        raise SiweError(MALFORMED, f"{address} is not written in its EIP-55 checksum form") from None
    if lines[2] != "":
        raise SiweError(MALFORMED, "the address must be followed by an empty line")
    statement = None
    rest = lines[4:] if lines[3] == "" else lines[5:]
    if lines[3] != "":
        statement = _fullmatch(STATEMENT, lines[3], "statement").group()
        if lines[4] != "":
            raise SiweError(MALFORMED, "the statement must be followed by an empty line")
    values = _fields(rest)
    return SiweMessage(
        scheme=header.group(1),
        domain=header.group(2),
        address=address,
        statement=statement,
        uri=values["URI"],
        version=values["Version"],
        chain_id=int(values["Chain ID"]),
        nonce=values["Nonce"],
        issued_at_ms=_ms(values["Issued At"]),
        expiration_ms=_ms(values["Expiration Time"]) if "Expiration Time" in values else None,
        not_before_ms=_ms(values["Not Before"]) if "Not Before" in values else None,
        request_id=values.get("Request ID"),
        resources=_resources(rest[len(values) :]),
    )


def _fields(lines: list[str]) -> dict[str, str]:
    """The tagged lines: the required five in their order, then each optional one at most once, in its order."""
    if len(lines) < len(REQUIRED):
        raise SiweError(MALFORMED, f"missing line {REQUIRED[len(lines)]!r}" if lines else "missing line 'URI'")
    values = {tag: _tagged(line, tag) for tag, line in zip(REQUIRED, lines, strict=False)}
    position = 0
    for line in lines[len(REQUIRED) :]:
        if line == "Resources:":
            break
        tag = line.partition(": ")[0]
        if tag not in OPTIONAL[position:]:
            raise SiweError(MALFORMED, f"unexpected line {line[:80]!r}")
        position = OPTIONAL.index(tag) + 1
        values[tag] = _tagged(line, tag)
    return values


def _tagged(line: str, tag: str) -> str:
    if not line.startswith(f"{tag}: "):
        raise SiweError(MALFORMED, f"expected the line {tag!r}, found {line[:80]!r}")
    return _fullmatch(FIELDS[tag], line[len(tag) + 2 :], tag).group()


def _resources(lines: list[str]) -> tuple[str, ...]:
    if not lines:
        return ()
    if lines[0] != "Resources:":
        raise SiweError(MALFORMED, f"unexpected line {lines[0][:80]!r}")
    return tuple(_fullmatch(RESOURCE, line, "resource").group(1) for line in lines[1:])


class NonceStore(Protocol):
    """Nonces we hand out for Sign-In with Ethereum: each may be used once, before it expires."""

    def issue(self, now_ms: int) -> str:
        """A fresh nonce (at least 8 alphanumerics)."""
        ...

    def consume(self, nonce: str, now_ms: int) -> bool:
        """True exactly once for a nonce this store issued and that has not expired; False otherwise."""
        ...


class MemoryNonces:
    """Nonces in this process's memory: each lives ``ttl_ms``; past ``max_size`` the oldest are dropped."""

    def __init__(self, ttl_ms: int = 5 * 60_000, max_size: int = 10_000) -> None:
        self.ttl_ms = ttl_ms
        self.max_size = max_size
        self._expiry: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, now_ms: int) -> str:
        nonce = secrets.token_hex(16)
        with self._lock:
            while self._expiry and (len(self._expiry) >= self.max_size or next(iter(self._expiry.values())) <= now_ms):
                self._expiry.popitem(last=False)
            self._expiry[nonce] = now_ms + self.ttl_ms
        return nonce

    def consume(self, nonce: str, now_ms: int) -> bool:
        with self._lock:
            expiry = self._expiry.pop(nonce, None)
        return expiry is not None and now_ms < expiry

    def __len__(self) -> int:
        return len(self._expiry)


@dataclass(frozen=True, slots=True)
class SiweExpectation:
    """What a message must name to sign in here: our ``domain`` (host[:port]), our ``origin``
    (scheme://host[:port]), and the chain when one is configured."""

    domain: str
    origin: str
    chain_id: int | None = None


def verify_siwe(text: str, signature: str, expect: SiweExpectation, nonces: NonceStore, now_ms: int) -> SiweMessage:
    """The message, once it is well formed, names us, is within its validity, is signed by its address and
    carries a nonce we issued and nobody used (the nonce is spent only by a message that passed every other check).
    Each failure raises ``SiweError`` with its own reason."""
    message = parse_siwe(text)
    origin = urlsplit(expect.origin)
    if message.domain.lower() != expect.domain.lower() or (message.scheme and message.scheme.lower() != origin.scheme):
        raise SiweError(DOMAIN, f"the message is for {message.domain}, not {expect.domain}")
    uri = urlsplit(message.uri)
    if f"{uri.scheme}://{uri.netloc}".lower() != expect.origin.lower():
        raise SiweError(URI, f"the message's URI is not on {expect.origin}")
    if expect.chain_id is not None and message.chain_id != expect.chain_id:
        raise SiweError(CHAIN, f"the message is for chain {message.chain_id}, not {expect.chain_id}")
    _check_times(message, now_ms)
    _check_signer(text, signature, message.address)
    if not nonces.consume(message.nonce, now_ms):
        raise SiweError(NONCE, "the nonce was not issued here, has expired or was used already")
    return message


def _check_times(message: SiweMessage, now_ms: int) -> None:
    if message.expiration_ms is not None and now_ms >= message.expiration_ms:
        raise SiweError(EXPIRED, "the message has expired")
    if message.not_before_ms is not None and now_ms < message.not_before_ms:
        raise SiweError(NOT_YET, "the message is not valid yet")
    if message.issued_at_ms > now_ms + SKEW_MS:
        raise SiweError(NOT_YET, "the message is issued in the future")


def _check_signer(text: str, signature: str, address: str) -> None:
    if not isinstance(signature, str) or not re.fullmatch(r"0x[0-9a-fA-F]{130}", signature):
        raise SiweError(SIGNATURE, "the signature is not 65 bytes of 0x-prefixed hex")
    try:
        signer = Account.recover_message(encode_defunct(text=text), signature=signature)
    except Exception:  # eth_account raises several types for a signature that does not recover
        raise SiweError(SIGNATURE, "the signature does not recover to any address") from None
    if Address.parse(signer) != Address.parse(address):
        raise SiweError(SIGNER, "the message was not signed by its address")


# --- throttling ----------------------------------------------------------------------------------------------
class Throttle:
    """Counts failures per key (a user name, a client address) in a sliding window; a key with ``limit`` failures
    in the window is blocked until the oldest leaves it. At most ``max_keys`` keys are kept (the oldest dropped)."""

    def __init__(self, limit: int, window_ms: int = 15 * 60_000, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[int]] = OrderedDict()
        self._lock = threading.Lock()

    def blocked(self, key: str, now_ms: int) -> bool:
        """Whether ``key`` has used up its failures for now."""
        with self._lock:
            times = self._failures.get(key)
            if times is None:
                return False
            while times and times[0] <= now_ms - self.window_ms:
                times.popleft()
            return len(times) >= self.limit

    def fail(self, key: str, now_ms: int) -> None:
        """Count one failure of ``key``."""
        with self._lock:
            times = self._failures.pop(key, None) or deque(maxlen=self.limit)
            times.append(now_ms)
            self._failures[key] = times
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def clear(self, key: str) -> None:
        """Forget ``key``'s failures (after it signed in)."""
        with self._lock:
            self._failures.pop(key, None)
