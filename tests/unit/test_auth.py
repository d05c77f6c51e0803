"""Passwords, Sign-In with Ethereum messages, nonces and throttles, without a web server."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from dashboard import auth
from dashboard.auth import MemoryNonces, SiweError, SiweExpectation, Throttle

KEY = Account.from_key("0x" + "42" * 32)
OTHER = Account.from_key("0x" + "43" * 32)
NOW = 1_780_000_000_000  # 2026-05-28T20:26:40Z
EXPECT = SiweExpectation("dash.example:8443", "https://dash.example:8443", 31337)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message(nonce: str = "abcdef0123456789", **fields: str | None) -> str:
    """An EIP-4361 message; a field given as None is left out."""
    values: dict[str, str | None] = {
        "domain": "dash.example:8443",
        "address": KEY.address,
        "statement": "Sign in to the Smart Zone dashboard.",
        "URI": "https://dash.example:8443/login",
        "Version": "1",
        "Chain ID": "31337",
        "Nonce": nonce,
        "Issued At": iso(NOW - 1_000),
        "Expiration Time": iso(NOW + 60_000),
        "Not Before": None,
        "Request ID": None,
    }
    values.update(fields)
    lines = [f"{values['domain']} wants you to sign in with your Ethereum account:", str(values["address"]), ""]
    lines += [str(values["statement"]), ""] if values["statement"] else [""]
    for tag in ("URI", "Version", "Chain ID", "Nonce", "Issued At", "Expiration Time", "Not Before", "Request ID"):
        if values[tag] is not None:
            lines.append(f"{tag}: {values[tag]}")
    return "\n".join(lines)


def sign(text: str, account: object = KEY) -> str:
    signed = account.sign_message(encode_defunct(text=text))  # type: ignore[attr-defined]
    return "0x" + bytes(signed.signature).hex()


def issued(nonces: MemoryNonces, at: int = NOW - 1_000) -> str:
    return nonces.issue(at)


def refusal(text: str, signature: str, nonces: MemoryNonces, now: int = NOW, expect: SiweExpectation = EXPECT) -> str:
    with pytest.raises(SiweError) as caught:
        auth.verify_siwe(text, signature, expect, nonces, now)
    return caught.value.reason


# --- passwords -------------------------------------------------------------------------------------------------
def test_a_password_hash_is_salted_scrypt_in_six_fields_and_checks_only_its_password() -> None:
    first, second = auth.hash_password("correct horse"), auth.hash_password("correct horse")
    assert first.split("$")[:4] == ["scrypt", "16384", "8", "1"] and len(first.split("$")) == 6
    assert first != second  # a fresh salt each time
    assert auth.verify_password("correct horse", first) and auth.verify_password("correct horse", second)
    assert not auth.verify_password("correct horsf", first)
    assert not auth.verify_password("", first)


@pytest.mark.parametrize(
    "encoded",
    ["", "scrypt$16384$8$1$c2FsdA", "bcrypt$16384$8$1$c2FsdA$aGFzaA", "scrypt$x$8$1$c2FsdA$aGFzaA",
     "scrypt$1000$8$1$c2FsdA$aGFzaA", "scrypt$4194304$8$1$c2FsdA$aGFzaA", "scrypt$16384$8$1$$aGFzaA",
     "scrypt$16384$8$1$!!!$aGFzaA"],
)  # fmt: skip
def test_a_malformed_or_unreasonable_hash_matches_no_password(encoded: str) -> None:
    assert not auth.verify_password("anything", encoded)


def test_a_password_longer_than_the_limit_is_not_even_hashed() -> None:
    encoded = auth.hash_password("x" * 2000)
    assert not auth.verify_password("x" * 2000, encoded)


def test_the_stand_in_hash_for_unknown_names_costs_what_a_real_one_does_and_matches_nothing_guessable() -> None:
    real = auth.hash_password("secret", n=2**10, r=4)
    assert auth.dummy_hash(real) is auth.dummy_hash(real) and auth.dummy_hash(real).startswith("scrypt$1024$4$1$")
    assert auth.dummy_hash(None).startswith("scrypt$16384$8$1$") and auth.dummy_hash("nonsense") == auth.dummy_hash()
    assert not auth.verify_password("", auth.dummy_hash()) and not auth.verify_password("demo", auth.dummy_hash())


# --- parsing ---------------------------------------------------------------------------------------------------
def test_the_specifications_example_parses_into_its_fields() -> None:
    text = (
        "example.com wants you to sign in with your Ethereum account:\n"
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n"
        "I accept the ExampleOrg Terms of Service: https://example.com/tos\n\n"
        "URI: https://example.com/login\nVersion: 1\nChain ID: 1\nNonce: 32891756\n"
        "Issued At: 2021-09-30T16:25:24Z\nResources:\n"
        "- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n"
        "- https://example.com/my-web2-claim.json"
    )
    parsed = auth.parse_siwe(text)
    assert (parsed.scheme, parsed.domain, parsed.chain_id, parsed.nonce) == (None, "example.com", 1, "32891756")
    assert parsed.statement == "I accept the ExampleOrg Terms of Service: https://example.com/tos"
    assert parsed.issued_at_ms == 1_633_019_124_000 and parsed.expiration_ms is None
    assert parsed.resources == (
        "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
        "https://example.com/my-web2-claim.json",
    )


def test_a_message_with_a_scheme_no_statement_and_every_optional_line_parses() -> None:
    text = message(
        domain="https://dash.example:8443", statement=None, **{"Not Before": iso(NOW), "Request ID": "req-1%2F2"}
    )
    parsed = auth.parse_siwe(text)
    assert parsed.scheme == "https" and parsed.domain == "dash.example:8443" and parsed.statement is None
    assert parsed.not_before_ms == NOW and parsed.request_id == "req-1%2F2"
    assert parsed.expiration_ms == NOW + 60_000


VALID = message()


@pytest.mark.parametrize(
    "text",
    [
        VALID.replace("\n", "\r\n"),
        VALID + "\n",
        VALID.replace("Version: 1", "Version: 2"),
        VALID.replace("Nonce: abcdef0123456789", "Nonce: abc1234"),  # 7 characters
        VALID.replace("Nonce: abcdef0123456789", "Nonce: abcdef-0123456789"),
        VALID.replace(KEY.address, KEY.address.lower()),  # not in its EIP-55 form
        VALID.replace(KEY.address, KEY.address[:-1]),
        VALID.replace("Chain ID: 31337\n", "").replace("Version: 1", "Chain ID: 31337\nVersion: 1"),  # out of order
        VALID.replace("Version: 1\n", ""),
        VALID.replace("Chain ID: 31337", "Chain ID: 0x7a69"),
        VALID.replace("Issued At: ", "Issued At: yesterday "),
        VALID.replace(iso(NOW - 1_000), "2026-02-30T10:00:00Z"),
        VALID.replace("URI: https://", "URI: https ://"),
        VALID.replace(" wants you to sign in", " wants you to log in"),
        VALID.replace("Sign in to the Smart Zone dashboard.", "Sign in\nnow"),
        VALID.replace("Sign in to the Smart Zone dashboard.", 'Sign in with "quotes"'),
        VALID + "\nExpiration Time: " + iso(NOW + 60_000),  # twice
        VALID + "\nColour: blue",
        VALID + "\nResources:\n- not a uri",
        "\n".join(VALID.split("\n")[:5]),
        VALID + "\nRequest ID: " + "x" * 5000,
        "",
    ],
)
def test_a_message_that_strays_from_the_abnf_is_malformed(text: str) -> None:
    with pytest.raises(SiweError) as caught:
        auth.parse_siwe(text)
    assert caught.value.reason == auth.MALFORMED


# --- verifying -------------------------------------------------------------------------------------------------
def test_a_message_signed_by_its_address_for_us_with_our_nonce_signs_in_once() -> None:
    nonces = MemoryNonces()
    text = message(issued(nonces))
    parsed = auth.verify_siwe(text, sign(text), EXPECT, nonces, NOW)
    assert parsed.address == KEY.address
    assert refusal(text, sign(text), nonces) == auth.NONCE  # replayed


def test_a_tampered_message_is_refused_as_not_signed_by_its_address_and_keeps_the_nonce() -> None:
    nonces = MemoryNonces()
    nonce = issued(nonces)
    text = message(nonce)
    tampered = text.replace("Chain ID: 31337", "Chain ID: 31337").replace("dashboard.", "dashboard!")
    assert refusal(tampered, sign(text), nonces) == auth.SIGNER
    assert auth.verify_siwe(text, sign(text), EXPECT, nonces, NOW).nonce == nonce  # the nonce was not spent


def test_a_message_signed_by_another_key_is_refused() -> None:
    nonces = MemoryNonces()
    text = message(issued(nonces))
    assert refusal(text, sign(text, OTHER), nonces) == auth.SIGNER


@pytest.mark.parametrize("signature", ["", "0x1234", "0x" + "00" * 65, "0x" + "zz" * 65, "0x" + "ff" * 65])
def test_a_signature_that_recovers_no_address_is_refused(signature: str) -> None:
    nonces = MemoryNonces()
    assert refusal(message(issued(nonces)), signature, nonces) == auth.SIGNATURE


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"domain": "evil.example"}, auth.DOMAIN),
        ({"domain": "dash.example:8444"}, auth.DOMAIN),
        ({"domain": "http://dash.example:8443"}, auth.DOMAIN),
        ({"URI": "https://evil.example/login"}, auth.URI),
        ({"URI": "http://dash.example:8443/login"}, auth.URI),
        ({"Chain ID": "1"}, auth.CHAIN),
        ({"Expiration Time": iso(NOW)}, auth.EXPIRED),
        ({"Not Before": iso(NOW + 1)}, auth.NOT_YET),
        ({"Issued At": iso(NOW + 120_000), "Expiration Time": iso(NOW + 180_000)}, auth.NOT_YET),
    ],
)
def test_each_check_of_a_signed_message_refuses_with_its_own_reason(fields: dict[str, str], reason: str) -> None:
    nonces = MemoryNonces()
    text = message(issued(nonces), **fields)
    assert refusal(text, sign(text), nonces) == reason


def test_any_chain_is_accepted_when_none_is_configured() -> None:
    nonces = MemoryNonces()
    text = message(issued(nonces), **{"Chain ID": "10"})
    expect = SiweExpectation(EXPECT.domain, EXPECT.origin, None)
    assert auth.verify_siwe(text, sign(text), expect, nonces, NOW).chain_id == 10


def test_a_nonce_we_never_issued_or_that_expired_is_refused() -> None:
    nonces = MemoryNonces(ttl_ms=60_000)
    forged = message("0123456789abcdef0123456789abcdef")
    assert refusal(forged, sign(forged), nonces) == auth.NONCE
    old = message(nonces.issue(NOW - 60_000), **{"Issued At": iso(NOW - 60_000)})
    assert refusal(old, sign(old), nonces) == auth.NONCE


def test_a_malformed_message_is_refused_before_its_signature_is_looked_at() -> None:
    assert refusal("hello", "0x", MemoryNonces()) == auth.MALFORMED


# --- nonces and throttles --------------------------------------------------------------------------------------
def test_nonces_are_long_alphanumeric_distinct_and_used_once() -> None:
    nonces = MemoryNonces()
    made = {nonces.issue(NOW) for _ in range(100)}
    assert len(made) == 100 and all(n.isalnum() and len(n) >= 16 for n in made)
    one = made.pop()
    assert nonces.consume(one, NOW) and not nonces.consume(one, NOW)


def test_the_nonce_store_is_bounded_and_drops_the_oldest_and_the_expired() -> None:
    nonces = MemoryNonces(ttl_ms=1_000, max_size=3)
    first, *rest = [nonces.issue(NOW + i) for i in range(4)]
    assert len(nonces) == 3 and not nonces.consume(first, NOW + 10)
    assert nonces.consume(rest[0], NOW + 10)
    nonces.issue(NOW + 5_000)  # the others expired meanwhile
    assert len(nonces) == 1


def test_a_nonce_is_consumed_by_exactly_one_of_many_concurrent_sign_ins() -> None:
    nonces = MemoryNonces()
    nonce = nonces.issue(NOW)
    results: list[bool] = []
    start = threading.Barrier(16)

    def attempt() -> None:
        start.wait()
        results.append(nonces.consume(nonce, NOW))

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1 and len(results) == 16


def test_a_throttle_blocks_a_key_after_its_failures_until_the_window_moves_on() -> None:
    throttle = Throttle(limit=3, window_ms=1_000)
    for i in range(3):
        assert not throttle.blocked("ann", NOW + i)
        throttle.fail("ann", NOW + i)
    assert throttle.blocked("ann", NOW + 3) and not throttle.blocked("bob", NOW + 3)
    assert not throttle.blocked("ann", NOW + 1_000)  # the first failure left the window
    throttle.fail("ann", NOW + 1_000)
    assert throttle.blocked("ann", NOW + 1_000)
    throttle.clear("ann")
    assert not throttle.blocked("ann", NOW + 1_002)


def test_a_throttle_keeps_a_bounded_number_of_keys() -> None:
    throttle = Throttle(limit=1, max_keys=10)
    for i in range(1_000):
        throttle.fail(f"client-{i}", NOW)
    assert throttle.blocked("client-999", NOW) and not throttle.blocked("client-0", NOW)
    assert len(throttle._failures) == 10
