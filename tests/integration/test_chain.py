"""The web3 chain adapter against the embedded py-evm chain and a real anvil node."""

from __future__ import annotations

import dataclasses

import pytest
from web3 import HTTPProvider, Web3

from sensors.address import Address
from settlement.chain import Web3Chain
from settlement.contract import compiled
from settlement.errors import ChainError, ChainUnavailable
from settlement.ports import MAX_OWNERS_PER_EPOCH, EpochCommit, FakeChain
from tests import services
from tests.integration.nodes import OWNERS, REGISTRY_ROOT, ROOT, Node, commit


@pytest.fixture()
def chain(node: Node) -> Web3Chain:
    chain = Web3Chain.connect(node.url, timeout=10)
    chain.deploy()
    return chain


def many_owners(epoch_id: int, n: int) -> EpochCommit:
    owners = [Address((0x1000 + i).to_bytes(20, "big")) for i in range(n)]
    return EpochCommit(epoch_id, ROOT, n, 1_000 * n, tuple((o, 1_000) for o in owners), REGISTRY_ROOT)


def test_a_settled_epoch_can_be_read_back_from_the_contract(chain: Web3Chain) -> None:
    receipt = chain.settle(commit(1))

    assert receipt.gas_used > 0
    assert receipt.tx_hash.startswith("0x") and len(receipt.tx_hash) == 66
    assert receipt.block_hash.startswith("0x") and len(receipt.block_hash) == 66
    assert chain.last_epoch() == 1
    on_chain = chain.epoch(1)
    assert (on_chain.epoch_id, on_chain.trips_root, on_chain.trip_count) == (1, ROOT, 7)
    assert on_chain.registry_root == REGISTRY_ROOT
    assert on_chain.total_micro == 1_752_000
    assert [chain.owed(owner) for owner in OWNERS] == [1_500_000, 250_000, 2_000]
    assert chain.total_settled() == 1_752_000


def test_credits_accumulate_over_epochs(chain: Web3Chain) -> None:
    chain.settle(commit(1))
    chain.settle(commit(2, (10, 20)))

    assert [chain.owed(owner) for owner in OWNERS] == [1_500_010, 250_020, 2_000]
    assert chain.total_settled() == 1_752_030
    assert chain.last_epoch() == 2


def test_the_transaction_that_settled_an_epoch_is_found_again_from_its_event(node: Node, chain: Web3Chain) -> None:
    first = chain.settle(commit(1))
    second = chain.settle(commit(2, (10, 20)))
    assert chain.address is not None
    another = Web3Chain.connect(node.url, timeout=10) if node.url else chain.with_key(None)
    another.attach(chain.address)  # as after a restart: the deployment block is not known here

    assert another.settlement_receipt(2) == second
    assert another.settlement_receipt(1) == first
    with pytest.raises(ChainError, match="no settlement of epoch 3"):
        another.settlement_receipt(3)


def test_each_epoch_keeps_the_registry_root_it_was_settled_with(chain: Web3Chain) -> None:
    chain.settle(commit(1))
    chain.settle(dataclasses.replace(commit(2, (10,)), registry_root=b"\xee" * 32))

    assert [chain.epoch(i).registry_root for i in (1, 2)] == [REGISTRY_ROOT, b"\xee" * 32]
    with pytest.raises(ChainError, match="epoch 3 is not settled"):
        chain.epoch(3)


def test_an_epoch_whose_trips_earned_nothing_fits_its_gas_limit(chain: Web3Chain) -> None:
    receipt = chain.settle(EpochCommit(1, ROOT, 1, 0, (), REGISTRY_ROOT))

    assert receipt.gas_used > 0
    assert chain.epoch(1).trip_count == 1


ZERO = Address(bytes(20))
BAD_COMMITS = {
    "zero-trips-root": (dataclasses.replace(commit(1), trips_root=bytes(32)), "zero trips root"),
    "zero-trips": (dataclasses.replace(commit(1), trip_count=0), "zero trips"),
    "descending-owners": (dataclasses.replace(commit(1), payouts=commit(1).payouts[::-1]), "not strictly ascending"),
    "owner-twice": (
        dataclasses.replace(commit(1), payouts=((OWNERS[0], 1_000), (OWNERS[0], 752_000), (OWNERS[2], 999_000))),
        "not strictly ascending",
    ),
    "zero-owner": (dataclasses.replace(commit(1), payouts=((ZERO, 1_752_000),)), "zero owner address"),
    "sum": (dataclasses.replace(commit(1), total_micro=1_000), "do not add up"),
}


@pytest.mark.parametrize("name", BAD_COMMITS)
def test_the_contract_and_the_fake_chain_refuse_the_same_commits(chain: Web3Chain, name: str) -> None:
    bad, message = BAD_COMMITS[name]

    with pytest.raises(ChainError, match=f"reverted: settlement: .*{message}"):
        chain.settle(bad)
    with pytest.raises(ChainError, match=message):
        FakeChain().settle(bad)
    assert chain.last_epoch() == 0 and chain.total_settled() == 0
    assert chain.owed(OWNERS[0]) == 0


def test_the_same_epoch_cannot_be_settled_twice(chain: Web3Chain) -> None:
    chain.settle(commit(1))

    with pytest.raises(ChainError, match="out of sequence"):
        chain.settle(commit(1))
    assert chain.total_settled() == 1_752_000


def test_an_epoch_cannot_skip_ahead(chain: Web3Chain) -> None:
    chain.settle(commit(1))

    with pytest.raises(ChainError, match="out of sequence"):
        chain.settle(commit(3))
    assert chain.last_epoch() == 1


def test_more_owners_than_the_contract_takes_are_refused_before_sending(chain: Web3Chain) -> None:
    with pytest.raises(ChainError, match=f"at most {MAX_OWNERS_PER_EPOCH}"):
        chain.settle(many_owners(1, MAX_OWNERS_PER_EPOCH + 1))
    assert chain.last_epoch() == 0


@pytest.mark.services
def test_an_epoch_of_the_most_owners_fits_its_gas_limit_on_anvil(anvil_url: str) -> None:
    chain = Web3Chain.connect(anvil_url, timeout=30)
    chain.deploy()

    receipt = chain.settle(many_owners(1, MAX_OWNERS_PER_EPOCH))

    assert receipt.gas_used > 0
    assert chain.owed(Address((0x1000 + MAX_OWNERS_PER_EPOCH - 1).to_bytes(20, "big"))) == 1_000


def test_ownership_can_be_transferred_in_two_steps_but_not_renounced() -> None:
    functions = {entry["name"] for entry in compiled("settlement").abi if entry["type"] == "function"}

    assert {"owner", "pending_owner", "transfer_ownership", "accept_ownership", "settle_epoch"} <= functions
    assert "renounce_ownership" not in functions


def test_ownership_moves_only_when_the_new_owner_accepts_and_the_old_one_settles_until_then(node: Node) -> None:
    owner = Web3Chain.connect(node.url, private_key=node.first_key, timeout=10)
    owner.deploy()
    heir = owner.with_key(node.second_key)

    owner.transfer_ownership(Address.parse(heir.account))
    with pytest.raises(ChainError, match="epoch 1 reverted: ownable: caller is not the owner"):
        heir.settle(commit(1))  # a pending owner cannot settle
    owner.settle(commit(1))
    assert owner.owner() == Address.parse(owner.account)
    with pytest.raises(ChainError, match="accept_ownership reverted: ownable_2step: caller is not the new owner"):
        owner.accept_ownership()

    heir.accept_ownership()

    assert owner.owner() == Address.parse(heir.account)
    with pytest.raises(ChainError, match="not the owner"):
        owner.settle(commit(2))
    heir.settle(commit(2))
    assert heir.last_epoch() == 2


@pytest.mark.services
def test_a_call_to_renounce_ownership_reverts_and_leaves_the_owner(anvil_url: str) -> None:
    chain = Web3Chain.connect(anvil_url, timeout=10)
    address = chain.deploy()
    w3 = Web3(HTTPProvider(anvil_url))
    renounce = {
        "type": "function",
        "name": "renounce_ownership",
        "inputs": [],
        "outputs": [],
        "stateMutability": "nonpayable",
    }
    contract = w3.eth.contract(address=Web3.to_checksum_address(address), abi=[*compiled().abi, renounce])

    tx = contract.functions.renounce_ownership().transact({"from": chain.account, "gas": 100_000})
    receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=10)

    assert receipt["status"] == 0
    assert contract.functions.owner().call() == chain.account
    chain.settle(commit(1))
    assert chain.last_epoch() == 1


def test_only_the_owner_can_settle(node: Node, chain: Web3Chain) -> None:
    stranger = chain.with_key(node.second_key)

    with pytest.raises(ChainError, match="not the owner"):
        stranger.settle(commit(1))
    assert stranger.last_epoch() == 0


def test_a_locally_signing_chain_deploys_and_settles(node: Node) -> None:
    signing = Web3Chain.connect(node.url, private_key=node.first_key, timeout=10)
    signing.deploy()

    first = signing.settle(commit(1))
    second = signing.settle(commit(2, (5,)))

    assert second.block_number > first.block_number
    assert signing.last_epoch() == 2
    assert signing.owed(Address.parse(str(OWNERS[0]).lower())) == 1_500_005


def test_attaching_to_an_address_without_code_is_refused(chain: Web3Chain) -> None:
    with pytest.raises(ChainError, match="no settlement contract"):
        chain.attach(str(OWNERS[0]))


@pytest.mark.services
def test_another_connection_can_attach_to_a_deployed_contract(anvil_url: str) -> None:
    deployer = Web3Chain.connect(anvil_url, timeout=10)
    address = deployer.deploy()
    deployer.settle(commit(1))

    reader = Web3Chain.connect(anvil_url, timeout=10)
    reader.attach(address.lower())

    assert reader.address == address
    assert reader.last_epoch() == 1


def test_an_unreachable_node_is_reported_in_one_line_naming_its_url() -> None:
    url = f"http://127.0.0.1:{services.free_port()}"

    with pytest.raises(ChainUnavailable) as caught:
        Web3Chain.connect(url, timeout=2)

    message = str(caught.value)
    assert url in message
    assert "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
