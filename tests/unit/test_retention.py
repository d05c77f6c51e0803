"""Bounded storage on fakes: the reject log's rate limit, dead-letter samples and counts, telemetry tracks."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import pytest

from sensors.ports import Received
from sensors.topics import Channel, topic_for
from settlement.aggregator import Aggregator
from settlement.dead_letters import DAY_MS, RejectCount, RejectLog, SampleLimits
from settlement.enrolment import enrol, trust_operator
from settlement.memory import MemoryState, MemoryUnitOfWork
from settlement.records import Reject
from settlement.retention import MINUTE_MS, StoredTelemetry, Track, fold, retain
from settlement.verification import SEQ_WINDOW
from tests.money import fake_money
from tests.signed import OPERATOR, SignedFleet

T0 = 1_780_000_000_000


class FakeClock:
    def __init__(self, t: float = T0 / 1000) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# --- the reject log ---------------------------------------------------------------------------------
def test_the_first_reject_is_logged_at_once_and_then_at_most_one_line_per_interval() -> None:
    clock = FakeClock()
    limiter = RejectLog(10.0, clock)
    first = limiter.record({"schema": 1}, "schema: not an object")
    assert first == "dead-lettered 1 message (schema 1); 1 in all; e.g. schema: not an object"
    lines = []
    for i in range(1, 50_000):
        clock.t += 0.0001
        lines.append(limiter.record({"schema" if i % 40 else "bad_signature": 1}))
    assert [line for line in lines if line] == []  # 5 s of flood: nothing more yet
    clock.t += 5.1
    line = limiter.record({"schema": 1})
    assert line == "dead-lettered 50,000 messages in the last 10 s (schema 48,751, bad_signature 1,249); 50,001 in all"


def test_rejects_counted_but_not_yet_logged_come_out_once_the_interval_has_passed() -> None:
    clock = FakeClock()
    limiter = RejectLog(10.0, clock)
    assert limiter.record({"too_large": 1}) is not None
    assert limiter.record({"too_large": 2}) is None
    assert limiter.due() is None
    clock.t += 10
    assert limiter.due() == "dead-lettered 2 messages in the last 10 s (too_large 2); 3 in all"
    clock.t += 60
    assert limiter.due() is None  # nothing new: no line
    line = limiter.record({"malformed": 1}, "topic 'a\nFORGED LINE' is not of the v1 layout")
    assert line is not None and line.endswith("e.g. topic 'a?FORGED LINE' is not of the v1 layout")  # at once, 1 line


# --- dead-letter samples on the memory fake ---------------------------------------------------------
def rejects(n: int, *, start_ms: int = T0, step_ms: int = 1, size: int = 100, code: str = "too_large") -> list[Reject]:
    return [Reject("t", bytes(size), code, "r", start_ms + i * step_ms) for i in range(n)]


def test_samples_keep_a_cut_payload_with_its_whole_size_and_the_counts_are_exact() -> None:
    state = MemoryState()
    with MemoryUnitOfWork(state) as uow:
        uow.readings.add_rejects(rejects(3, size=60_000) + rejects(2, start_ms=T0 - 5, code="schema"), 4096)
        uow.readings.add_rejects(rejects(1, start_ms=T0 + 99, size=10), 4096)
        uow.commit()
    assert [(len(r.payload), r.payload_bytes) for r in state.rejects] == [(4096, 60_000)] * 3 + [(100, 100)] * 2 + [
        (10, 10)
    ]
    assert state.reject_counts == {"too_large": RejectCount(4, T0, T0 + 99), "schema": RejectCount(2, T0 - 5, T0 - 4)}


def test_pruning_keeps_the_newest_samples_within_the_age_and_the_counts_stay() -> None:
    state = MemoryState()
    with MemoryUnitOfWork(state) as uow:
        uow.readings.add_rejects(rejects(10, start_ms=T0 - 10 * DAY_MS, step_ms=DAY_MS))  # one a day for 10 days
        uow.commit()
        limits = SampleLimits(samples_max=5, sample_days=7)
        assert uow.readings.prune_rejects(limits.older_than_ms(T0), limits.samples_max) == 5
        uow.commit()
    assert [r.received_ms for r in state.rejects] == [T0 - d * DAY_MS for d in (5, 4, 3, 2, 1)]
    with MemoryUnitOfWork(state) as uow:
        assert uow.readings.prune_rejects(limits.older_than_ms(T0), 2) == 3
        assert uow.readings.prune_rejects(T0 - DAY_MS - DAY_MS // 2, 2) == 1  # by age
        uow.commit()
    assert [r.received_ms for r in state.rejects] == [T0 - DAY_MS]
    assert state.reject_counts["too_large"].count == 10


def received_at(payload: bytes, ms: int) -> Received:
    return Received(topic_for(OPERATOR, "bike-1", Channel.TELEMETRY), payload, ms / 1000, lambda: None)


def test_a_flood_of_large_payloads_keeps_bounded_samples_exact_counts_and_two_log_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = MemoryState()
    clock = FakeClock()
    uow: Callable[[], MemoryUnitOfWork] = lambda: MemoryUnitOfWork(state)  # noqa: E731
    chain, money = fake_money()
    aggregator = Aggregator(uow, chain, money=money, clock=clock, reject_samples_max=300, reject_sample_bytes=1024)
    aggregator.attach_contract()
    rng = random.Random(8)
    most = 0
    with caplog.at_level(logging.INFO, logger="settlement.aggregator"):
        for _ in range(10):  # 1,000 rejects over 20 s
            batch = [received_at(rng.randbytes(60 * 1024), int(clock() * 1000)) for _ in range(100)]
            aggregator.handle(batch)
            aggregator._maintain(force=False)  # the run loop's maintenance, every couple of seconds
            most = max(most, len(state.rejects))
            clock.t += 2
    assert state.reject_counts["too_large"].count == 1000
    assert most <= 2 * 300 and all(len(r.payload) == 1024 and r.payload_bytes == 60 * 1024 for r in state.rejects)
    aggregator.prune_samples(force=True)
    assert len(state.rejects) == 300
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "dead-lettered 100 messages (too_large 100); 100 in all; e.g. too_large: payload of 61440 bytes exceeds 4096",
        "dead-lettered 500 messages in the last 10 s (too_large 500); 600 in all; e.g. too_large: payload of 61440 "
        "bytes exceeds 4096",
    ]
    clock.t += 8 * 86_400
    assert aggregator.prune_samples() == 300 and state.rejects == []  # a minute on, the 7-day age limit
    assert state.reject_counts["too_large"].count == 1000


# --- telemetry folded into tracks -------------------------------------------------------------------
def raw(
    row_id: int, ts: int, *, seq: int | None = None, battery: float | None = 50.0, speed: float = 3.0
) -> StoredTelemetry:
    return StoredTelemetry(row_id, "bike-1", seq or row_id, ts, 51.0 + row_id / 1000, 4.0, speed, 1000 + row_id,
                           battery)  # fmt: skip


def test_a_minute_folded_in_any_split_and_order_gives_the_same_track() -> None:
    minute = T0 - T0 % MINUTE_MS
    readings = [raw(i, minute + i * 7_000, battery=None if i == 3 else 90.0 - i, speed=i % 5) for i in range(1, 9)]
    whole = fold(readings)
    assert list(whole) == [("bike-1", minute)]
    rng = random.Random(3)
    for _ in range(20):
        shuffled = readings[:]
        rng.shuffle(shuffled)
        cut_at = rng.randrange(1, len(shuffled))
        assert fold(shuffled[cut_at:], fold(shuffled[:cut_at])) == whole
    track = next(iter(fold(readings[:2]).values()))
    assert (track.readings, track.first_seq, track.last_seq, track.min_battery_pct, track.max_speed_mps) == (
        2, 1, 2, 88.0, 2.0,
    )  # fmt: skip


def test_tracks_take_the_lowest_battery_known_and_keep_none_when_none_is() -> None:
    a, b = Track.of(raw(1, T0, battery=None)), Track.of(raw(2, T0 + 1, battery=None))
    assert a.plus(b).min_battery_pct is None
    assert a.plus(Track.of(raw(3, T0 + 2, battery=40.0))).min_battery_pct == 40.0


def filled(fleet: SignedFleet, old_seqs: int = 30) -> tuple[MemoryState, Aggregator]:
    """bike-1 with ``old_seqs`` readings 40 days old, then one reading now far ahead in seq; bike-2 only old ones."""
    state = MemoryState()
    uow: Callable[[], MemoryUnitOfWork] = lambda: MemoryUnitOfWork(state)  # noqa: E731
    trust_operator(uow, OPERATOR, fleet.operator_address, 0)
    enrol(uow, fleet.registrations(), fleet.domain, 0)
    chain, money = fake_money()
    aggregator = Aggregator(uow, chain, money=money, clock=lambda: T0 / 1000)
    aggregator.attach_contract()
    old = T0 - 40 * DAY_MS
    aggregator.handle([fleet.received(fleet.telemetry("bike-1", s, old + s * 5_000)) for s in range(1, old_seqs + 1)])
    aggregator.handle([fleet.received(fleet.telemetry("bike-2", s, old + s * 5_000)) for s in range(1, 4)])
    aggregator.handle([fleet.received(fleet.telemetry("bike-1", SEQ_WINDOW + 19, T0 - 1000))])
    assert not state.rejects
    return state, aggregator


def test_retention_folds_old_readings_outside_the_replay_window_once_and_a_second_run_changes_nothing() -> None:
    fleet = SignedFleet()
    state, _ = filled(fleet)
    uow: Callable[[], MemoryUnitOfWork] = lambda: MemoryUnitOfWork(state)  # noqa: E731
    dry = retain(uow, now_ms=T0, raw_days=30, limits=SampleLimits(), dry_run=True, chunk=7)
    assert dry.readings == 19 and len(state.telemetry) == 34 and state.tracks == {}
    report = retain(uow, now_ms=T0, raw_days=30, limits=SampleLimits(), chunk=7)
    # seqs 1..19 of bike-1 are more than SEQ_WINDOW below its last seq; 20..30 stay raw, bike-2 (quiet) stays raw
    assert report.readings == 19 and report.chunks == 5  # row ids 1..34, 7 a transaction
    assert sorted(k for k in state.telemetry) == [("bike-1", s) for s in (*range(20, 31), SEQ_WINDOW + 19)] + [
        ("bike-2", s) for s in (1, 2, 3)
    ]
    assert sum(t.readings for t in state.tracks.values()) == 19
    assert min(t.first_seq for t in state.tracks.values()) == 1 and max(t.last_seq for t in state.tracks.values()) == 19
    before = (dict(state.telemetry), dict(state.tracks))
    again = retain(uow, now_ms=T0, raw_days=30, limits=SampleLimits(), chunk=7)
    assert again.readings == 0 and (state.telemetry, state.tracks) == before


def test_after_retention_a_replayed_old_reading_is_still_refused_or_a_duplicate() -> None:
    fleet = SignedFleet()
    state, first = filled(fleet)
    retain(lambda: MemoryUnitOfWork(state), now_ms=T0, raw_days=30, limits=SampleLimits())
    # a restarted aggregator: its verifier starts from what the store holds
    restarted = Aggregator(lambda: MemoryUnitOfWork(state), first.clearing, clock=lambda: T0 / 1000)
    restarted.attach_contract()
    old = T0 - 40 * DAY_MS
    folded = restarted.handle([fleet.received(fleet.telemetry("bike-1", 5, old + 5 * 5_000))])
    kept = restarted.handle([fleet.received(fleet.telemetry("bike-1", 25, old + 25 * 5_000))])
    assert (folded.rejected, folded.telemetry_new) == (1, 0) and state.rejects[-1].code == "stale_seq"
    assert (kept.duplicates, kept.telemetry_new) == (1, 0)
    assert sum(t.readings for t in state.tracks.values()) == 19  # nothing folded twice


def test_retention_prunes_and_cuts_dead_letter_samples_too() -> None:
    state = MemoryState()
    with MemoryUnitOfWork(state) as uow:
        uow.readings.add_rejects(rejects(5, start_ms=T0 - 10 * DAY_MS, step_ms=DAY_MS, size=60_000))  # 65536 cap
        uow.commit()
    report = retain(lambda: MemoryUnitOfWork(state), now_ms=T0, raw_days=30, limits=SampleLimits(4096, 2, 7))
    assert (report.samples_pruned, report.samples_cut) == (3, 2)
    assert [len(r.payload) for r in state.rejects] == [4096, 4096] and state.reject_counts["too_large"].count == 5
