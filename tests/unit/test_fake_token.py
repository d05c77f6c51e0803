"""The in-memory euro token: the contract's rules and revert reasons, without a chain."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from sensors.address import Address
from settlement.contract import source
from settlement.errors import ChainError
from settlement.ports import MAX_UINT256, TOKEN_DECIMALS, FakeToken, check_amount

OWNER = Address(bytes([0x0A] * 20))
PEG = Address(bytes([0x0B] * 20))
RIDER = Address(bytes([0x0C] * 20))
ZERO = Address(bytes(20))


def deployed(faucet_cap: int = 0) -> FakeToken:
    token = FakeToken(OWNER)
    token.deploy(faucet_cap)
    return token


def test_the_deployer_owns_the_token_and_is_its_first_minter() -> None:
    token = deployed()

    assert token.decimals() == 6
    assert (token.total_supply(), token.faucet_cap()) == (0, 0)
    assert token.is_minter(OWNER) and not token.is_minter(PEG)
    assert token.ledger is not None and token.ledger.owner == OWNER


def test_a_token_is_used_only_once_deployed_or_attached_at_its_address() -> None:
    token = FakeToken(OWNER)

    with pytest.raises(ChainError, match="deploy\\(\\) or attach\\(\\) first"):
        token.balance_of(RIDER)
    address = token.deploy()
    token.attach(address)
    with pytest.raises(ChainError, match="no euro_token contract"):
        token.attach("0x" + "11" * 20)


def test_minting_credits_the_holder_and_the_supply() -> None:
    token = deployed()

    token.mint(RIDER, 2_500_000)
    token.mint(RIDER, 1)

    assert token.balance_of(RIDER) == token.total_supply() == 2_500_001


def test_only_a_minter_mints_and_only_the_owner_names_minters() -> None:
    token = deployed()
    peg = token.as_account(PEG)

    with pytest.raises(ChainError, match="mint reverted: erc20: access is denied"):
        peg.mint(RIDER, 1)
    with pytest.raises(ChainError, match="set_minter reverted: ownable: caller is not the owner"):
        peg.set_minter(PEG, True)
    token.set_minter(PEG, True)
    peg.mint(RIDER, 7)
    token.set_minter(PEG, False)
    with pytest.raises(ChainError, match="access is denied"):
        peg.mint(RIDER, 1)

    assert token.balance_of(RIDER) == 7


def test_the_owner_cannot_drop_its_own_minter_role_nor_name_the_zero_address() -> None:
    token = deployed()

    with pytest.raises(ChainError, match="erc20: minter is owner address"):
        token.set_minter(OWNER, False)
    with pytest.raises(ChainError, match="erc20: minter is the zero address"):
        token.set_minter(ZERO, True)
    assert token.is_minter(OWNER)


def test_the_faucet_is_off_without_a_cap_and_capped_per_call_with_one() -> None:
    with pytest.raises(ChainError, match="faucet reverted: euro: no faucet"):
        deployed().as_account(RIDER).faucet(1)

    rider = deployed(faucet_cap=1_000).as_account(RIDER)
    rider.faucet(1_000)
    rider.faucet(1_000)
    with pytest.raises(ChainError, match="faucet reverted: euro: above the faucet cap"):
        rider.faucet(1_001)
    assert rider.balance_of(RIDER) == rider.total_supply() == 2_000


def test_a_transfer_moves_at_most_the_balance_and_never_to_the_zero_address() -> None:
    token = deployed()
    token.mint(OWNER, 100)

    token.transfer(RIDER, 60)
    token.transfer(OWNER, 10)  # to oneself: nothing moves
    with pytest.raises(ChainError, match="transfer reverted: erc20: transfer amount exceeds balance"):
        token.transfer(RIDER, 41)
    with pytest.raises(ChainError, match="transfer reverted: erc20: transfer to the zero address"):
        token.transfer(ZERO, 1)

    assert (token.balance_of(OWNER), token.balance_of(RIDER), token.total_supply()) == (40, 60, 100)


def test_burning_destroys_at_most_the_callers_balance() -> None:
    token = deployed()
    token.mint(RIDER, 100)
    rider = token.as_account(RIDER)

    rider.burn(30)
    with pytest.raises(ChainError, match="burn reverted: erc20: burn amount exceeds balance"):
        rider.burn(71)

    assert rider.balance_of(RIDER) == rider.total_supply() == 70


@pytest.mark.parametrize("amount", [-1, MAX_UINT256 + 1, 1.5, True, "5"])
def test_amounts_are_whole_micro_euros_that_fit_256_bits(amount: object) -> None:
    token = deployed(faucet_cap=10)

    for call in (lambda: token.mint(RIDER, amount), lambda: token.faucet(amount), lambda: token.burn(amount)):  # type: ignore[arg-type]
        with pytest.raises(ChainError, match="whole number of micro-EUR|outside 0"):
            call()
    assert token.total_supply() == 0


def test_the_supply_cannot_overflow_256_bits() -> None:
    token = deployed()
    token.mint(RIDER, MAX_UINT256)

    with pytest.raises(ChainError, match="mint reverted"):
        token.mint(OWNER, 1)
    assert check_amount(MAX_UINT256) == MAX_UINT256
    assert token.total_supply() == MAX_UINT256


def test_the_fakes_reasons_and_decimals_are_the_contracts() -> None:
    ours = source("euro_token").read_text(encoding="utf-8")
    imported = _snekmate("tokens/erc20.vy") + _snekmate("auth/ownable.vy")

    [decimals] = re.findall(r"^DECIMALS: constant\(uint8\) = (\d+)$", ours, re.MULTILINE)
    assert int(decimals) == TOKEN_DECIMALS
    for reason in ("euro: no faucet", "euro: above the faucet cap"):
        assert f'"{reason}"' in ours
    for reason in (
        "erc20: access is denied",
        "erc20: mint to the zero address",
        "erc20: transfer amount exceeds balance",
        "erc20: transfer to the zero address",
        "erc20: burn amount exceeds balance",
        "erc20: minter is the zero address",
        "erc20: minter is owner address",
        "ownable: caller is not the owner",
    ):
        assert f'"{reason}"' in imported, reason


def _snekmate(relative: str) -> str:
    """A module of snekmate, the library the contract is built from."""
    spec = importlib.util.find_spec("snekmate")
    assert spec is not None and spec.submodule_search_locations
    return (Path(next(iter(spec.submodule_search_locations))) / relative).read_text(encoding="utf-8")
