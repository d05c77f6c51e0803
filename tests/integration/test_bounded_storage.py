"""Bounded storage on SQLite and PostgreSQL: dead-letter samples and counts, telemetry retention, migration 0003."""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from sensors.ports import Received
from sensors.topics import Channel, topic_for
from settlement.aggregator import Aggregator
from settlement.db import Database
from settlement.dead_letters import DAY_MS, RejectCount, SampleLimits
from settlement.enrolment import enrol, trust_operator
from settlement.queries import SqlReadModel
from settlement.records import Reject
from settlement.retention import retain
from settlement.sql import SqlUnitOfWork
from settlement.verification import SEQ_WINDOW
from smartzone.retention import add_retention_command
from smartzone.settings import Settings
from tests.money import fake_money
from tests.signed import OPERATOR, SignedFleet

T0 = 1_790_000_000_000
OLD = T0 - 40 * DAY_MS


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture()
def database(url: str) -> Iterator[Database]:
    db = Database.open(url)
    db.upgrade()
    yield db
    db.close()


class Clock:
    def __init__(self) -> None:
        self.t = T0 / 1000

    def __call__(self) -> float:
        return self.t


def aggregator_on(database: Database, clock: Callable[[], float] = lambda: T0 / 1000, **limits: int) -> Aggregator:
    chain, money = fake_money()
    chain.deploy(str(money.token_address), 0, 100)  # the same address every time: a restarted one finds its contract
    aggregator = Aggregator(
        lambda: SqlUnitOfWork(database),
        chain,
        money=money,
        clock=clock,
        **limits,  # type: ignore[arg-type]
    )
    aggregator.attach_contract()
    return aggregator


def stored_payload_bytes(database: Database) -> tuple[int, int]:
    """(samples, payload bytes stored in them)."""
    with database.reading() as conn:
        n, size = conn.execute(sa.text("SELECT count(*), coalesce(sum(length(payload)), 0) FROM rejects")).one()
    return int(n), int(size)


def test_a_flood_of_1000_random_60_kib_payloads_keeps_the_samples_bounded_and_the_counts_exact(
    database: Database,
) -> None:
    clock = Clock()
    aggregator = aggregator_on(database, clock, reject_samples_max=300)
    rng = random.Random(1)
    topic = topic_for(OPERATOR, "bike-1", Channel.TELEMETRY)
    most = 0
    for _ in range(10):  # 100 a batch, one maintenance every 2 s as in the run loop
        batch = [Received(topic, rng.randbytes(60 * 1024), clock(), lambda: None) for _ in range(100)]
        aggregator.handle(batch)
        aggregator._maintain(force=False)
        most = max(most, stored_payload_bytes(database)[1])
        clock.t += 2
    bound = 300 * 4096  # reject_samples_max × reject_sample_bytes
    assert most <= 2 * bound  # between two prunes at most samples_max more are stored
    aggregator.prune_samples(force=True)
    assert stored_payload_bytes(database) == (300, bound)
    read = SqlReadModel(database)
    assert read.rejects_by_code() == {"too_large": 1000} and read.stats().rejected == 1000
    with database.reading() as conn:
        sizes = conn.execute(sa.text("SELECT DISTINCT payload_bytes FROM rejects")).scalars().all()
    assert sizes == [60 * 1024]


def test_samples_are_pruned_by_age_and_by_number_while_the_counts_stay(database: Database) -> None:
    with SqlUnitOfWork(database) as uow:  # one a day for ten days, then 20 today of another code
        uow.readings.add_rejects(
            [Reject("t", b"x" * 5000, "schema", "r", T0 - d * DAY_MS) for d in range(10, 0, -1)], 4096
        )
        uow.readings.add_rejects([Reject("t", b"y", "too_large", "r", T0 + i) for i in range(20)], 4096)
        uow.commit()
    assert stored_payload_bytes(database) == (30, 10 * 4096 + 20)
    limits = SampleLimits(4096, 15, 7)
    with SqlUnitOfWork(database) as uow:
        assert uow.readings.prune_rejects(limits.older_than_ms(T0), limits.samples_max) == 3 + 12
        uow.commit()
    with database.reading() as conn:
        kept = conn.execute(sa.text("SELECT code, received_ms FROM rejects ORDER BY id")).all()
    assert kept == [("too_large", T0 + i) for i in range(5, 20)]  # the newest 15
    with SqlUnitOfWork(database) as uow:
        counts = uow.readings.reject_counts()
    assert counts == {
        "schema": RejectCount(10, T0 - 10 * DAY_MS, T0 - DAY_MS),
        "too_large": RejectCount(20, T0, T0 + 19),
    }
    read = SqlReadModel(database)
    assert read.rejects_by_code() == {"schema": 10, "too_large": 20} and read.stats().rejected == 30


def filled(database: Database, fleet: SignedFleet) -> Aggregator:
    """bike-1: 30 readings 40 days old, then one now, SEQ_WINDOW + 19 on; bike-2: 3 readings 40 days old."""
    uow = lambda: SqlUnitOfWork(database)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, 0)
    enrol(uow, fleet.registrations(), fleet.domain, 0)
    aggregator = aggregator_on(database)
    aggregator.handle([fleet.received(fleet.telemetry("bike-1", s, OLD + s * 5_000, odometer=s)) for s in range(1, 31)])
    aggregator.handle([fleet.received(fleet.telemetry("bike-2", s, OLD + s * 5_000)) for s in range(1, 4)])
    aggregator.handle([fleet.received(fleet.telemetry("bike-1", SEQ_WINDOW + 19, T0 - 1000, odometer=99))])
    assert SqlReadModel(database).rejects_by_code() == {}
    return aggregator


def raw_seqs(database: Database) -> list[tuple[str, int]]:
    with database.reading() as conn:
        return [
            tuple(r) for r in conn.execute(sa.text("SELECT vehicle_id, seq FROM telemetry ORDER BY vehicle_id, seq"))
        ]


def tracks(database: Database) -> list[tuple[object, ...]]:
    with database.reading() as conn:
        query = (
            "SELECT minute_ms, readings, first_seq, last_seq, first_odometer_m, last_odometer_m FROM telemetry_tracks"
        )
        return [tuple(r) for r in conn.execute(sa.text(query + " ORDER BY minute_ms"))]


def test_retention_folds_old_telemetry_into_minute_tracks_once_keeping_the_stats(database: Database) -> None:
    filled(database, SignedFleet())
    uow = lambda: SqlUnitOfWork(database)  # noqa: E731
    stats = SqlReadModel(database).stats()
    dry = retain(uow, now_ms=T0, raw_days=30, limits=SampleLimits(), dry_run=True, chunk=7)
    assert dry.readings == 19 and len(raw_seqs(database)) == 34 and tracks(database) == []
    report = retain(uow, now_ms=T0, raw_days=30, limits=SampleLimits(), chunk=7)
    assert (report.readings, report.chunks) == (19, 5)  # row ids 1..34, 7 a transaction
    # seqs 1..19 of bike-1 are more than SEQ_WINDOW below its last seq; the rest stays raw, bike-2's too (quiet)
    expected_raw = [("bike-1", s) for s in (*range(20, 31), SEQ_WINDOW + 19)] + [("bike-2", s) for s in (1, 2, 3)]
    assert raw_seqs(database) == expected_raw
    minute = lambda s: (OLD + s * 5_000) // 60_000 * 60_000  # noqa: E731
    by_minute: dict[int, list[int]] = {}
    for s in range(1, 20):
        by_minute.setdefault(minute(s), []).append(s)
    assert tracks(database) == [(m, len(ss), ss[0], ss[-1], ss[0], ss[-1]) for m, ss in sorted(by_minute.items())]
    assert SqlReadModel(database).stats() == stats  # the tallies count readings stored, raw or folded
    again = retain(uow, now_ms=T0, raw_days=30, limits=SampleLimits(), chunk=7)
    assert again.readings == 0 and raw_seqs(database) == expected_raw and sum(t[1] for t in tracks(database)) == 19


def test_after_retention_a_replayed_old_reading_is_still_stale_and_a_kept_one_a_duplicate(database: Database) -> None:
    fleet = SignedFleet()
    filled(database, fleet)
    retain(lambda: SqlUnitOfWork(database), now_ms=T0, raw_days=30, limits=SampleLimits())
    restarted = aggregator_on(database)  # its verifier starts from what the database holds
    folded = restarted.handle([fleet.received(fleet.telemetry("bike-1", 5, OLD + 5 * 5_000, odometer=5))])
    kept = restarted.handle([fleet.received(fleet.telemetry("bike-1", 25, OLD + 25 * 5_000, odometer=25))])
    assert (folded.rejected, folded.telemetry_new) == (1, 0) and (kept.duplicates, kept.telemetry_new) == (1, 0)
    assert SqlReadModel(database).rejects_by_code() == {"stale_seq": 1}
    assert ("bike-1", 5) not in raw_seqs(database) and sum(t[1] for t in tracks(database)) == 19


def test_migration_0003_counts_the_dead_letters_of_a_0002_database(url: str) -> None:
    db = Database.open(url)
    config = Config()
    config.set_main_option("script_location", str(resources.files("settlement") / "migrations"))
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
    rows = [("schema", T0 + 5, 10), ("schema", T0 + 1, 20), ("too_large", T0 + 3, 65536)]
    with db.transaction() as conn:
        for code, ms, size in rows:
            conn.execute(
                sa.text(
                    "INSERT INTO rejects (topic, payload, code, reason, received_ms) VALUES ('t', :p, :c, 'r', :ms)"
                ),
                {"p": b"z" * size, "c": code, "ms": ms},
            )
    db.upgrade()
    with SqlUnitOfWork(db) as uow:
        assert uow.readings.reject_counts() == {
            "schema": RejectCount(2, T0 + 1, T0 + 5),
            "too_large": RejectCount(1, T0 + 3, T0 + 3),
        }
    with db.reading() as conn:
        assert conn.execute(sa.text("SELECT payload_bytes FROM rejects ORDER BY id")).scalars().all() == [10, 20, 65536]
    read = SqlReadModel(db)
    assert read.rejects_by_code() == {"schema": 2, "too_large": 1} and read.stats().rejected == 3
    with SqlUnitOfWork(db) as uow:  # counting goes on from there
        uow.readings.add_rejects([Reject("t", b"", "schema", "r", T0 + 9)])
        uow.commit()
    assert read.rejects_by_code() == {"schema": 3, "too_large": 1}
    report = retain(lambda: SqlUnitOfWork(db), now_ms=T0 + 10, raw_days=30, limits=SampleLimits())
    assert (report.samples_pruned, report.samples_cut) == (0, 1)  # the old 64 KiB sample cut to 4 KiB
    with db.reading() as conn:
        sizes = conn.execute(sa.text("SELECT length(payload), payload_bytes FROM rejects ORDER BY id")).all()
    assert [tuple(r) for r in sizes] == [(10, 10), (20, 20), (4096, 65536), (0, 0)]
    db.close()


def test_the_retention_command_says_what_it_would_do_then_does_it(
    database: Database, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    filled(database, SignedFleet())
    parser = argparse.ArgumentParser(prog="smartzone")
    add_retention_command(parser.add_subparsers(required=True))
    settings = Settings(database_url=url)
    args = parser.parse_args(["retention", "--days", "1", "--dry-run"])  # the old readings are months old today
    assert args.command(settings, args) == 0
    out = capsys.readouterr()
    assert "would fold 19 raw readings of 1 vehicles" in out.out and "retention: 19 raw readings" in out.err
    assert len(raw_seqs(database)) == 34
    args = parser.parse_args(["retention", "--days", "1"])
    assert args.command(settings, args) == 0
    assert "folded 19 raw readings" in capsys.readouterr().out and len(raw_seqs(database)) == 15
    with pytest.raises(SystemExit):
        parser.parse_args(["retention", "--days", "0"])
