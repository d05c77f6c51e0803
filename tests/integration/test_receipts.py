"""A trip settled by the aggregator on a real chain: its receipt from the API, checked by ``smartzone verify``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from dashboard import deps
from dashboard.app import create_app
from dashboard.config import Principal, Role
from settlement.aggregator import Aggregator, MoneyRules
from settlement.chain import Web3Clearing, Web3Token
from settlement.db import Database
from settlement.enrolment import enrol, trust_operator
from settlement.queries import SqlReadModel
from settlement.sql import SqlUnitOfWork
from smartzone.cli import main
from smartzone.riders import fund_accounts
from smartzone.verify import check_receipt
from tests.integration.nodes import Node
from tests.signed import OPERATOR, RIDER, RIDER_KEY, SignedFleet

T0 = 1_790_000_000_000


@pytest.fixture()
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database.open(f"sqlite:///{tmp_path / 'receipts.db'}")
    db.upgrade()
    yield db
    db.close()


def as_account(database: Database, address: str) -> TestClient:
    """The API over ``database`` with the wallet ``address`` signed in."""
    app = create_app(SqlReadModel(database))
    app.dependency_overrides[deps.principal] = lambda: Principal(Role.ACCOUNT, address)
    return TestClient(app)


def settle_rides(database: Database, chain: Web3Clearing) -> TestClient:
    """Three trips ingested and settled in epoch 1 by the aggregator; the API over the same database, with the
    trips' rider signed in (a rider reads their own receipts)."""
    fleet = SignedFleet()
    trust_operator(lambda: SqlUnitOfWork(database), OPERATOR, fleet.operator_address, T0)
    enrol(lambda: SqlUnitOfWork(database), fleet.registrations(), fleet.domain, T0)
    aggregator = Aggregator(
        lambda: SqlUnitOfWork(database),
        chain,
        token=Web3Token(chain.sender),
        money=MoneyRules(faucet_cap=10**9),
        epoch_seconds=3600,
        signing_chain_id=fleet.domain.chain_id,
    )
    aggregator.attach_contract()
    assert fund_accounts(chain, [RIDER_KEY], 10**8) == 1
    messages = [
        *fleet.trip("bike-1", 1, T0, minutes=10, metres=2500),
        *fleet.trip("bike-2", 1, T0 + 1000, minutes=20, metres=4000),
        *fleet.trip("car-1", 10, T0 + 2000, minutes=30, metres=9000),
    ]
    aggregator.handle([fleet.received(m) for m in messages])
    client = as_account(database, RIDER)
    assert client.get("/api/v1/trips/bike-2:1/receipt").status_code == 409  # priced, not yet in an epoch
    assert aggregator.close_epoch() == 1
    not_sent = client.get("/api/v1/trips/bike-2:1/receipt")
    assert not_sent.status_code == 409 and "once its epoch is on chain" in not_sent.json()["detail"]
    assert aggregator.settle_due() == [1]
    return client


def edited(receipt: dict[str, Any]) -> dict[str, Any]:
    """The receipt with one byte of its fare changed in the leaf."""
    changed = json.loads(json.dumps(receipt))
    fare = changed["leaf_values"][9]
    changed["leaf_values"][9] = fare[:-1] + ("1" if fare[-1] != "1" else "2")
    return changed


def test_a_settled_trips_receipt_from_the_api_verifies_against_the_chain_alone(
    node: Node, database: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = Web3Clearing.connect(node.url, timeout=10)
    client = settle_rides(database, chain)

    response = client.get("/api/v1/trips/bike-2:1/receipt")
    assert response.status_code == 200
    receipt = response.json()
    assert (receipt["epoch_id"], receipt["chain_id"], receipt["contract"]) == (1, chain.chain_id(), chain.address)
    assert receipt["status"] == "committed" and receipt["tx_hash"].startswith("0x")
    assert bytes.fromhex(receipt["root"][2:]) == chain.trips_root(1) != bytes(32)
    assert chain.trips_root(2) == bytes(32)
    assert client.get("/api/v1/trips/bike-9:1/receipt").status_code == 404
    stranger = as_account(database, "0x" + "12" * 20)  # another wallet: as if the trip did not exist
    assert stranger.get("/api/v1/trips/bike-2:1/receipt").status_code == 404
    assert stranger.get("/api/v1/trips").json()["items"] == []

    reader = Web3Clearing(chain.sender)  # as a third party would: only the node, the receipt names the contract
    assert check_receipt(receipt, reader) is None
    assert check_receipt(edited(receipt), reader) == "the proof does not lead from the leaf to the receipt's root"
    assert check_receipt({**receipt, "epoch_id": 2}, reader) is not None
    assert receipt["consent"]["rider"] == receipt["trip"]["rider"] and receipt["voucher"]["trip_id"] == "bike-2:1"
    raised = json.loads(json.dumps(receipt))
    raised["voucher"]["cumulative_micro"] += 1
    assert check_receipt(raised, reader) == "the voucher is not the one the leaf binds"
    listed = client.get("/api/v1/trips/bike-2:1").json()
    assert listed["charged_micro"] == receipt["fare"]["charged_micro"] == receipt["fare"]["total_micro"]
    assert listed["signed_micro"] == receipt["voucher"]["cumulative_micro"]
    assert (check_receipt({**receipt, "contract": "0x" + "00" * 19 + "01"}, reader) or "").startswith(
        "no clearing contract to ask"
    )

    if node.url is None:
        return  # the embedded chain lives in this process only: no URL for the command to reach
    path, bad = tmp_path / "receipt.json", tmp_path / "edited.json"
    path.write_text(json.dumps(receipt), encoding="utf-8")
    bad.write_text(json.dumps(edited(receipt)), encoding="utf-8")
    capsys.readouterr()
    assert main(["verify", str(path), "--chain-url", node.url]) == 0
    assert capsys.readouterr().out == "verified\n"
    assert main(["verify", str(bad), "--chain-url", node.url]) == 1
    assert capsys.readouterr().out == "the proof does not lead from the leaf to the receipt's root\n"


def test_verify_without_a_reachable_chain_says_so_in_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMARTZONE_CHAIN_URL", raising=False)
    path = tmp_path / "receipt.json"
    path.write_text("{}", encoding="utf-8")

    assert main(["verify", str(path)]) == 2
    assert "SMARTZONE_CHAIN_URL" in capsys.readouterr().out
    assert main(["verify", str(path), "--chain-url", "http://127.0.0.1:9"]) == 2
    out = capsys.readouterr()
    lines = (out.out + out.err).strip().splitlines()
    assert len(lines) == 1 and "http://127.0.0.1:9" in lines[0]
