"""The alert rules: what opens and what clears for a vehicle and for rejected readings, with hysteresis."""

from __future__ import annotations

from dashboard import alerts as rules
from dashboard.config import Thresholds
from dashboard.geo import Polygon, load_zone
from tests.unit.test_changes_fakes import FAR_OUTSIDE, T0, Vehicle

LIMITS = Thresholds(low_battery_pct=20.0, offline_after_s=300, rejects_quiet_s=600)
ZONE = load_zone()


def decide(view: Vehicle, open_now: set[rules.Key] | None = None, now: int = T0, zone: Polygon | None = ZONE):
    return rules.vehicle_decision(view, now, LIMITS, zone, open_now or set())


def test_a_healthy_vehicle_opens_nothing() -> None:
    assert not decide(Vehicle("s-1"))


def test_a_low_battery_opens_an_alert_with_its_level() -> None:
    decision = decide(Vehicle("s-1", battery_pct=17.25))
    assert decision.opens == {("battery_low", "s-1", ""): "17.2"}
    assert decision.clears == ()


def test_a_battery_hovering_at_the_threshold_does_not_flap() -> None:
    key = ("battery_low", "s-1", "")
    assert not decide(Vehicle("s-1", battery_pct=20.5), {key})  # above the threshold, but not by the margin
    assert not decide(Vehicle("s-1", battery_pct=24.9), {key})
    assert decide(Vehicle("s-1", battery_pct=25.0), {key}).clears == (key,)
    assert not decide(Vehicle("s-1", battery_pct=20.5))  # and a closed one does not open above the threshold


def test_a_last_will_and_a_silence_are_offline_alerts_with_their_code() -> None:
    assert set(decide(Vehicle("s-1", online=False)).opens) == {("offline", "s-1", "last_will")}
    silent = decide(Vehicle("s-1"), now=T0 + 300_001)
    assert silent.opens == {("offline", "s-1", "silent"): str(T0)}
    assert not decide(Vehicle("s-1"), now=T0 + 300_000)


def test_a_vehicle_heard_again_clears_its_silence_and_a_last_will_replaces_it() -> None:
    silent = ("offline", "s-1", "silent")
    assert decide(Vehicle("s-1", received_ms=T0 + 400_000), {silent}, now=T0 + 400_000).clears == (silent,)
    changed = decide(Vehicle("s-1", online=False), {silent}, now=T0 + 400_000)
    assert set(changed.opens) == {("offline", "s-1", "last_will")}
    assert changed.clears == (silent,)


def test_a_fault_opens_with_its_code_and_clears_when_it_is_over() -> None:
    assert set(decide(Vehicle("s-1", fault_code="E42", state="non_operational")).opens) == {("fault", "s-1", "E42")}
    assert set(decide(Vehicle("s-1", state="non_operational")).opens) == {("fault", "s-1", "")}
    assert decide(Vehicle("s-1"), {("fault", "s-1", "E42")}).clears == (("fault", "s-1", "E42"),)


def test_a_vehicle_far_outside_the_zone_opens_an_alert_with_its_position() -> None:
    decision = decide(Vehicle("s-1", lat=FAR_OUTSIDE[0], lon=FAR_OUTSIDE[1]))
    assert decision.opens == {("outside_zone", "s-1", ""): "51.260000,4.450000"}
    assert not decide(Vehicle("s-1", lat=None, lon=None))
    assert not decide(Vehicle("s-1", lat=FAR_OUTSIDE[0], lon=FAR_OUTSIDE[1]), zone=None)


def test_the_zone_edge_has_hysteresis() -> None:
    # 20 m outside the southern tip: not yet an alert, but an open one stays open; 0.0001 degree is 11 m
    south = min(ZONE.ring)
    twenty_m = Vehicle("s-1", lat=south[0] - 0.00018, lon=south[1])
    assert 15 < ZONE.outside_m(twenty_m.lat, twenty_m.lon) < 25  # type: ignore[arg-type]
    key = ("outside_zone", "s-1", "")
    assert not decide(twenty_m)
    assert not decide(twenty_m, {key})
    inside = Vehicle("s-1")
    assert decide(inside, {key}).clears == (key,)


def test_only_the_vehicles_own_alerts_and_the_asked_kinds_are_judged() -> None:
    others = {("battery_low", "s-2", ""), ("rejects", "", "bad_signature")}
    assert not decide(Vehicle("s-1"), others)
    view = Vehicle("s-1", battery_pct=3, online=False)
    timed = rules.vehicle_decision(view, T0, LIMITS, ZONE, {("battery_low", "s-1", "")}, rules.TIMED_KINDS)
    assert set(timed.opens) == {("offline", "s-1", "last_will")}
    assert timed.clears == ()


def test_rejects_open_per_reason_and_clear_once_the_window_is_quiet() -> None:
    opened = rules.rejects_decision({"bad_signature": 3, "stale": 0}, set())
    assert opened.opens == {("rejects", "", "bad_signature"): "3"}
    still = rules.rejects_decision({"bad_signature": 1}, {("rejects", "", "bad_signature")})
    assert not still
    quiet = rules.rejects_decision({}, {("rejects", "", "bad_signature"), ("battery_low", "s-1", "")})
    assert quiet.clears == (("rejects", "", "bad_signature"),)


def test_an_alert_reads_as_the_fields_of_its_event() -> None:
    from tests.unit.test_changes_fakes import Alert

    alert = Alert(7, "fault", "s-1", "E42", None, T0)
    assert rules.alert_fields(alert) == {
        "alert_id": 7, "kind": "fault", "vehicle_id": "s-1", "code": "E42", "detail": None,
        "opened_ms": T0, "cleared_ms": None, "acked_ms": None, "acked_by": None,
    }  # fmt: skip
