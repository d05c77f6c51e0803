"""The web3 chain adapter against the embedded py-evm chain and a real anvil node."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from settlement.chain import Web3Chain
from settlement.errors import ChainError, ChainUnavailable
from settlement.ports import EpochCommit
from tests import services

OWNERS = (
    "0x1111111111111111111111111111111111111111",
    "0x2222222222222222222222222222222222222222",
    "0x3333333333333333333333333333333333333333",
)
ROOT = bytes.fromhex("ab" * 32)


@dataclass(frozen=True)
class Node:
    """A chain to test against and the keys of two funded accounts on it (the first is unlocked too)."""

    url: str | None
    first_key: str
    second_key: str


# eth-tester funds the accounts of the private keys 1, 2, 3, ...
EMBEDDED = Node(None, "0x" + "00" * 31 + "01", "0x" + "00" * 31 + "02")
# anvil's well-known development keys #0 and #1 (mnemonic "test test ... junk"): for tests only.
ANVIL_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
)


@pytest.fixture(
    params=[
        pytest.param("py-evm", id="py-evm"),
        pytest.param("anvil", id="anvil", marks=pytest.mark.services),
    ]
)
def node(request: pytest.FixtureRequest) -> Node:
    if request.param == "py-evm":
        return EMBEDDED
    return Node(request.getfixturevalue("anvil_url"), *ANVIL_KEYS)


@pytest.fixture()
def chain(node: Node) -> Web3Chain:
    chain = Web3Chain.connect(node.url, timeout=10)
    chain.deploy()
    return chain


def commit(epoch_id: int, amounts: tuple[int, ...] = (1_500_000, 250_000, 2_000)) -> EpochCommit:
    payouts = tuple(zip(OWNERS, amounts, strict=False))
    return EpochCommit(epoch_id, ROOT, 7, sum(amounts), payouts)


def test_a_settled_epoch_can_be_read_back_from_the_contract(chain: Web3Chain) -> None:
    receipt = chain.settle(commit(1))

    assert receipt.gas_used > 0
    assert receipt.tx_hash.startswith("0x") and len(receipt.tx_hash) == 66
    assert receipt.block_hash.startswith("0x") and len(receipt.block_hash) == 66
    assert chain.last_epoch() == 1
    on_chain = chain.epoch(1)
    assert (on_chain.epoch_id, on_chain.trips_root, on_chain.trip_count) == (1, ROOT, 7)
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


def test_an_epoch_without_payouts_fits_its_gas_limit(chain: Web3Chain) -> None:
    receipt = chain.settle(EpochCommit(1, bytes(32), 0, 0, ()))

    assert receipt.gas_used > 0
    assert chain.epoch(1).trip_count == 0


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


def test_payouts_that_do_not_add_up_to_the_total_revert_on_chain(chain: Web3Chain) -> None:
    bad = EpochCommit(1, ROOT, 7, 1_000, ((OWNERS[0], 600), (OWNERS[1], 300)))

    with pytest.raises(ChainError, match="do not add up"):
        chain.settle(bad)
    assert chain.last_epoch() == 0
    assert chain.owed(OWNERS[0]) == 0


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
    assert signing.owed(OWNERS[0].lower()) == 1_500_005


def test_attaching_to_an_address_without_code_is_refused(chain: Web3Chain) -> None:
    with pytest.raises(ChainError, match="no settlement contract"):
        chain.attach(OWNERS[0])


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
