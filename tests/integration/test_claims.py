"""Owners claim and riders withdraw with the balance proofs the API serves, on py-evm and anvil."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils import keccak
from fastapi.testclient import TestClient

from dashboard import deps
from dashboard.app import create_app
from dashboard.config import Principal, Role
from sensors.address import Address
from sensors.signing import address_of
from settlement.aggregator import Aggregator, MoneyRules
from settlement.balances import verify_balance
from settlement.chain import Web3Clearing, Web3Token
from settlement.claims import InvalidBalanceProof, proof_of
from settlement.db import Database
from settlement.enrolment import enrol, trust_operator
from settlement.queries import SqlReadModel
from settlement.sql import SqlUnitOfWork
from smartzone.cli import main
from smartzone.riders import RIDER_GAS_WEI, fund_accounts
from tests.integration.nodes import Node
from tests.signed import OPERATOR, RIDER, RIDER_KEY, SignedFleet, payee_of

T0 = 1_790_000_000_000
ZONE_KEY = keccak(text="test zone key")
OWNER_KEY = keccak(text="test payee bike-1")  # payee_of("bike-1")'s key
DEPOSIT = 100_000_000


@pytest.fixture()
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database.open(f"sqlite:///{tmp_path / 'claims.db'}")
    db.upgrade()
    yield db
    db.close()


def settled(database: Database, chain: Web3Clearing) -> tuple[Aggregator, TestClient]:
    """Two trips of one funded rider settled in epoch 1 with a 10 % fee; the API over the same database."""
    fleet = SignedFleet()
    trust_operator(lambda: SqlUnitOfWork(database), OPERATOR, fleet.operator_address, T0)
    enrol(lambda: SqlUnitOfWork(database), fleet.registrations(), fleet.domain, T0)
    money = MoneyRules(fee_bps=1_000, zone=address_of(ZONE_KEY), withdraw_delay_blocks=3, faucet_cap=10**9)
    aggregator = Aggregator(lambda: SqlUnitOfWork(database), chain, token=Web3Token(chain.sender), money=money,
                            epoch_seconds=3600, signing_chain_id=fleet.domain.chain_id)  # fmt: skip
    aggregator.attach_contract()
    assert fund_accounts(chain, [RIDER_KEY], DEPOSIT) == 1
    messages = [*fleet.trip("bike-1", 1, T0, minutes=10, metres=2500),
                *fleet.trip("bike-1", 3, T0 + 3_600_000, minutes=20, metres=4000)]  # fmt: skip
    aggregator.handle([fleet.received(m) for m in messages])
    assert aggregator.settle_due(force=True) == [1]
    app = create_app(SqlReadModel(database))
    app.dependency_overrides[deps.principal] = lambda: Principal(Role.OPERATOR, "operator")  # sees every balance
    return aggregator, TestClient(app)


def test_the_api_serves_balance_proofs_the_contract_accepts_and_claims_pay_once(node: Node, database: Database) -> None:
    chain = Web3Clearing.connect(node.url, timeout=10)
    aggregator, client = settled(database, chain)
    fares = chain.totals().spent_total
    assert fares > 0

    owner = client.get(f"/api/v1/accounts/{str(payee_of('bike-1')).lower()}/balance-proof")
    assert owner.status_code == 200
    document = owner.json()
    proof, root = proof_of(document)
    assert root == chain.balances_root(1) and document["epoch_id"] == 1 and document["contract"] == chain.address
    assert verify_balance(root, chain.chain_id(), str(chain.address), proof)
    fees = fares // 10 if fares % 10 == 0 else None  # two fares, each fee rounded down
    rider = client.get(f"/api/v1/accounts/{RIDER}/balance-proof").json()
    zone = client.get(f"/api/v1/accounts/{address_of(ZONE_KEY)}/balance-proof").json()
    assert (rider["spent_micro"], rider["earned_micro"]) == (fares, 0)
    assert document["earned_micro"] + zone["earned_micro"] == fares
    assert fees is None or zone["earned_micro"] == fees
    assert client.get(f"/api/v1/accounts/{'0x' + '12' * 20}/balance-proof").status_code == 404
    assert client.get("/api/v1/accounts/not-an-address/balance-proof").status_code == 422
    with pytest.raises(InvalidBalanceProof, match="does not lead"):
        proof_of({**document, "earned_micro": document["earned_micro"] + 1})

    token = Web3Token(chain.sender)
    token.attach(chain.token_address())
    chain.claim(proof)  # anyone may send it: the money goes to the owner
    assert token.balance_of(payee_of("bike-1")) == document["earned_micro"]
    with pytest.raises(Exception, match="nothing to claim"):
        chain.claim(proof)  # replayed: pays nothing
    held = token.balance_of(Address.parse(str(chain.address)))
    assert held == DEPOSIT - document["earned_micro"] == chain.totals().deposited_total - chain.totals().claimed_total


@pytest.mark.services
def test_smartzone_claim_and_withdraw_send_from_the_accounts_key(
    anvil_url: str, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    chain = Web3Clearing.connect(anvil_url, timeout=10)
    settled(database, chain)
    fares = chain.totals().spent_total
    for key in (OWNER_KEY, RIDER_KEY):
        chain.sender.top_up(address_of(key).checksum, RIDER_GAS_WEI)
    token = Web3Token(chain.sender)
    token.attach(chain.token_address())
    monkeypatch.setenv("SMARTZONE_DATABASE_URL", database.url)
    monkeypatch.setenv("SMARTZONE_CHAIN_URL", anvil_url)
    monkeypatch.delenv("SMARTZONE_ACCOUNT_KEY", raising=False)
    capsys.readouterr()
    assert main(["claim"]) == 2  # no key
    assert "SMARTZONE_ACCOUNT_KEY" in capsys.readouterr().err
    monkeypatch.setenv("SMARTZONE_ACCOUNT_KEY", "0x" + keccak(b"an account without ether").hex())
    assert main(["claim", "--account", str(payee_of("bike-1"))]) == 1  # a sender without gas money: the way out
    assert "holds no ether for gas: fund it; or send the claim from an account that has some" in capsys.readouterr().out
    monkeypatch.setenv("SMARTZONE_ACCOUNT_KEY", "0x" + OWNER_KEY.hex())
    assert main(["claim"]) == 0
    earned = token.balance_of(payee_of("bike-1"))
    assert capsys.readouterr().out.startswith(f"claimed {earned} micro-EUR for {payee_of('bike-1')} (epoch 1)")
    assert main(["claim"]) == 1 and capsys.readouterr().out.startswith("nothing to claim")

    monkeypatch.setenv("SMARTZONE_ACCOUNT_KEY", "0x" + RIDER_KEY.hex())
    unspent = DEPOSIT - fares
    assert main(["withdraw", "--amount", str(unspent + 1)]) == 0  # asked: the contract checks when it pays
    assert "requested" in capsys.readouterr().out
    while chain.block_number() < chain.requested(Address.parse(RIDER))[1]:
        chain.sender.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    assert main(["withdraw", "--amount", str(unspent + 1)]) == 1
    assert "above unspent deposit" in capsys.readouterr().out
    assert main(["withdraw", "--amount", str(unspent)]) == 0
    assert capsys.readouterr().out.startswith(f"withdrew {unspent} micro-EUR to {RIDER}")
    assert token.balance_of(Address.parse(RIDER)) == unspent
    totals = chain.totals()
    assert (
        token.balance_of(Address.parse(str(chain.address)))
        == totals.deposited_total - totals.claimed_total - (totals.withdrawn_total)
        == fares - earned
    )  # what is left is the zone's fee, still to be claimed
