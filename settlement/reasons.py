"""Why a message or a trip was turned away: one code per rule, counted per code (pure)."""

from __future__ import annotations

import enum


class RejectCode(enum.StrEnum):
    """The reason code of a dead-lettered message or a rejected trip."""

    # decoding (sensors.codec)
    MALFORMED = "malformed"  # not UTF-8 JSON, not an object
    TOO_LARGE = "too_large"  # payload over the size limit
    SCHEMA = "schema"  # violates the channel's JSON Schema (an owner in a state message lands here)
    BAD_TOPIC = "bad_topic"  # not of the v1 topic layout
    TOPIC_MISMATCH = "topic_mismatch"  # payload names another vehicle or operator than its topic
    OUT_OF_RANGE = "out_of_range"  # a number that would not fit its column
    BAD_ADDRESS = "bad_address"
    # trust (settlement.verification)
    UNKNOWN_VEHICLE = "unknown_vehicle"
    UNKNOWN_OPERATOR = "unknown_operator"
    REVOKED_DEVICE = "revoked_device"
    NOT_REGISTERED_THEN = "not_registered_then"  # no registry entry valid at the message's time
    OPERATOR_MISMATCH = "operator_mismatch"
    KIND_MISMATCH = "kind_mismatch"
    MISSING_SIGNATURE = "missing_signature"
    BAD_SIGNATURE = "bad_signature"  # malformed, or signed by another key than the registered device
    STALE_SEQ = "stale_seq"  # too far below the vehicle's last accepted seq: a replay
    STALE_STATE = "stale_state"  # a state older than the last accepted one
    FUTURE_TIMESTAMP = "future_timestamp"
    OVERLAPPING_PERIOD = "overlapping_period"  # a registration overlapping another entry of its vehicle
    # plausibility of a reading (settlement.bounds)
    IMPLAUSIBLE_SPEED = "implausible_speed"
    IMPLAUSIBLE_ODOMETER = "implausible_odometer"
    # storage
    STORE_ERROR = "store_error"  # the database refused this one message
    # trips (settlement.trips, settlement.bounds)
    NO_UNLOCK = "no_unlock"  # a lock whose unlock never came
    NO_LOCK = "no_lock"  # an unlock whose lock never came
    UNLOCK_TWICE = "unlock_twice"  # a later trip of the vehicle ended while this one was still open
    LOCK_TWICE = "lock_twice"  # a second, different lock for a trip that already ended
    BAD_PAIR = "bad_pair"  # a lock naming a trip_seq at or above its own seq
    ODOMETER_BACKWARDS = "odometer_backwards"
    TRIP_TOO_LONG = "trip_too_long"
    TRIP_TOO_FAR = "trip_too_far"
    TRIP_TOO_FAST = "trip_too_fast"
    FARE_CAP = "fare_cap"
    # money (settlement.epochs): a trip nobody can be charged for
    NO_RIDER_ACCOUNT = "no_rider_account"  # the rider is not named by an address
    INSUFFICIENT_DEPOSIT = "insufficient_deposit"  # the rider's unspent deposit does not cover the fare
    # the rider's consent carried by an unlock (settlement.consent): a refusal rejects the trip for good
    NO_CONSENT = "no_consent"  # an unlock without a consent to pay
    CONSENT_BAD_SIGNATURE = "consent_bad_signature"  # missing, malformed, or recovers no key
    CONSENT_WRONG_SIGNER = "consent_wrong_signer"  # signed by another key than its rider's
    CONSENT_OTHER_RIDER = "consent_other_rider"  # names another rider than the unlock's
    CONSENT_OTHER_VEHICLE = "consent_other_vehicle"  # names another vehicle than the unlocked one
    UNKNOWN_TARIFF = "unknown_tariff"  # a tariff id no pricing plan has
    TARIFF_MISMATCH = "tariff_mismatch"  # a known tariff, but not the unlocked vehicle's
    CONSENT_ZERO_CAP = "consent_zero_cap"
    CONSENT_EXPIRED = "consent_expired"  # expiry at or before the unlock
    NONCE_REUSED = "nonce_reused"  # the rider's nonce was used by an earlier accepted consent
    CONSENT_TWICE = "consent_twice"  # another consent for a trip that already has one
    # a rider's voucher (settlement.consent): a refusal drops the voucher, the trip keeps its last accepted one
    VOUCHER_BAD_SIGNATURE = "voucher_bad_signature"
    VOUCHER_WRONG_SIGNER = "voucher_wrong_signer"
    VOUCHER_NO_CONSENT = "voucher_no_consent"  # for a trip without a consent (yet: an unlock not arrived)
    VOUCHER_OTHER_RIDER = "voucher_other_rider"
    VOUCHER_OTHER_TRIP = "voucher_other_trip"  # names a trip of another vehicle, or another trip than given for
    VOUCHER_EXPIRED = "voucher_expired"  # sent at or after the consent's expiry
    VOUCHER_ABOVE_CAP = "voucher_above_cap"
    VOUCHER_REPLAYED = "voucher_replayed"  # seq not above the last accepted voucher's
    VOUCHER_DECREASING = "voucher_decreasing"  # cumulative amount below the last accepted voucher's
    VOUCHER_LATE = "voucher_late"  # for a trip already complete: its lock carried the last voucher
