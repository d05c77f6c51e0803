"""The settlement engine on real services: one settler per PostgreSQL database, a settler killed between send and
receipt, and a reorg on anvil (``evm_snapshot``/``evm_revert``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from settlement.aggregator import Aggregator, MoneyRules
from settlement.chain import Web3Clearing, Web3Token
from settlement.clearing import ClearingCommit
from settlement.db import Database
from settlement.enrolment import enrol, trust_operator
from settlement.ports import ChainReceipt
from settlement.sql import SqlUnitOfWork
from settlement.sql.settler import PgSettlerLock, settler_lock
from smartzone.riders import fund_accounts
from tests.integration.nodes import ANVIL_KEYS
from tests.signed import OPERATOR, RIDER_KEY, SignedFleet

pytestmark = pytest.mark.services

T0 = 1_790_000_000_000
RIDE_MS = 20 * 60_000
ROOT = Path(__file__).resolve().parents[2]


class Sending(Web3Clearing):
    """The clearing contract on a node, noting each commit this aggregator sends."""

    sent: list[int]

    def commit(self, commit: ClearingCommit) -> ChainReceipt:
        self.sent.append(commit.epoch_id)
        return super().commit(commit)


def connect(url: str) -> Sending:
    clearing = Sending.connect(url, ANVIL_KEYS[0], timeout=20)
    clearing.sent = []
    return clearing


def aggregator(database: Database, clearing: Web3Clearing, fleet: SignedFleet, **options: Any) -> Aggregator:
    agg = Aggregator(
        lambda: SqlUnitOfWork(database),
        clearing,
        token=Web3Token(clearing.sender),
        money=MoneyRules(faucet_cap=10**12),
        epoch_seconds=0.0,
        signing_chain_id=fleet.domain.chain_id,
        **options,
    )
    agg.attach_contract()
    return agg


def prepared(database: Database, url: str, **options: Any) -> tuple[Aggregator, Sending, SignedFleet]:
    """A fresh contract on the node at ``url`` for a fresh database, its rider funded."""
    database.upgrade()
    fleet = SignedFleet()
    trust_operator(lambda: SqlUnitOfWork(database), OPERATOR, fleet.operator_address, T0)
    enrol(lambda: SqlUnitOfWork(database), fleet.registrations(), fleet.domain, T0)
    clearing = connect(url)
    agg = aggregator(database, clearing, fleet, **options)
    fund_accounts(clearing, [RIDER_KEY], 10**9)
    return agg, clearing, fleet


def ride(agg: Aggregator, fleet: SignedFleet, n: int, vehicle: str = "bike-1") -> None:
    agg.handle([fleet.received(e) for e in fleet.trip(vehicle, 1 + 2 * n, T0 + n * RIDE_MS, 10, 2000)])


def commits_on_chain(clearing: Web3Clearing, epoch_id: int) -> list[str]:
    """The transactions whose ``EpochCommitted`` event names ``epoch_id``, as the node's chain has them now."""
    assert clearing.address is not None
    contract = clearing.sender.w3.eth.contract(address=clearing.address, abi=clearing._deployed.abi)
    logs = contract.events.EpochCommitted().get_logs(argument_filters={"epoch_id": epoch_id}, from_block=0)
    return [log["transactionHash"].to_0x_hex() for log in logs]


def epochs(database: Database) -> dict[int, tuple[str, str | None]]:
    with database.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT epoch_id, status, tx_hash FROM epochs ORDER BY epoch_id"))
        return {r.epoch_id: (r.status, r.tx_hash) for r in rows}


def trip_statuses(database: Database) -> dict[str, int]:
    with database.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT status, count(*) AS n FROM trips GROUP BY status"))
        return {r.status: int(r.n) for r in rows}


def spent_in_database(database: Database) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT coalesce(max(spent_total), 0) FROM epochs")).scalar_one())


def owner_totals(database: Database) -> tuple[int, int]:
    """What the read model holds as settled and as pending, over every owner."""
    with database.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT sum(settled_micro) AS s, sum(pending_micro) AS p FROM owner_totals")).one()
        return int(row.s or 0), int(row.p or 0)


def _fares(database: Database, epoch_id: int) -> int:
    with database.engine.connect() as conn:
        query = sa.text("SELECT coalesce(sum(fare_micro), 0) FROM trips WHERE epoch_id = :e")
        return int(conn.execute(query, {"e": epoch_id}).scalar_one())


def rpc(clearing: Web3Clearing, method: str, *params: object) -> Any:
    return clearing.sender.w3.provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]


# --- one settler per database ---------------------------------------------------------------------------
def test_the_settler_lock_is_one_aggregators_until_it_lets_go_or_loses_its_connection(postgres_url: str) -> None:
    database = Database.open(postgres_url)
    try:
        first, second = PgSettlerLock(database), PgSettlerLock(database)
        assert first.holds() and not second.holds() and first.holds()
        first.release()
        assert second.holds() and not first.holds()
        assert second._conn is not None
        pid = second._conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with database.engine.connect() as conn:  # the settler's connection dies (the database restarts, a proxy)
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid})  # waits for its end
        assert first.holds()  # the lock went with the connection: free for another aggregator
        assert not second.holds()  # its connection found dead, the lock now another's
        first.release()
        assert second.holds()  # on a new connection
        second.release()
    finally:
        database.close()


def test_two_aggregators_on_one_postgresql_database_both_ingest_and_only_the_settler_sends(
    postgres_url: str, anvil_url: str
) -> None:
    db_a, db_b = Database.open(postgres_url), Database.open(postgres_url)
    lock_a, lock_b = settler_lock(db_a), settler_lock(db_b)
    try:
        a, sent_a, fleet = prepared(db_a, anvil_url, settler=lock_a)
        sent_b = connect(anvil_url)
        b = aggregator(db_b, sent_b, fleet, settler=lock_b)
        assert a.settle_due(force=True) == [] and b.settle_due(force=True) == []  # a took the lock first

        errors: list[BaseException] = []

        def work(agg: Aggregator, vehicle: str) -> Callable[[], None]:
            def run() -> None:
                try:
                    for n in range(4):
                        ride(agg, fleet, n, vehicle)
                        agg.settle_due(force=True)
                except BaseException as exc:  # noqa: BLE001 - reported by the test thread
                    errors.append(exc)

            return run

        threads = [threading.Thread(target=work(a, "bike-1")), threading.Thread(target=work(b, "bike-2"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == []
        a.settle_due(force=True)
        assert sent_b.sent == [] and sent_a.sent  # only the settler sent
        found = epochs(db_a)
        assert set(sent_a.sent) == set(found) and len(sent_a.sent) == len(found)  # each epoch sent once
        assert all(len(commits_on_chain(sent_a, epoch_id)) == 1 for epoch_id in found)
        w3 = sent_a.sender.w3
        nonces = [w3.eth.get_transaction(tx)["nonce"] for e in found for tx in commits_on_chain(sent_a, e)]
        assert len(set(nonces)) == len(nonces)  # no nonce sent twice
        assert trip_statuses(db_a).get("priced", 0) == 0 and sum(trip_statuses(db_a).values()) == 8  # both ingested

        lock_a.release()  # the settler stops: the other takes over
        ride(b, fleet, 4, "bike-2")
        assert b.settle_due(force=True) == [max(found) + 1] and sent_b.sent == [max(found) + 1]
        assert sent_a.last_epoch() == max(found) + 1
    finally:
        lock_a.release()
        lock_b.release()
        for lock_holder in (db_a, db_b):
            lock_holder.close()


# --- a settler killed between sending and recording -----------------------------------------------------
KILLED_SETTLER = """
import os, signal, sys
from settlement.aggregator import Aggregator, MoneyRules
from settlement.chain import Web3Clearing
from settlement.db import Database
from settlement.sql import SqlUnitOfWork

database = Database.open(sys.argv[1])
clearing = Web3Clearing.connect(sys.argv[2], sys.argv[3], timeout=20)
agg = Aggregator(lambda: SqlUnitOfWork(database), clearing, money=MoneyRules(), signing_chain_id=int(sys.argv[4]))
agg.attach_contract()
submit = clearing.sender.submit

def submit_and_die(tx, nonce, fees):
    tx_hash = submit(tx, nonce, fees)
    print(tx_hash, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # sent; its receipt never read, nothing recorded

clearing.sender.submit = submit_and_die
agg.settle_due(force=True)
"""


def test_a_settler_killed_between_send_and_receipt_settles_each_epoch_once_after_restart(
    anvil_url: str, tmp_path: Path
) -> None:
    database = Database.open(f"sqlite:///{tmp_path / 'killed.db'}")
    try:
        agg, clearing, fleet = prepared(database, anvil_url)
        ride(agg, fleet, 0)
        assert agg.settle_due(force=True) == [1]
        ride(agg, fleet, 1)
        ride(agg, fleet, 2, "car-1")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        child = subprocess.run(
            [sys.executable, "-c", KILLED_SETTLER, database.engine.url.render_as_string(hide_password=False),
             anvil_url, ANVIL_KEYS[0], str(fleet.domain.chain_id)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert child.returncode == -signal.SIGKILL, child.stderr
        sent = child.stdout.split()[0]
        assert epochs(database)[2] == ("closed", None)  # closed by the settler, committed on chain, not recorded
        # anvil answers a sent transaction before its miner has sealed the block: wait for it, as a restart would
        clearing.sender.w3.eth.wait_for_transaction_receipt(sent, timeout=30)  # type: ignore[arg-type]
        assert commits_on_chain(clearing, 2) == [sent]

        restarted = aggregator(database, connect(anvil_url), fleet)
        assert restarted.settle_due() == [2]
        assert restarted.clearing.sent == []  # type: ignore[attr-defined]  # recorded, not sent again
        assert epochs(database)[2] == ("committed", sent)
        assert commits_on_chain(clearing, 2) == [sent] and clearing.last_epoch() == 2
        assert clearing.totals().spent_total == spent_in_database(database)
    finally:
        database.close()


# --- a reorg -----------------------------------------------------------------------------------------------
def test_an_epoch_a_reorg_took_away_is_committed_again_once_and_the_chain_equals_the_database(
    anvil_url: str, tmp_path: Path
) -> None:
    database = Database.open(f"sqlite:///{tmp_path / 'reorg.db'}")
    try:
        agg, clearing, fleet = prepared(database, anvil_url, confirmations=3)
        ride(agg, fleet, 0)
        assert agg.settle_due(force=True) == [1]
        snapshot = rpc(clearing, "evm_snapshot")
        ride(agg, fleet, 1)
        ride(agg, fleet, 2, "car-1")
        assert agg.settle_due(force=True) == [2]
        lost = epochs(database)[2][1]
        assert commits_on_chain(clearing, 2) == [lost]
        assert rpc(clearing, "evm_revert", snapshot) is True
        for _ in range(2):
            rpc(clearing, "evm_mine")  # the other fork grows past the lost block
        assert clearing.last_epoch() == 1

        assert agg.check_finality() == ([1], [2])  # epoch 1 kept its block; epoch 2 goes back
        assert epochs(database)[2] == ("closed", None) and trip_statuses(database)["batched"] == 2
        assert owner_totals(database) == (_fares(database, 1), _fares(database, 2))  # settled back to pending
        assert agg.settle_due() == [2]
        again = epochs(database)[2][1]
        # sent again on the new fork (the same nonce, calldata and fees may sign to the very same hash)
        assert again is not None and clearing.last_epoch() == 2 and commits_on_chain(clearing, 2) == [again]
        for _ in range(3):
            rpc(clearing, "evm_mine")
        assert agg.check_finality() == ([2], [])
        assert trip_statuses(database) == {"final": 3}
        assert owner_totals(database) == (_fares(database, 1) + _fares(database, 2), 0)
        assert clearing.totals().spent_total == spent_in_database(database)
        assert clearing.trips_root(2) == bytes.fromhex(_root(database, 2)[2:])
    finally:
        database.close()


def _root(database: Database, epoch_id: int) -> str:
    with database.engine.connect() as conn:
        query = sa.text("SELECT trips_root FROM epochs WHERE epoch_id = :e")
        return str(conn.execute(query, {"e": epoch_id}).scalar_one())
