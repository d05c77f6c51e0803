"""The web3 chain adapter against the embedded py-evm chain and a real anvil node: attaching, events, errors."""

from __future__ import annotations

import pytest
from web3 import HTTPProvider, Web3

from sensors.address import Address
from settlement.chain import Web3Clearing
from settlement.contract import compiled
from settlement.errors import ChainError, ChainUnavailable
from tests import services
from tests.integration.nodes import REGISTRY_ROOT, Node, commit, deployed_clearing


def test_the_commit_of_an_epoch_and_its_registry_root_are_found_again_from_its_event(node: Node) -> None:
    clearing, _ = deployed_clearing(node.url)
    first = clearing.commit(commit(1))
    second = clearing.commit(commit(2, registry_root=b"\xee" * 32))
    assert clearing.address is not None
    another = Web3Clearing.connect(node.url, timeout=10) if node.url else clearing.with_key(None)
    another.attach(clearing.address)  # as after a restart: the deployment block is not known here

    assert another.commit_receipt(2) == second
    assert another.commit_receipt(1) == first
    with pytest.raises(ChainError, match="no commit of epoch 3"):
        another.commit_receipt(3)
    logs = another._deployed.events.EpochCommitted().get_logs(from_block=0)
    assert [bytes(log["args"]["registry_root"]) for log in logs] == [REGISTRY_ROOT, b"\xee" * 32]


@pytest.mark.services
def test_a_call_to_renounce_ownership_reverts_and_leaves_the_owner(anvil_url: str) -> None:
    clearing, _ = deployed_clearing(anvil_url)
    address = str(clearing.address)
    w3 = Web3(HTTPProvider(anvil_url))
    renounce = {
        "type": "function",
        "name": "renounce_ownership",
        "inputs": [],
        "outputs": [],
        "stateMutability": "nonpayable",
    }
    contract = w3.eth.contract(address=Web3.to_checksum_address(address), abi=[*compiled("clearing").abi, renounce])

    tx = contract.functions.renounce_ownership().transact({"from": clearing.account.checksum, "gas": 100_000})
    receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=10)

    assert receipt["status"] == 0
    assert contract.functions.owner().call() == clearing.account.checksum
    clearing.commit(commit(1))
    assert clearing.last_epoch() == 1


def test_attaching_to_an_address_without_code_is_refused(node: Node) -> None:
    clearing, _ = deployed_clearing(node.url)

    with pytest.raises(ChainError, match="no clearing contract"):
        clearing.attach(str(Address(bytes([0x11] * 20))))


@pytest.mark.services
def test_another_connection_can_attach_to_a_deployed_contract(anvil_url: str) -> None:
    deployer, _ = deployed_clearing(anvil_url)
    address = str(deployer.address)
    deployer.commit(commit(1))

    reader = Web3Clearing.connect(anvil_url, timeout=10)
    reader.attach(address.lower())

    assert reader.address == address
    assert reader.last_epoch() == 1


def test_an_unreachable_node_is_reported_in_one_line_naming_its_url() -> None:
    url = f"http://127.0.0.1:{services.free_port()}"

    with pytest.raises(ChainUnavailable) as caught:
        Web3Clearing.connect(url, timeout=2)

    message = str(caught.value)
    assert url in message
    assert "\n" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
