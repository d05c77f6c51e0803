"""The money settings: fee, zone account, windows and token address, validated once at the entry point."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sensors.address import Address
from sensors.signing import address_of
from simulator.keys import zone_key
from smartzone.settings import Settings

ZONE = "0x" + "ab" * 20


def test_defaults_charge_no_fee_final_at_once_and_a_withdrawal_delay() -> None:
    s = Settings(_env_file=None)
    assert (s.fee_bps, s.challenge_blocks, s.withdraw_delay_blocks, s.token_address) == (0, 0, 100, None)


def test_a_fee_without_a_zone_account_is_refused_outside_demo_mode() -> None:
    with pytest.raises(ValidationError, match="SMARTZONE_ZONE_ACCOUNT"):
        Settings(_env_file=None, fee_bps=500)


def test_in_demo_mode_the_zone_account_is_derived_from_the_seed() -> None:
    s = Settings(_env_file=None, fee_bps=500, demo=True, seed=11)
    assert s.zone() == address_of(zone_key(11)) != Settings(_env_file=None, demo=True, seed=12).zone()


def test_a_configured_zone_account_is_kept_in_its_checksum_form() -> None:
    s = Settings(_env_file=None, fee_bps=10_000, zone_account=ZONE)
    assert s.zone() == Address.parse(ZONE) and s.zone_account == Address.parse(ZONE).checksum


@pytest.mark.parametrize(
    "field, value",
    [("fee_bps", -1), ("fee_bps", 10_001), ("challenge_blocks", -1), ("withdraw_delay_blocks", 2**48),
     ("zone_account", "0x1234"), ("token_address", "not an address")],
)  # fmt: skip
def test_out_of_range_money_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(_env_file=None, **{"zone_account": ZONE, field: value})


def test_the_money_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTZONE_FEE_BPS", "250")
    monkeypatch.setenv("SMARTZONE_ZONE_ACCOUNT", ZONE)
    monkeypatch.setenv("SMARTZONE_CHALLENGE_BLOCKS", "12")
    monkeypatch.setenv("SMARTZONE_WITHDRAW_DELAY_BLOCKS", "300")
    s = Settings()
    assert (s.fee_bps, s.challenge_blocks, s.withdraw_delay_blocks) == (250, 12, 300)


def test_an_epoch_is_final_after_one_confirmation_on_the_embedded_chain_or_in_demo_mode_else_twelve() -> None:
    assert Settings(_env_file=None).final_after() == 1  # the embedded chain
    assert Settings(_env_file=None, chain_url="http://127.0.0.1:8545", demo=True).final_after() == 1
    assert Settings(_env_file=None, chain_url="http://127.0.0.1:8545").final_after() == 12
    assert Settings(_env_file=None, chain_url="http://127.0.0.1:8545", confirmations=3).final_after() == 3
    with pytest.raises(ValidationError):
        Settings(_env_file=None, confirmations=0)
