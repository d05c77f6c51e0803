"""Who sees what in /api/v1: aggregates for anyone, the fleet for staff, a wallet only its own trips and payouts;
and the filters of the lists, validated."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from dashboard.config import Principal, Role
from sensors.address import Address
from tests.unit.test_dashboard import (
    OWNER_A,
    OWNER_B,
    RIDER_1,
    RIDER_2,
    FakeReadModel,
    app_as,
    assert_problem,
    sample,
    trip,
)

OPERATOR = Principal(Role.OPERATOR, "op")
RESEARCHER = Principal(Role.RESEARCHER, "re")
RIDER_ONE = Principal(Role.ACCOUNT, RIDER_1)
RIDER_TWO = Principal(Role.ACCOUNT, RIDER_2)
OWNER = Principal(Role.ACCOUNT, OWNER_B)
TRIP_OF_1, TRIP_OF_2 = "bike-0001:12", "bike-0001:13"


def as_(who: Principal | None, model: FakeReadModel | None = None) -> TestClient:
    return TestClient(app_as(model or sample(), who))


def ids(response: Any, key: str = "trip_id") -> list[str]:
    assert response.status_code == 200, response.text
    return [item[key] for item in response.json()["items"]]


# --- anonymous -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/v1/stats", "/api/v1/rejects", "/api/v1/epochs"])
def test_aggregates_and_epochs_are_public(path: str) -> None:
    assert as_(None).get(path).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/vehicles", "/api/v1/vehicles/bike-0001", "/api/v1/vehicles/bike-0001/registry", "/api/v1/trips",
        f"/api/v1/trips?rider={RIDER_1}", f"/api/v1/trips/{TRIP_OF_1}", f"/api/v1/trips/{TRIP_OF_1}/receipt",
        "/api/v1/payouts", f"/api/v1/accounts/{OWNER_A}/balance-proof", "/api/v1/me",
    ],
)  # fmt: skip
def test_everything_with_positions_or_per_person_data_needs_a_login(path: str) -> None:
    response = as_(None).get(path)
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Session" and "sign in" in body["detail"]
    assert RIDER_1 not in response.text and "51.2" not in response.text


# --- the fleet -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/v1/trips", "/api/v1/vehicles", "/api/v1/me", f"/api/v1/trips/{TRIP_OF_1}"])
def test_what_one_signed_in_person_sees_is_kept_by_no_cache(path: str) -> None:
    assert as_(OPERATOR).get(path).headers["cache-control"] == "private, no-store"


@pytest.mark.parametrize("who", [OPERATOR, RESEARCHER])
def test_staff_see_the_fleet_its_positions_and_registry(who: Principal) -> None:
    model = sample()
    client = as_(who, model)
    assert ids(client.get("/api/v1/vehicles"), "vehicle_id") == ["bike-0001", "car-0003", "scooter-0002"]
    assert client.get("/api/v1/vehicles/bike-0001").json()["lat"] == 51.2


@pytest.mark.parametrize(
    "path", ["/api/v1/vehicles", "/api/v1/vehicles/bike-0001", "/api/v1/vehicles/bike-0001/registry"]
)
def test_a_wallet_never_sees_the_fleet_or_a_vehicles_position(path: str) -> None:
    response = as_(RIDER_ONE).get(path)
    assert_problem(response, 403)
    assert "51.2" not in response.text


# --- trips -----------------------------------------------------------------------------------------------------
def test_staff_see_every_riders_trips_and_may_filter_by_rider() -> None:
    client = as_(RESEARCHER)
    assert ids(client.get("/api/v1/trips")) == ["scooter-0002:7", TRIP_OF_2, TRIP_OF_1]
    assert ids(client.get("/api/v1/trips", params={"rider": RIDER_2})) == [TRIP_OF_2]


def test_a_rider_sees_only_their_own_trips_without_asking() -> None:
    trips = as_(RIDER_TWO).get("/api/v1/trips").json()["items"]
    assert [t["trip_id"] for t in trips] == [TRIP_OF_2] and {t["rider"] for t in trips} == {RIDER_2}


def test_a_rider_naming_another_rider_is_refused_and_naming_themselves_in_any_case_is_fine() -> None:
    client = as_(RIDER_TWO)
    body = assert_problem(client.get("/api/v1/trips", params={"rider": RIDER_1}), 403)
    assert RIDER_1 not in client.get("/api/v1/trips", params={"rider": RIDER_1}).text
    assert "own trips" in body["detail"]
    assert ids(client.get("/api/v1/trips", params={"rider": RIDER_2.lower()})) == [TRIP_OF_2]


def test_a_riders_filters_only_narrow_their_own_trips() -> None:
    model = sample()
    client = as_(RIDER_ONE, model)
    assert ids(client.get("/api/v1/trips", params={"vehicle_id": "bike-0001"})) == [TRIP_OF_1]
    assert ids(client.get("/api/v1/trips", params={"status": "batched"})) == []  # that one is rider 2's
    assert model.calls[-1] == ("trips", {**model.calls[-1][1], "rider": RIDER_1})


@pytest.mark.parametrize("suffix", ["", "/receipt"])
def test_someone_elses_trip_is_not_found_exactly_as_a_trip_that_does_not_exist(suffix: str) -> None:
    client = as_(RIDER_ONE)
    other = client.get(f"/api/v1/trips/{TRIP_OF_2}{suffix}")
    missing = client.get(f"/api/v1/trips/bike-0001:99{suffix}")
    assert_problem(other, 404) and assert_problem(missing, 404)
    assert other.json()["detail"].replace(TRIP_OF_2, "X") == missing.json()["detail"].replace("bike-0001:99", "X")
    assert RIDER_2 not in other.text


def test_a_rider_reads_their_own_trip_and_its_receipt() -> None:
    from tests.unit.test_receipts import receipt

    model = sample()
    model.receipts[TRIP_OF_1] = receipt(2)
    client = as_(RIDER_ONE, model)
    assert client.get(f"/api/v1/trips/{TRIP_OF_1}").json()["rider"] == RIDER_1
    assert client.get(f"/api/v1/trips/{TRIP_OF_1}/receipt").json() == receipt(2)


def test_a_trip_without_a_rider_is_visible_only_to_staff() -> None:
    model = sample()
    model.trip_views.append(trip("bike-0001:30", 30, rider=None))
    assert as_(OPERATOR, model).get("/api/v1/trips/bike-0001:30").status_code == 200
    assert as_(RIDER_ONE, model).get("/api/v1/trips/bike-0001:30").status_code == 404


# --- payouts and balances --------------------------------------------------------------------------------------
def test_operators_see_every_owners_payouts_and_may_filter_by_owner() -> None:
    client = as_(OPERATOR)
    assert ids(client.get("/api/v1/payouts"), "owner") == [OWNER_A, OWNER_B]
    assert ids(client.get("/api/v1/payouts", params={"owner": OWNER_B.lower()}), "owner") == [OWNER_B]


def test_an_owner_sees_only_their_own_payouts_and_naming_another_is_refused() -> None:
    client = as_(OWNER)
    assert ids(client.get("/api/v1/payouts"), "owner") == [OWNER_B]
    assert_problem(client.get("/api/v1/payouts", params={"owner": OWNER_A}), 403)
    assert ids(as_(RIDER_ONE).get("/api/v1/payouts"), "owner") == []


def test_researchers_do_not_see_payouts() -> None:
    assert_problem(as_(RESEARCHER).get("/api/v1/payouts"), 403)


def test_a_balance_proof_is_for_operators_and_the_account_itself() -> None:
    account = Address.parse(OWNER_B)
    model = sample()
    model.balances[account] = {"account": OWNER_B, "earned_micro": 5, "spent_micro": 0, "epoch_id": 3,
                               "chain_id": 31337, "contract": "0x" + "C1" * 20, "root": "0x" + "00" * 32,
                               "leaf_types": ["uint256"], "leaf_values": ["1"], "proof": []}  # fmt: skip
    path = f"/api/v1/accounts/{OWNER_B}/balance-proof"
    assert as_(OPERATOR, model).get(path).json()["account"] == OWNER_B
    assert as_(OWNER, model).get(path.lower()).json()["account"] == OWNER_B
    assert_problem(as_(RIDER_ONE, model).get(path), 403)
    assert_problem(as_(RESEARCHER, model).get(path), 403)


# --- filters ---------------------------------------------------------------------------------------------------
def test_vehicle_filters_reach_the_read_model_as_keywords_and_narrow_the_list() -> None:
    model = sample()
    client = as_(OPERATOR, model)
    got = client.get(
        "/api/v1/vehicles",
        params={"state": "on_trip", "kind": "e-scooter", "owner": OWNER_B.lower(), "online": "true", "q": "SCOOT",
                "sort": "-battery_pct"},
    )  # fmt: skip
    assert ids(got, "vehicle_id") == ["scooter-0002"]
    assert model.calls[-1] == ("vehicles", {"state": "on_trip", "kind": "e-scooter", "owner": OWNER_B,
                                            "online": True, "search": "SCOOT", "sort": "-battery_pct"})  # fmt: skip
    assert ids(client.get("/api/v1/vehicles", params={"online": "false"}), "vehicle_id") == ["car-0003"]
    by_battery = client.get("/api/v1/vehicles", params={"sort": "battery_pct", "limit": 1})
    assert ids(by_battery, "vehicle_id") == ["scooter-0002"] and by_battery.json()["next_cursor"]


def test_trip_filters_reach_the_read_model_as_keywords_and_narrow_the_list() -> None:
    model = sample()
    client = as_(OPERATOR, model)
    view = model.trip(TRIP_OF_2)
    assert view is not None and view.end_ms is not None
    end_of_2 = view.end_ms
    params = {"owner": OWNER_A, "kind": "bicycle", "epoch_id": 2, "from_ms": end_of_2, "to_ms": end_of_2 + 1}
    assert ids(client.get("/api/v1/trips", params=params)) == [TRIP_OF_2]
    assert model.calls[-1][1] | {"vehicle_id": None} == {
        "vehicle_id": None, "rider": None, "status": None, "owner": OWNER_A, "kind": "bicycle", "epoch_id": 2,
        "from_ms": end_of_2, "to_ms": end_of_2 + 1,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/v1/vehicles", "sort=owner"),
        ("/api/v1/vehicles", "sort=-vehicle_id;drop"),
        ("/api/v1/vehicles", "state=flying"),
        ("/api/v1/vehicles", "online=maybe"),
        ("/api/v1/vehicles", "kind=E%20BIKE"),
        ("/api/v1/vehicles", "owner=0x12"),
        ("/api/v1/vehicles", f"owner={OWNER_A.swapcase().replace('0X', '0x')}"),  # fails its checksum
        ("/api/v1/vehicles", "q=" + "x" * 65),
        ("/api/v1/trips", "status=lost"),
        ("/api/v1/trips", "epoch_id=-1"),
        ("/api/v1/trips", "from_ms=-5"),
        ("/api/v1/trips", "from_ms=20&to_ms=10"),
        ("/api/v1/trips", "to_ms=soon"),
        ("/api/v1/trips", "rider=alice"),
        ("/api/v1/trips", "vehicle_id=" + "v" * 129),
        ("/api/v1/payouts", "owner=bob"),
    ],
)
def test_a_bad_filter_is_a_422_problem_before_the_read_model_is_asked(path: str, query: str) -> None:
    model = sample()
    body = assert_problem(as_(OPERATOR, model).get(f"{path}?{query}"), 422)
    assert body["detail"] and model.calls == []


@pytest.mark.parametrize("path", ["/api/v1/vehicles", "/api/v1/trips", "/api/v1/me", "/login", "/"])
def test_head_answers_wherever_get_does_for_a_signed_in_person(path: str) -> None:
    client = as_(OPERATOR)
    get, head = client.get(path, follow_redirects=False), client.head(path, follow_redirects=False)
    assert get.status_code == head.status_code and head.content == b""
    assert head.headers.get("content-type") == get.headers.get("content-type")


def test_head_of_a_login_only_list_is_a_401_for_an_anonymous_visitor() -> None:
    response = as_(None).head("/api/v1/trips")
    assert response.status_code == 401 and response.content == b""
