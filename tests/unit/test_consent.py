"""Riders pay with consent: EIP-712 consents and vouchers (cross-checked with eth_account), every refusal, the fare."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from sensors.address import Address
from sensors.consent import consent_from_json, to_json, voucher_from_json
from sensors.errors import InvalidReading
from sensors.messages import VehicleKind
from sensors.signing import Domain, address_of
from settlement.consent import (
    ACCEPTED,
    Chargeable,
    ConsentCode,
    ConsentLedger,
    RideConsent,
    TripConsent,
    Voucher,
    chargeable,
    check_consent,
    check_voucher,
    digest,
    sign,
    signer,
    typed_data,
)
from settlement.fares import DEFAULT_PLANS
from settlement.pricing import price
from simulator.app import meter_ride, metering_times, next_nonce, next_voucher, ride_consent
from simulator.keys import rider_key

DOMAIN = Domain(31337)
RIDER_KEY = bytes.fromhex("44" * 32)
OTHER_KEY = bytes.fromhex("45" * 32)
RIDER = address_of(RIDER_KEY)
OTHER = address_of(OTHER_KEY)
VEHICLE = "ebike-0002"
TRIP = "ebike-0002:9"
UNLOCK_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
EXPIRY_MS = UNLOCK_MS + 12 * 3600 * 1000
TARIFFS = frozenset(plan.plan_id for plan in DEFAULT_PLANS.values())
CAP = 5_000_000


def consent(key: bytes = RIDER_KEY, **change: Any) -> RideConsent:
    fields: dict[str, Any] = {
        "rider": address_of(key),
        "vehicle_id": VEHICLE,
        "tariff_id": "ebike",
        "cap_micro": CAP,
        "expiry_ms": EXPIRY_MS,
        "nonce": 0,
    }
    return sign(RideConsent(**(fields | change)), key, DOMAIN)


def voucher(cumulative: int, seq: int, key: bytes = RIDER_KEY, **change: Any) -> Voucher:
    fields: dict[str, Any] = {"rider": address_of(key), "trip_id": TRIP, "cumulative_micro": cumulative, "seq": seq}
    return sign(Voucher(**(fields | change)), key, DOMAIN)


def eth_signable(item: RideConsent | Voucher) -> SignableMessage:
    return encode_typed_data(full_message=typed_data(item, DOMAIN))


def check(item: RideConsent | None, used: frozenset[int] = frozenset(), **change: Any) -> Any:
    context: dict[str, Any] = {
        "rider": RIDER,
        "vehicle_id": VEHICLE,
        "unlock_ms": UNLOCK_MS,
        "tariffs": TARIFFS,
        "used_nonces": used,
        "domain": DOMAIN,
        "vehicle_tariff": "ebike",
    }
    return check_consent(item, **(context | change))


def open_trip(cap: int = CAP) -> ConsentLedger:
    ledger = ConsentLedger(DOMAIN, TARIFFS)
    assert ledger.unlock(TRIP, consent(cap_micro=cap), rider=RIDER, vehicle_id=VEHICLE, unlock_ms=UNLOCK_MS).ok
    return ledger


# --- the EIP-712 structs ----------------------------------------------------------------------------------------

SIGNED: dict[str, RideConsent | Voucher] = {"consent": consent(), "voucher": voucher(1_150_000, 1)}


@pytest.mark.parametrize("name", SIGNED)
def test_the_digest_and_signature_are_eth_accounts_and_recover_to_the_rider(name: str) -> None:
    item = SIGNED[name]
    signable = eth_signable(item)
    assert digest(item, DOMAIN) == keccak(b"\x19" + signable.version + signable.header + signable.body)
    theirs = Account.sign_message(signable, RIDER_KEY)
    assert item.signature == "0x" + bytes(theirs.signature).hex()
    assert Account.recover_message(signable, signature=item.signature) == str(RIDER)
    assert signer(item, DOMAIN) == RIDER


def test_the_struct_types_are_the_normative_ones() -> None:
    encoded = {
        primary: primary + "(" + ",".join(f["type"] + " " + f["name"] for f in fields) + ")"
        for item in SIGNED.values()
        for primary, fields in typed_data(item, DOMAIN)["types"].items()
    }
    assert encoded == {
        "EIP712Domain": "EIP712Domain(string name,string version,uint256 chainId)",
        "RideConsent": "RideConsent(address rider,string vehicleId,string tariffId,uint256 capMicro,uint64 expiryMs,"
        "uint256 nonce)",
        "Voucher": "Voucher(address rider,string tripId,uint256 cumulativeMicro,uint32 seq)",
    }


@pytest.mark.parametrize(
    "change",
    [{"vehicle_id": "ebike-0003"}, {"tariff_id": "scooter"}, {"cap_micro": CAP + 1}, {"expiry_ms": EXPIRY_MS + 1},
     {"nonce": 1}, {"rider": OTHER}],
)  # fmt: skip
def test_every_field_of_a_consent_is_covered_by_its_signature(change: dict[str, Any]) -> None:
    tampered = dataclasses.replace(SIGNED["consent"], **change)
    assert signer(tampered, DOMAIN) != RIDER


@pytest.mark.parametrize("change", [{"trip_id": "ebike-0002:10"}, {"cumulative_micro": 1}, {"seq": 2}])
def test_every_field_of_a_voucher_is_covered_by_its_signature(change: dict[str, Any]) -> None:
    assert signer(dataclasses.replace(SIGNED["voucher"], **change), DOMAIN) != RIDER


def test_a_signature_for_another_chain_recovers_another_address() -> None:
    assert signer(SIGNED["voucher"], Domain(1)) != RIDER


@pytest.mark.parametrize(
    ("kind", "change", "code"),
    [
        (RideConsent, {"cap_micro": -1}, "out_of_range"),
        (RideConsent, {"cap_micro": 2**256}, "out_of_range"),
        (RideConsent, {"expiry_ms": 2**64}, "out_of_range"),
        (RideConsent, {"nonce": True}, "out_of_range"),
        (RideConsent, {"vehicle_id": ""}, "schema"),
        (RideConsent, {"rider": str(RIDER)}, "schema"),
        (Voucher, {"seq": 2**32}, "out_of_range"),
        (Voucher, {"cumulative_micro": 1.5}, "out_of_range"),
        (Voucher, {"trip_id": ""}, "schema"),
    ],
)
def test_a_value_that_does_not_fit_its_field_is_refused_when_made(
    kind: type, change: dict[str, Any], code: str
) -> None:
    base = SIGNED["consent"] if kind is RideConsent else SIGNED["voucher"]
    with pytest.raises(InvalidReading) as caught:
        dataclasses.replace(base, **change)
    assert caught.value.code == code


def test_the_largest_values_of_each_field_are_signed_as_eth_account_signs_them() -> None:
    item = consent(cap_micro=2**256 - 1, expiry_ms=2**64 - 1, nonce=2**256 - 1)
    assert Account.recover_message(eth_signable(item), signature=item.signature) == str(RIDER)
    top = voucher(2**256 - 1, 2**32 - 1)
    assert Account.recover_message(eth_signable(top), signature=top.signature) == str(RIDER)


def test_a_consent_and_a_voucher_go_over_the_wire_as_json_and_come_back_equal() -> None:
    wire = json.loads(json.dumps(to_json(SIGNED["consent"])))
    assert wire == {
        "rider": str(RIDER), "vehicle_id": VEHICLE, "tariff_id": "ebike", "cap_micro": CAP, "expiry_ms": EXPIRY_MS,
        "nonce": 0, "sig": SIGNED["consent"].signature,
    }  # fmt: skip
    assert consent_from_json(wire) == SIGNED["consent"]
    assert voucher_from_json(json.loads(json.dumps(to_json(SIGNED["voucher"])))) == SIGNED["voucher"]
    unsigned = to_json(Voucher(RIDER, TRIP, 1, 1))
    assert "sig" not in unsigned and voucher_from_json(unsigned).signature is None


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"nonce": 2**53}, "out_of_range"),
        ({"cap_micro": -1}, "out_of_range"),
        ({"cap_micro": 1.0}, "schema"),
        ({"cap_micro": "5000000"}, "schema"),
        ({"vehicle_id": 7}, "schema"),
        ({"vehicle_id": ""}, "schema"),
        ({"extra": 1}, "schema"),
        ({"sig": 12}, "schema"),
        ({"rider": str(RIDER).lower().replace("0x", "0X")}, "bad_address"),
        ({"rider": "0x" + str(RIDER)[2:].swapcase()}, "bad_address"),
    ],
)
def test_a_wire_consent_with_a_bad_field_is_refused_with_its_code(change: dict[str, Any], code: str) -> None:
    with pytest.raises(InvalidReading) as caught:
        consent_from_json(to_json(SIGNED["consent"]) | change)
    assert caught.value.code == code


def test_a_wire_object_lacking_a_field_or_not_an_object_is_refused() -> None:
    obj = to_json(SIGNED["voucher"])
    del obj["seq"]
    bad: object
    for bad in (obj, [], "voucher"):
        with pytest.raises(InvalidReading) as caught:
            voucher_from_json(bad)
        assert caught.value.code == "schema"


def test_an_integer_that_a_json_number_cannot_hold_exactly_is_not_written() -> None:
    with pytest.raises(InvalidReading) as caught:
        to_json(consent(nonce=2**53))
    assert caught.value.code == "out_of_range"


# --- consent at unlock ------------------------------------------------------------------------------------------


def test_a_valid_consent_is_accepted() -> None:
    assert check(consent()) == ACCEPTED


HIGH_S = "0x" + "11" * 32 + "ff" * 32 + "1b"


@pytest.mark.parametrize(
    ("item", "context", "code"),
    [
        (None, {}, ConsentCode.NO_CONSENT),
        (dataclasses.replace(consent(), signature=None), {}, ConsentCode.CONSENT_BAD_SIGNATURE),
        (dataclasses.replace(consent(), signature="0x1234"), {}, ConsentCode.CONSENT_BAD_SIGNATURE),
        (dataclasses.replace(consent(), signature=HIGH_S), {}, ConsentCode.CONSENT_BAD_SIGNATURE),
        (sign(dataclasses.replace(consent(), signature=None), OTHER_KEY, DOMAIN), {}, ConsentCode.CONSENT_WRONG_SIGNER),
        (consent(OTHER_KEY), {}, ConsentCode.CONSENT_OTHER_RIDER),
        (consent(), {"rider": "alice"}, ConsentCode.CONSENT_OTHER_RIDER),
        (consent(), {"vehicle_id": "ebike-0003"}, ConsentCode.CONSENT_OTHER_VEHICLE),
        (consent(tariff_id="gondola"), {}, ConsentCode.UNKNOWN_TARIFF),
        (consent(tariff_id="bike"), {}, ConsentCode.TARIFF_MISMATCH),
        (consent(cap_micro=0), {}, ConsentCode.CONSENT_ZERO_CAP),
        (consent(expiry_ms=UNLOCK_MS), {}, ConsentCode.CONSENT_EXPIRED),
        (consent(expiry_ms=UNLOCK_MS - 1), {}, ConsentCode.CONSENT_EXPIRED),
        (consent(nonce=3), {"used_nonces": frozenset({1, 3})}, ConsentCode.NONCE_REUSED),
    ],
)
def test_a_consent_that_breaks_a_rule_is_refused_with_its_reason(
    item: RideConsent | None, context: dict[str, Any], code: ConsentCode
) -> None:
    verdict = check(item, **context)
    assert not verdict.ok and verdict.code is code and verdict.reason


def test_a_consent_to_a_known_tariff_passes_when_the_vehicles_own_is_not_given() -> None:
    assert check(consent(tariff_id="bike"), vehicle_tariff=None).ok
    assert check(consent(), rider=str(RIDER).lower()).ok  # the unlock's rider as text


def test_the_ledger_uses_a_nonce_once_and_only_for_an_accepted_consent() -> None:
    ledger = ConsentLedger(DOMAIN, TARIFFS, used_nonces={RIDER: [0]})
    unlock: dict[str, Any] = {"rider": RIDER, "vehicle_id": VEHICLE, "unlock_ms": UNLOCK_MS}
    assert ledger.unlock(TRIP, consent(nonce=0), **unlock).code is ConsentCode.NONCE_REUSED
    assert ledger.unlock(TRIP, consent(nonce=1, cap_micro=0), **unlock).code is ConsentCode.CONSENT_ZERO_CAP
    assert ledger.used_nonces(RIDER) == {0}
    assert ledger.unlock(TRIP, consent(nonce=1), **unlock).ok
    assert ledger.used_nonces(RIDER) == {0, 1}
    assert ledger.unlock("ebike-0002:20", consent(nonce=1), **unlock).code is ConsentCode.NONCE_REUSED
    assert ledger.used_nonces(OTHER) == frozenset()


def test_an_unlock_delivered_again_is_accepted_again_but_another_consent_for_its_trip_is_not() -> None:
    ledger = open_trip()
    unlock: dict[str, Any] = {"rider": RIDER, "vehicle_id": VEHICLE, "unlock_ms": UNLOCK_MS}
    assert ledger.unlock(TRIP, consent(), **unlock).ok
    assert ledger.unlock(TRIP, consent(nonce=5), **unlock).code is ConsentCode.CONSENT_TWICE
    assert ledger.unlock(TRIP, None, **unlock).code is ConsentCode.CONSENT_TWICE
    trip = ledger.trip(TRIP)
    assert trip is not None and trip.consent == consent() and trip.consent_digest == digest(consent(), DOMAIN)


# --- vouchers during the ride -----------------------------------------------------------------------------------


def test_vouchers_in_order_are_accepted_and_the_last_one_is_kept() -> None:
    ledger = open_trip()
    for seq, amount in enumerate((1_150_000, 1_300_000, 1_300_000, 1_450_000), start=1):
        assert ledger.voucher(TRIP, voucher(amount, seq), at_ms=UNLOCK_MS + seq * 60_000) == ACCEPTED
    trip = ledger.trip(TRIP)
    assert trip is not None and trip.voucher == voucher(1_450_000, 4) and trip.paid_micro == 1_450_000
    assert trip.voucher_digest == digest(voucher(1_450_000, 4), DOMAIN)


def test_a_voucher_may_skip_seqs_and_reach_the_cap_exactly() -> None:
    ledger = open_trip()
    assert ledger.voucher(TRIP, voucher(1_000_000, 3), at_ms=UNLOCK_MS).ok
    assert ledger.voucher(TRIP, voucher(CAP, 9), at_ms=EXPIRY_MS - 1).ok


UNSIGNED = Voucher(RIDER, TRIP, 2_000_000, 3)


@pytest.mark.parametrize(
    ("item", "trip_id", "at_ms", "code"),
    [
        (UNSIGNED, TRIP, UNLOCK_MS, ConsentCode.VOUCHER_BAD_SIGNATURE),
        (dataclasses.replace(UNSIGNED, signature=HIGH_S), TRIP, UNLOCK_MS, ConsentCode.VOUCHER_BAD_SIGNATURE),
        (sign(UNSIGNED, OTHER_KEY, DOMAIN), TRIP, UNLOCK_MS, ConsentCode.VOUCHER_WRONG_SIGNER),
        (voucher(2_000_000, 3), "ebike-0002:20", UNLOCK_MS, ConsentCode.VOUCHER_NO_CONSENT),
        (voucher(2_000_000, 3, OTHER_KEY), TRIP, UNLOCK_MS, ConsentCode.VOUCHER_OTHER_RIDER),
        (voucher(2_000_000, 3, trip_id="ebike-0002:20"), TRIP, UNLOCK_MS, ConsentCode.VOUCHER_OTHER_TRIP),
        (voucher(2_000_000, 3), TRIP, EXPIRY_MS, ConsentCode.VOUCHER_EXPIRED),
        (voucher(CAP + 1, 3), TRIP, UNLOCK_MS, ConsentCode.VOUCHER_ABOVE_CAP),
        (voucher(1_300_000, 2), TRIP, UNLOCK_MS, ConsentCode.VOUCHER_REPLAYED),  # the last one again
        (voucher(2_000_000, 2), TRIP, UNLOCK_MS, ConsentCode.VOUCHER_REPLAYED),  # a new amount on an old seq
        (voucher(2_000_000, 1), TRIP, UNLOCK_MS, ConsentCode.VOUCHER_REPLAYED),
        (voucher(1_299_999, 3), TRIP, UNLOCK_MS, ConsentCode.VOUCHER_DECREASING),
    ],
)
def test_a_voucher_that_breaks_a_rule_is_refused_and_the_trip_keeps_its_last_one(
    item: Voucher, trip_id: str, at_ms: int, code: ConsentCode
) -> None:
    ledger = open_trip()
    assert ledger.voucher(TRIP, voucher(1_150_000, 1), at_ms=UNLOCK_MS).ok
    assert ledger.voucher(TRIP, voucher(1_300_000, 2), at_ms=UNLOCK_MS).ok
    verdict = ledger.voucher(trip_id, item, at_ms=at_ms)
    assert not verdict.ok and verdict.code is code and verdict.reason
    assert ledger.fare(TRIP, 10_000_000).fare_micro == 1_300_000


def test_a_voucher_is_checked_against_a_trips_state_without_a_ledger() -> None:
    trip = TripConsent(TRIP, consent(), digest(consent(), DOMAIN))
    assert check_voucher(voucher(1, 1), TRIP, trip, at_ms=UNLOCK_MS, domain=DOMAIN).ok
    orphan = check_voucher(voucher(1, 1), TRIP, None, at_ms=UNLOCK_MS, domain=DOMAIN)
    assert orphan.code is ConsentCode.VOUCHER_NO_CONSENT


# --- the fare ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metered", "paid", "cap", "fare", "limited_by"),
    [
        (2_200_000, 2_200_000, 5_000_000, 2_200_000, "metered"),
        (2_200_000, 2_050_000, 5_000_000, 2_050_000, "voucher"),
        (9_000_000, 5_000_000, 5_000_000, 5_000_000, "voucher"),
        (1_000_000, 0, 5_000_000, 0, "voucher"),
        (0, 0, 1, 0, "metered"),
    ],
)
def test_the_fare_is_the_least_of_the_meter_the_last_voucher_and_the_cap(
    metered: int, paid: int, cap: int, fare: int, limited_by: str
) -> None:
    charge = Chargeable(metered, paid, cap)
    assert (charge.fare_micro, charge.limited_by, charge.unpaid_micro) == (fare, limited_by, metered - fare)


def test_a_trip_without_a_voucher_is_charged_nothing() -> None:
    ledger = open_trip()
    assert ledger.fare(TRIP, 1_150_000).fare_micro == 0
    with pytest.raises(KeyError):
        ledger.fare("ebike-0002:20", 1_150_000)


def test_a_negative_amount_is_not_a_fare() -> None:
    with pytest.raises(ValueError, match="metered_micro"):
        Chargeable(-1, 0, 1)


# --- the rider's app and a worked example -----------------------------------------------------------------------

EBIKE = DEFAULT_PLANS[VehicleKind.EBIKE]


def running_fare(elapsed_ms: int) -> int:
    return price(EBIKE, 0, -(-elapsed_ms // 1000)).total_micro


def test_the_app_signs_every_minute_and_at_the_end() -> None:
    assert metering_times(0, 450_000) == [60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000, 450_000]
    assert metering_times(0, 120_000) == [60_000, 120_000]
    assert metering_times(5, 5) == [5]
    with pytest.raises(ValueError):
        metering_times(10, 5)


def test_the_app_never_signs_above_the_cap_nor_below_its_last_voucher() -> None:
    first = ride_consent(RIDER_KEY, DOMAIN, vehicle_id=VEHICLE, tariff_id="ebike", nonce=0, now_ms=0, cap_micro=100)
    one = next_voucher(RIDER_KEY, DOMAIN, first, TRIP, 60, None)
    two = next_voucher(RIDER_KEY, DOMAIN, first, TRIP, 40, one)
    three = next_voucher(RIDER_KEY, DOMAIN, first, TRIP, 500, two)
    assert [(v.seq, v.cumulative_micro) for v in (one, two, three)] == [(1, 60), (2, 60), (3, 100)]
    assert next_nonce([]) == 0 and next_nonce([4, 2]) == 5


def test_the_app_stops_signing_when_its_consent_expires() -> None:
    short = ride_consent(RIDER_KEY, DOMAIN, vehicle_id=VEHICLE, tariff_id="ebike", nonce=0, now_ms=0, valid_ms=150_000)
    metered = meter_ride(RIDER_KEY, DOMAIN, short, TRIP, start_ms=0, end_ms=400_000, fare_at=running_fare)
    assert [m.at_ms for m in metered] == [60_000, 120_000]


def test_worked_example_a_seven_and_a_half_minute_e_bike_ride() -> None:
    """Rider 0x4444…44 unlocks ebike-0002 (trip ebike-0002:9) at 2026-01-01T00:00Z with a €5 cap for 12 hours;
    the app signs a voucher each minute and at the lock, 7:30 later: 8 started minutes at €0.15 + €1.00."""
    first = ride_consent(RIDER_KEY, DOMAIN, vehicle_id=VEHICLE, tariff_id="ebike", nonce=0, now_ms=UNLOCK_MS,
                         cap_micro=CAP)  # fmt: skip
    assert first == consent() and first.rider == Address.parse(EXAMPLE_RIDER)
    assert "0x" + digest(first, DOMAIN).hex() == EXAMPLE_CONSENT_DIGEST
    assert first.signature == EXAMPLE_CONSENT_SIGNATURE
    ledger = ConsentLedger(DOMAIN, TARIFFS)
    assert ledger.unlock(TRIP, first, rider=RIDER, vehicle_id=VEHICLE, unlock_ms=UNLOCK_MS, vehicle_tariff="ebike").ok
    end = UNLOCK_MS + 450_000
    metered = meter_ride(RIDER_KEY, DOMAIN, first, TRIP, start_ms=UNLOCK_MS, end_ms=end, fare_at=running_fare)
    assert [m.voucher.cumulative_micro for m in metered] == [1_150_000 + 150_000 * i for i in range(8)]
    assert all(ledger.voucher(TRIP, m.voucher, at_ms=m.at_ms).ok for m in metered)
    last = metered[-1].voucher
    assert (last.seq, last.cumulative_micro) == (8, 2_200_000)
    assert "0x" + digest(last, DOMAIN).hex() == EXAMPLE_VOUCHER_DIGEST
    assert last.signature == EXAMPLE_VOUCHER_SIGNATURE
    assert Account.recover_message(eth_signable(last), signature=last.signature) == str(RIDER)
    assert ledger.fare(TRIP, running_fare(450_000)) == Chargeable(2_200_000, 2_200_000, CAP)
    assert ledger.fare(TRIP, 2_500_000).fare_micro == 2_200_000  # the meter asks more: the voucher bounds it
    assert ledger.close(TRIP).voucher == last and ledger.trip(TRIP) is None and ledger.used_nonces(RIDER) == {0}


EXAMPLE_RIDER = "0x7564105E977516C53bE337314c7E53838967bDaC"
EXAMPLE_CONSENT_DIGEST = "0xf0c68fe37f041c5e47134e7501df05c2c4989ee6f955f253441ec514e7e6dcc6"
EXAMPLE_CONSENT_SIGNATURE = (
    "0xc8506192f4960bd50b07c445942fdcfe3483cdf9b788e75feddd235ae217569c"
    "67521ce1b9df5ca820b337fffa4c9b776b71dd5d48fdd5c8833c3f051e25205f1b"
)
EXAMPLE_VOUCHER_DIGEST = "0x7705a548426cc71af60fb3b9d909d7140cacc252f12c52c0cc4bbebc5622c505"
EXAMPLE_VOUCHER_SIGNATURE = (
    "0xfc7bd0bfb304c2c58a783ba0b4496cf0dda5103061391536956e0a557ab11a01"
    "075fcc1691ee7a774b4dc597ddadb9c5f73f20ab8c3f977736a88a5daa1e4fe91c"
)


@settings(max_examples=15, deadline=None)
@given(
    steps=st.lists(st.integers(min_value=0, max_value=400_000), min_size=1, max_size=6),
    cap=st.integers(min_value=1, max_value=3_000_000),
    metered=st.integers(min_value=0, max_value=4_000_000),
    seed=st.integers(min_value=0, max_value=3),
)
def test_an_honest_apps_vouchers_are_all_accepted_and_the_fare_stays_within_every_bound(
    steps: list[int], cap: int, metered: int, seed: int
) -> None:
    key = rider_key(seed, 0)
    first = ride_consent(key, DOMAIN, vehicle_id=VEHICLE, tariff_id="ebike", nonce=seed, now_ms=UNLOCK_MS,
                         cap_micro=cap)  # fmt: skip
    ledger = ConsentLedger(DOMAIN, TARIFFS)
    assert ledger.unlock(TRIP, first, rider=address_of(key), vehicle_id=VEHICLE, unlock_ms=UNLOCK_MS).ok
    previous: Voucher | None = None
    running = 0
    for step in steps:
        running += step
        previous = next_voucher(key, DOMAIN, first, TRIP, running, previous)
        assert ledger.voucher(TRIP, previous, at_ms=UNLOCK_MS) == ACCEPTED
    assert previous is not None
    charge = ledger.fare(TRIP, metered)
    assert charge.fare_micro == min(metered, running, cap) == chargeable(ledger.close(TRIP), metered).fare_micro
    assert Address.parse(Account.recover_message(eth_signable(previous), signature=previous.signature)) == first.rider
