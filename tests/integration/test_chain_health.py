"""The chain health probe on anvil: head block, the settler's gas money, the clearing contract's last epoch."""

from __future__ import annotations

import pytest
from eth_account import Account

from dashboard.chain_status import LiveChainStatus
from settlement.chain import Web3Clearing, Web3Token
from settlement.chain.health import NodeProbe
from settlement.errors import ChainUnavailable
from tests import services
from tests.integration.nodes import ANVIL_KEYS

pytestmark = pytest.mark.services
T0 = 1_795_000_000_000
ANVIL_BALANCE_WEI = 10_000 * 10**18


class NoEpochs:
    """A read model without epochs or waiting trips."""

    def epochs(self, limit: int = 100, cursor: str | None = None) -> list[object]:
        return []

    def trips(self, limit: int = 100, **_: object) -> list[object]:
        return []


def test_the_probe_reads_the_head_the_settlers_balance_and_the_last_epoch() -> None:
    settler = Account.from_key(ANVIL_KEYS[0]).address
    idle = Account.create().address
    with services.anvil() as url:
        token = Web3Token.connect(url, private_key=ANVIL_KEYS[0], timeout=10)
        token.deploy(faucet_cap=10**9)
        clearing = Web3Clearing(token.sender)
        contract = clearing.deploy(str(token.address), 1, 2)
        reading = NodeProbe(url, settler, contract)()
        assert reading.chain_id == 31337
        assert reading.latest_block == clearing.block_number() >= 2
        assert reading.settler == settler
        assert reading.settler_balance_wei is not None
        assert 0 < reading.settler_balance_wei < ANVIL_BALANCE_WEI  # it paid for two deployments
        assert reading.contract_last_epoch == 0
        assert NodeProbe(url, idle)().settler_balance_wei == 0
        assert NodeProbe(url)().contract_last_epoch is None
        # what owners have claimed is read from the contract (nobody has claimed on a new one); no contract: nothing
        assert NodeProbe(url, settler, contract).claimed([idle, settler]) == {idle: 0, settler: 0}
        assert NodeProbe(url).claimed([idle]) == {}


def test_a_node_that_goes_away_is_an_unreachable_status_and_comes_back_with_a_new_node() -> None:
    port_holder = services.free_port()
    probe = NodeProbe(f"http://127.0.0.1:{port_holder}", timeout=2)
    with pytest.raises(ChainUnavailable):
        probe()
    now = [T0]
    status = LiveChainStatus(probe, NoEpochs(), lambda: now[0], "test node", ttl_s=0)  # type: ignore[arg-type]
    health = status.status()
    assert health.reachable is False and health.reason and "127.0.0.1" in health.reason
    assert health.latest_block is None
    with services.anvil() as url:
        probe.url = url
        now[0] += 1
        back = status.status()
        assert back.reachable is True and back.latest_block == 0 and back.chain_id == 31337
    now[0] += 1
    assert status.status().reachable is False  # anvil stopped: the probe's connection is dropped, not a crash
