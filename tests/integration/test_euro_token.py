"""The euro token contract through the web3 adapter, on the embedded py-evm chain and on a real anvil node."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sensors.address import Address
from settlement.chain import TOKEN_CALL_GAS, TOKEN_DEPLOY_GAS, Web3Token
from settlement.contract import compiled
from settlement.errors import ChainError
from settlement.ports import MAX_UINT256, FakeToken, TokenPort
from tests.integration.nodes import ANVIL_KEYS, Node, commit, deployed_clearing

RIDER = Address(bytes([0x42] * 20))
ZERO = Address(bytes(20))
EUR = 1_000_000  # micro-EUR


def deployed(node: Node, faucet_cap: int = 0) -> tuple[Web3Token, Web3Token]:
    """A fresh token owned by the node's first account, and the same token sent to from its second account."""
    owner = Web3Token.connect(node.url, private_key=node.first_key, timeout=10)
    owner.deploy(faucet_cap)
    return owner, owner.with_key(node.second_key)


@pytest.fixture()
def token(node: Node) -> Web3Token:
    return deployed(node)[0]


def test_the_euro_has_six_decimals_and_no_supply_or_faucet_at_first(token: Web3Token) -> None:
    assert token.decimals() == 6
    assert token.total_supply() == 0
    assert token.faucet_cap() == 0
    assert token.is_minter(token.account)


def test_the_minter_mints_and_the_supply_follows(token: Web3Token) -> None:
    token.mint(RIDER, 12 * EUR + 345_678)
    token.mint(token.account, 1)

    assert token.balance_of(RIDER) == 12_345_678
    assert token.balance_of(token.account) == 1
    assert token.total_supply() == 12_345_679


def test_anyone_but_a_minter_is_refused_with_the_reason(node: Node) -> None:
    owner, stranger = deployed(node)

    with pytest.raises(ChainError, match="mint reverted: erc20: access is denied"):
        stranger.mint(stranger.account, EUR)
    assert owner.total_supply() == 0


def test_a_minter_named_by_the_owner_mints_until_it_is_revoked(node: Node) -> None:
    owner, peg = deployed(node)

    owner.set_minter(peg.account, True)
    peg.mint(RIDER, 5 * EUR)
    owner.set_minter(peg.account, False)

    assert not owner.is_minter(peg.account)
    with pytest.raises(ChainError, match="access is denied"):
        peg.mint(RIDER, 1)
    assert owner.balance_of(RIDER) == 5 * EUR


def test_the_faucet_is_off_unless_deployed_with_a_cap(node: Node) -> None:
    _, rider = deployed(node)

    with pytest.raises(ChainError, match="faucet reverted: euro: no faucet"):
        rider.faucet(1)
    assert rider.balance_of(rider.account) == 0


def test_a_demo_faucet_mints_to_the_caller_at_most_its_cap_per_call(node: Node) -> None:
    owner, rider = deployed(node, faucet_cap=20 * EUR)

    rider.faucet(20 * EUR)
    rider.faucet(1)
    with pytest.raises(ChainError, match="faucet reverted: euro: above the faucet cap"):
        rider.faucet(20 * EUR + 1)

    assert owner.faucet_cap() == 20 * EUR
    assert rider.balance_of(rider.account) == 20 * EUR + 1
    assert owner.total_supply() == 20 * EUR + 1


def test_a_transfer_moves_micro_euros_and_never_more_than_the_balance(node: Node) -> None:
    owner, rider = deployed(node)
    owner.mint(rider.account, 3 * EUR)

    rider.transfer(RIDER, 2 * EUR + 1)
    with pytest.raises(ChainError, match="transfer reverted: erc20: transfer amount exceeds balance"):
        rider.transfer(RIDER, EUR)

    assert rider.balance_of(rider.account) == EUR - 1
    assert rider.balance_of(RIDER) == 2 * EUR + 1
    assert rider.total_supply() == 3 * EUR


def test_a_holder_burns_its_own_tokens_and_the_supply_shrinks(node: Node) -> None:
    owner, rider = deployed(node)
    owner.mint(rider.account, 3 * EUR)

    rider.burn(EUR)
    with pytest.raises(ChainError, match="burn reverted: erc20: burn amount exceeds balance"):
        rider.burn(2 * EUR + 1)

    assert rider.balance_of(rider.account) == 2 * EUR
    assert owner.total_supply() == 2 * EUR


def test_token_ownership_and_its_minter_role_move_only_when_the_new_owner_accepts(node: Node) -> None:
    owner, heir = deployed(node)
    contract = owner.sender.contract("euro_token", str(owner.address))
    as_heir = heir.sender.contract("euro_token", str(owner.address))

    owner.sender.send(contract.functions.transfer_ownership(heir.account.checksum), 100_000, "transfer_ownership")
    owner.mint(RIDER, 1)  # the owner is still the owner and a minter until the heir accepts
    with pytest.raises(ChainError, match="access is denied"):
        heir.mint(RIDER, 1)
    with pytest.raises(ChainError, match="euro: caller is not the pending owner"):
        owner.sender.send(contract.functions.accept_ownership(), 100_000, "accept_ownership")
    heir.sender.send(as_heir.functions.accept_ownership(), 100_000, "accept_ownership")

    assert contract.functions.owner().call() == heir.account.checksum
    assert (owner.is_minter(owner.account), owner.is_minter(heir.account)) == (False, True)
    heir.mint(RIDER, 2)
    with pytest.raises(ChainError, match="ownable: caller is not the owner"):
        owner.set_minter(RIDER, True)
    assert owner.balance_of(RIDER) == 3


def test_the_clearing_contract_and_the_token_send_from_one_account_with_one_nonce_counter(node: Node) -> None:
    clearing, token = deployed_clearing(node.url, private_key=node.first_key)

    clearing.commit(commit(1))
    token.mint(RIDER, 5)
    clearing.commit(commit(2))
    token.mint(RIDER, 6)

    assert token.account == clearing.account
    assert (clearing.last_epoch(), token.balance_of(RIDER)) == (2, 11)


def test_neither_contract_can_renounce_its_ownership() -> None:
    for name in ("clearing", "euro_token"):
        functions = {entry["name"] for entry in compiled(name).abi if entry["type"] == "function"}

        assert {"owner", "pending_owner", "transfer_ownership", "accept_ownership"} <= functions, name
        assert "renounce_ownership" not in functions, name


def test_the_token_keeps_eip2612_permit_for_deposits_by_signature() -> None:
    functions = {entry["name"] for entry in compiled("euro_token").abi if entry["type"] == "function"}

    assert {"permit", "nonces", "DOMAIN_SEPARATOR", "eip712Domain", "burn_from", "transferFrom"} <= functions


Act = Callable[[TokenPort, TokenPort], object]
# (faucet cap, what the owner or a stranger tries after the owner minted 1,000 to itself, the reason)
BAD_CALLS: dict[str, tuple[int, Act, str]] = {
    "mint-by-a-stranger": (0, lambda o, s: s.mint(s.account, 1), "mint reverted: erc20: access is denied"),
    "mint-to-zero": (0, lambda o, s: o.mint(ZERO, 1), "mint reverted: erc20: mint to the zero address"),
    "mint-over-the-supply": (0, lambda o, s: o.mint(RIDER, MAX_UINT256), "mint reverted"),
    "no-faucet": (0, lambda o, s: s.faucet(1), "faucet reverted: euro: no faucet"),
    "faucet-above-cap": (500, lambda o, s: s.faucet(501), "faucet reverted: euro: above the faucet cap"),
    "transfer-above-balance": (0, lambda o, s: o.transfer(RIDER, 1_001), "erc20: transfer amount exceeds balance"),
    "transfer-to-zero": (0, lambda o, s: o.transfer(ZERO, 1), "transfer reverted: erc20: transfer to the zero"),
    "burn-above-balance": (0, lambda o, s: o.burn(1_001), "burn reverted: erc20: burn amount exceeds balance"),
    "minter-by-a-stranger": (
        0,
        lambda o, s: s.set_minter(s.account, True),
        "set_minter reverted: ownable: caller is not the owner",
    ),
    "zero-minter": (0, lambda o, s: o.set_minter(ZERO, True), "set_minter reverted: erc20: minter is the zero"),
    "owner-as-minter": (0, lambda o, s: o.set_minter(o.account, False), "erc20: minter is owner address"),
    "negative": (0, lambda o, s: o.transfer(RIDER, -1), "outside 0 .. 2\\*\\*256 - 1"),
    "above-uint256": (0, lambda o, s: o.mint(RIDER, MAX_UINT256 + 1), "outside 0 .. 2\\*\\*256 - 1"),
    "not-whole": (0, lambda o, s: o.mint(RIDER, 1.5), "a whole number of micro-EUR"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("name", BAD_CALLS)
def test_the_contract_and_the_fake_token_refuse_the_same_calls(node: Node, name: str) -> None:
    faucet_cap, act, reason = BAD_CALLS[name]
    owner, stranger = deployed(node, faucet_cap)
    fake = FakeToken(owner.account)
    fake.deploy(faucet_cap)
    fake_stranger = fake.as_account(stranger.account)

    for o, s in ((owner, stranger), (fake, fake_stranger)):
        o.mint(o.account, 1_000)
        with pytest.raises(ChainError, match=reason):
            act(o, s)
        assert o.total_supply() == o.balance_of(o.account) == 1_000
        assert o.balance_of(s.account) == o.balance_of(RIDER) == 0
        assert not o.is_minter(s.account)


@pytest.mark.services
def test_the_gas_of_a_mint_a_transfer_and_a_faucet_call_on_anvil(anvil_url: str) -> None:
    owner, rider = deployed(Node(anvil_url, *ANVIL_KEYS), faucet_cap=20 * EUR)
    w3 = owner.sender.w3
    [deployment] = w3.eth.get_block("latest")["transactions"]  # anvil mines each transaction in its own block
    assert isinstance(deployment, bytes)
    deploy_gas = int(w3.eth.get_transaction_receipt(deployment)["gasUsed"])

    gas = {
        "mint to a new holder": owner.mint(RIDER, EUR).gas_used,
        "mint to a holder": owner.mint(RIDER, EUR).gas_used,
        "faucet to a new holder": rider.faucet(20 * EUR).gas_used,
        "transfer to a holder": rider.transfer(RIDER, EUR).gas_used,
        "transfer to a new holder": rider.transfer(Address(bytes([0x43] * 20)), EUR).gas_used,
        "burn": rider.burn(EUR).gas_used,
    }

    print(f"\neuro token gas on anvil: deploy {deploy_gas:,},", ", ".join(f"{what} {n:,}" for what, n in gas.items()))
    assert deploy_gas < TOKEN_DEPLOY_GAS and max(gas.values()) < TOKEN_CALL_GAS  # the explicit limits leave room
