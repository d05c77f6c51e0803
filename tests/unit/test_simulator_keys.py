"""Keys of the simulated world: derived from the seed, separated by role, valid secp256k1 keys."""

from __future__ import annotations

import pytest

from sensors.errors import InvalidReading
from sensors.signing import SECP256K1_N, address_of
from simulator.keys import device_key, operator_key, owner_key, rider_key


def test_the_same_seed_and_name_give_the_same_key_on_every_call() -> None:
    assert device_key(7, "op", "bike-0001") == device_key(7, "op", "bike-0001")
    assert operator_key(7, "op") == operator_key(7, "op")
    assert rider_key(7, 3) == rider_key(7, 3) and owner_key(7, 3) == owner_key(7, 3)


def test_a_key_differs_by_seed_by_name_and_by_role() -> None:
    keys = [
        device_key(7, "op", "bike-0001"),
        device_key(8, "op", "bike-0001"),
        device_key(7, "op2", "bike-0001"),
        device_key(7, "op", "bike-0002"),
        operator_key(7, "op"),
        operator_key(8, "op"),
        rider_key(7, 0),
        rider_key(7, 1),
        owner_key(7, 0),
        owner_key(8, 0),
    ]
    assert len(set(keys)) == len(keys)
    assert len({address_of(k) for k in keys}) == len(keys)


def test_every_key_is_a_valid_secp256k1_private_key() -> None:
    keys = [rider_key(seed, i) for seed in range(5) for i in range(20)]
    assert all(len(k) == 32 and 1 <= int.from_bytes(k, "big") <= SECP256K1_N - 1 for k in keys)


def test_a_key_is_pinned_so_that_recorded_runs_stay_valid() -> None:
    assert device_key(0, "smartzone-demo", "bike-0001").hex() == PINNED_DEVICE_KEY


def test_a_name_outside_the_id_rules_or_a_negative_index_is_refused() -> None:
    with pytest.raises(InvalidReading):
        device_key(1, "op", "a/b")
    with pytest.raises(InvalidReading):
        operator_key(1, "")
    with pytest.raises(ValueError):
        rider_key(1, -1)


PINNED_DEVICE_KEY = "461af73c62165b20e186203c73f7d87a8ce83a373f6061b228de951734f5eee0"
