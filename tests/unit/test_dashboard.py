"""The dashboard app over a fake read model: the page, the JSON API, problem details and OpenAPI."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dashboard import deps
from dashboard.app import create_app
from dashboard.config import DashboardConfig, Principal, Role
from dashboard.deps import read_model
from sensors.address import Address, checksummed
from settlement.errors import StoreUnavailable
from settlement.memory import MemoryReadModel
from settlement.receipts import verify_receipt
from settlement.views import (
    EpochView,
    PayoutView,
    RegistryProofView,
    Stats,
    TripView,
    VehicleView,
)

OWNER_A = checksummed("0x" + "a1" * 20)
OWNER_B = checksummed("0x" + "b2" * 20)
RIDER_1 = checksummed("0x" + "11" * 20)
RIDER_2 = checksummed("0x" + "22" * 20)
SECRET = "test-session-secret-" + "x" * 24
OPERATOR = Principal(Role.OPERATOR, "op")
T0 = 1_717_000_000_000


@dataclass
class FakeReadModel(MemoryReadModel):
    """``settlement.memory.MemoryReadModel`` (the SQL read model's filters, orders and cursors over lists of views)
    that also records what each list was asked for."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def vehicles(self, limit: int = 100, cursor: str | None = None, **asked: Any) -> list[VehicleView]:
        full = {"state": None, "kind": None, "owner": None, "online": None, "search": None, "sort": "vehicle_id"}
        self.calls.append(("vehicles", full | asked))
        return super().vehicles(limit, cursor, **asked)

    def trips(self, limit: int = 100, *args: Any, **asked: Any) -> list[TripView]:
        names = ("vehicle_id", "rider", "status", "cursor")
        given = dict(zip(names, args, strict=False)) | asked
        full = dict.fromkeys(("vehicle_id", "rider", "status", "owner", "kind", "epoch_id", "from_ms", "to_ms"))
        self.calls.append(("trips", full | {k: v for k, v in given.items() if k != "cursor"}))
        return super().trips(limit, **given)

    def payouts(self, limit: int = 100, cursor: str | None = None, *, owner: str | None = None) -> list[PayoutView]:
        self.calls.append(("payouts", {"owner": owner}))
        return super().payouts(limit, cursor, owner=owner)


def vehicle(vehicle_id: str, **changes: object) -> VehicleView:
    base = VehicleView(vehicle_id, "smartzone", "bicycle", OWNER_A, "available", True, 87.5, 51.2, 4.39, T0)
    return replace(base, **changes)  # type: ignore[arg-type]


def trip(trip_id: str, n: int, **changes: object) -> TripView:
    vehicle_id = trip_id.split(":")[0]
    base = TripView(
        trip_id, vehicle_id, "bicycle", OWNER_A, RIDER_1, T0 + n * 1000, T0 + n * 1000 + 600_000,
        600, 1_850, 1_234_567, "committed", 1,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def sample() -> FakeReadModel:
    return FakeReadModel(
        vehicle_views=[
            vehicle("bike-0001"),
            vehicle("scooter-0002", kind="e-scooter", owner=OWNER_B, state="on_trip", battery_pct=41.0),
            vehicle("car-0003", kind="car", owner=None, online=False, lat=None, lon=None, last_seen_ms=None),
        ],
        trip_views=[
            trip("bike-0001:12", 1),
            trip("bike-0001:13", 2, rider=RIDER_2, fare_micro=990_000, status="batched", epoch_id=2),
            trip("scooter-0002:7", 3, owner=OWNER_B, kind="e-scooter", status="priced", epoch_id=None),
        ],
        epoch_views=[
            EpochView(1, 1, 1_234_567, "0x" + "ab" * 32, "committed", "0x" + "cd" * 32, 42, 61_000, T0, T0 + 5),
            EpochView(2, 1, 990_000, "0x" + "ef" * 32, "closed", None, None, None, T0 + 10, None),
        ],
        payout_views=[
            PayoutView(OWNER_A, 2, settled_micro=12_345_678_901, pending_micro=990_000),
            PayoutView(OWNER_B, 1, settled_micro=0, pending_micro=2_505_000),
        ],
        counts=Stats(3, 2, 1_000, 40, 2, 3, 2, 1_234_567),
    )


def config(**changes: Any) -> DashboardConfig:
    """A configuration for tests: a fixed session key, the chain label the pages show."""
    return replace(DashboardConfig(session_secret=SECRET, chain_label="anvil 31337"), **changes)


def app_as(model: Any, who: Principal | None = OPERATOR, **config_changes: Any) -> FastAPI:
    """The app over ``model`` with ``who`` signed in (None: anonymous), without going through a login."""
    app = create_app(model, config(**config_changes))
    app.dependency_overrides[deps.principal] = lambda: who
    return app


@pytest.fixture()
def fake() -> FakeReadModel:
    return sample()


@pytest.fixture()
def client(fake: FakeReadModel) -> TestClient:
    """An operator's client: the API tests here are about the data, test_api_scoping about who sees it."""
    return TestClient(app_as(fake))


@pytest.fixture()
def anonymous(fake: FakeReadModel) -> TestClient:
    return TestClient(create_app(fake, config()))


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def test_the_public_page_shows_the_counts_in_the_visitors_language_and_nothing_per_vehicle(
    anonymous: TestClient,
) -> None:
    english = anonymous.get("/", headers={"accept-language": "en"})
    dutch = anonymous.get("/", headers={"accept-language": "nl-BE,nl;q=0.9"})
    assert english.status_code == dutch.status_code == 200
    assert english.headers["content-type"].startswith("text/html")
    assert 'data-stat="settled_micro">€1.23<' in english.text
    assert 'data-stat="settled_micro">€\xa01,23<' in dutch.text
    for text in (english.text, dutch.text):
        assert "bike-0001" not in text and "scooter-0002" not in text  # no vehicle, no position
        assert OWNER_A not in text and RIDER_1 not in text and "51.2" not in text
        assert "anvil 31337" in text


def test_a_signed_in_person_is_sent_from_the_public_page_to_their_own_view(fake: FakeReadModel) -> None:
    operator = TestClient(app_as(fake)).get("/", follow_redirects=False)
    rider = TestClient(app_as(fake, Principal(Role.ACCOUNT, RIDER_1))).get("/", follow_redirects=False)
    assert (operator.status_code, operator.headers["location"]) == (303, "/fleet")
    assert (rider.status_code, rider.headers["location"]) == (303, "/rider")


def test_the_pages_load_their_script_and_style_from_the_app_itself(anonymous: TestClient) -> None:
    for path in ("/", "/login"):
        page = anonymous.get(path).text
        assert 'href="/static/css/base.css"' in page
        assert 'src="http' not in page and 'href="//' not in page and 'href="http' not in page
    assert "javascript" in anonymous.get("/static/js/login.js").headers["content-type"]
    assert anonymous.get("/static/css/base.css").headers["content-type"].startswith("text/css")


def test_the_login_page_escapes_a_hostile_next_path(anonymous: TestClient) -> None:
    page = anonymous.get("/login", params={"next": '/x"><script>alert(1)</script>'}).text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page or 'value="/"' in page


def test_the_vehicles_endpoint_returns_the_fleet_by_id(client: TestClient, fake: FakeReadModel) -> None:
    by_id = sorted(fake.vehicle_views, key=lambda v: v.vehicle_id)
    assert client.get("/api/v1/vehicles").json() == {"items": [asdict(v) for v in by_id], "next_cursor": None}


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/api/v1/vehicles", "vehicle_id"),
        ("/api/v1/trips", "trip_id"),
        ("/api/v1/epochs", "epoch_id"),
        ("/api/v1/payouts", "owner"),
    ],
)
def test_every_list_is_read_a_page_at_a_time_following_next_cursor(client: TestClient, path: str, key: str) -> None:
    everything = [item[key] for item in client.get(path, params={"limit": 1000}).json()["items"]]
    seen: list[object] = []
    params: dict[str, object] = {"limit": 1}
    while True:
        body = client.get(path, params=params).json()
        assert len(body["items"]) <= 1
        seen += [item[key] for item in body["items"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert seen == everything and len(everything) >= 2


@pytest.mark.parametrize("cursor", ["not-a-cursor", "WzEsMiwzXQ", "", "x" * 600])
def test_a_cursor_no_page_handed_out_is_a_422_problem(client: TestClient, cursor: str) -> None:
    assert_problem(client.get("/api/v1/trips", params={"cursor": cursor}), 422)


def test_a_list_limit_is_bounded(client: TestClient) -> None:
    assert_problem(client.get("/api/v1/vehicles", params={"limit": 1001}), 422)
    assert_problem(client.get("/api/v1/payouts", params={"limit": 0}), 422)


def test_one_vehicle_is_found_by_its_id(client: TestClient, fake: FakeReadModel) -> None:
    assert client.get("/api/v1/vehicles/scooter-0002").json() == asdict(fake.vehicle_views[1])


def test_an_unknown_vehicle_is_a_404_problem_that_names_it(client: TestClient) -> None:
    body = assert_problem(client.get("/api/v1/vehicles/bike-9999"), 404)
    assert "bike-9999" in body["detail"]
    assert body["title"] == "Not Found" and body["instance"] == "/api/v1/vehicles/bike-9999"


def test_trips_come_newest_first_with_their_fare_in_integer_micro_euro(client: TestClient) -> None:
    items = client.get("/api/v1/trips").json()["items"]
    assert [t["trip_id"] for t in items] == ["scooter-0002:7", "bike-0001:13", "bike-0001:12"]
    assert [t["fare_micro"] for t in items] == [1_234_567, 990_000, 1_234_567]
    assert all(type(t["fare_micro"]) is int for t in items)


def test_trips_are_filtered_by_vehicle_and_by_rider(client: TestClient) -> None:
    by_vehicle = client.get("/api/v1/trips", params={"vehicle_id": "bike-0001"}).json()["items"]
    by_rider = client.get("/api/v1/trips", params={"rider": RIDER_2}).json()["items"]
    assert [t["trip_id"] for t in by_vehicle] == ["bike-0001:13", "bike-0001:12"]
    assert [t["trip_id"] for t in by_rider] == ["bike-0001:13"]


def test_the_limit_bounds_trips_and_epochs(client: TestClient) -> None:
    assert [t["trip_id"] for t in client.get("/api/v1/trips?limit=1").json()["items"]] == ["scooter-0002:7"]
    assert [e["epoch_id"] for e in client.get("/api/v1/epochs?limit=1").json()["items"]] == [2]
    assert len(client.get("/api/v1/trips?limit=1000").json()["items"]) == 3


@pytest.mark.parametrize("path", ["/api/v1/trips/bike-0001:12", "/api/v1/trips/bike-0001%3A12"])
def test_a_trip_id_with_a_colon_resolves(client: TestClient, fake: FakeReadModel, path: str) -> None:
    assert client.get(path).json() == asdict(fake.trip_views[0])


def test_an_unknown_trip_is_a_404_problem_that_names_it(client: TestClient) -> None:
    assert "bike-0001:99" in assert_problem(client.get("/api/v1/trips/bike-0001:99"), 404)["detail"]


def test_a_committed_trips_receipt_is_served_exactly_as_settlement_built_it(
    client: TestClient, fake: FakeReadModel
) -> None:
    from tests.unit.test_receipts import ROOT, receipt

    fake.receipts["bike-2:12"] = receipt(2)
    response = client.get("/api/v1/trips/bike-2:12/receipt")

    assert response.status_code == 200
    assert response.json() == receipt(2)
    assert list(response.json())[-4:] == ["root", "leaf_types", "leaf_values", "proof"]
    assert verify_receipt(response.json(), ROOT) is None


def test_a_receipt_of_an_unknown_trip_is_a_404_and_of_a_trip_not_on_chain_a_409_problem(
    client: TestClient, fake: FakeReadModel
) -> None:
    fake.receipts["bike-0001:12"] = None  # batched, its epoch not on chain yet

    assert "bike-0001:99" in assert_problem(client.get("/api/v1/trips/bike-0001:99/receipt"), 404)["detail"]
    body = assert_problem(client.get("/api/v1/trips/bike-0001:12/receipt"), 409)
    assert body["title"] == "Conflict" and "not on chain yet" in body["detail"]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=many", "limit=-5"])
@pytest.mark.parametrize("path", ["/api/v1/trips", "/api/v1/epochs"])
def test_an_invalid_limit_is_a_422_problem(client: TestClient, path: str, query: str) -> None:
    body = assert_problem(client.get(f"{path}?{query}"), 422)
    assert "limit" in body["detail"]
    assert body["errors"][0]["loc"] == ["query", "limit"]


def test_epochs_come_with_their_transaction_and_integer_totals(client: TestClient) -> None:
    items = client.get("/api/v1/epochs").json()["items"]
    assert items[1] == {
        "epoch_id": 1, "trip_count": 1, "total_micro": 1_234_567, "trips_root": "0x" + "ab" * 32,
        "status": "committed", "tx_hash": "0x" + "cd" * 32, "block_number": 42, "gas_used": 61_000,
        "closed_ms": T0, "settled_ms": T0 + 5, "registry_root": None,
    }  # fmt: skip
    assert items[0]["tx_hash"] is None


def test_payouts_give_settled_and_pending_micro_euro_per_owner(client: TestClient, fake: FakeReadModel) -> None:
    items = client.get("/api/v1/payouts").json()["items"]
    assert items == [asdict(p) for p in fake.payout_views]
    assert type(items[0]["settled_micro"]) is int and items[0]["settled_micro"] == 12_345_678_901


def test_a_vehicles_registry_entry_comes_with_its_proof_or_a_404(client: TestClient, fake: FakeReadModel) -> None:
    fake.proofs["bike-0001"] = RegistryProofView(
        "bike-0001", "op", "bike", OWNER_B, OWNER_A, 0, 0, None,
        ["bike-0001", "op", "bike", OWNER_B, OWNER_A, 0, 0, False], ["0x" + "11" * 32], "0x" + "22" * 32,
    )  # fmt: skip
    body = client.get("/api/v1/vehicles/bike-0001/registry").json()
    assert body["payee"] == OWNER_A and body["proof"] == ["0x" + "11" * 32] and body["leaf"][-1] is False
    assert_problem(client.get("/api/v1/vehicles/ghost/registry"), 404)


def test_rejects_are_counted_per_reason_code(client: TestClient, fake: FakeReadModel) -> None:
    fake.dead_letters = [("bad_signature", T0)] * 3 + [("unknown_vehicle", T0)]
    assert client.get("/api/v1/rejects").json() == {"bad_signature": 3, "unknown_vehicle": 1}


def test_rejected_trips_are_listed_with_their_reason_only_when_asked_for(
    client: TestClient, fake: FakeReadModel
) -> None:
    fake.trip_views.append(trip("bike-0001:20", 9, status="rejected", reason="trip_too_fast", fare_micro=None))
    default = client.get("/api/v1/trips").json()["items"]
    rejected = client.get("/api/v1/trips", params={"status": "rejected"}).json()["items"]
    assert "bike-0001:20" not in {t["trip_id"] for t in default}
    assert [(t["trip_id"], t["reason"], t["fare_micro"]) for t in rejected] == [("bike-0001:20", "trip_too_fast", None)]
    assert client.get("/api/v1/trips", params={"status": "nonsense"}).status_code == 422


def test_stats_are_the_read_models_counts(client: TestClient, fake: FakeReadModel) -> None:
    assert client.get("/api/v1/stats").json() == asdict(fake.counts)


def test_healthz_says_ok(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_openapi_documents_every_api_v1_path(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Smart Zone" and spec["info"]["version"] == "1"
    assert spec["info"]["description"]
    documented = {p for p in spec["paths"] if p.startswith("/api/v1")}
    assert documented >= {
        "/api/v1/vehicles", "/api/v1/vehicles/{vehicle_id}", "/api/v1/trips", "/api/v1/trips/{trip_id}",
        "/api/v1/epochs", "/api/v1/payouts", "/api/v1/stats", "/api/v1/rejects",
        "/api/v1/vehicles/{vehicle_id}/registry", "/api/v1/trips/{trip_id}/receipt",
        "/api/v1/accounts/{address}/balance-proof", "/api/v1/me", "/api/v1/fleet", "/api/v1/live", "/api/v1/kpis",
        "/api/v1/alerts", "/api/v1/chain", "/api/v1/recordings", "/api/v1/exports/{table}.{fmt}",
    }  # fmt: skip
    for path in documented:  # every operation says what it does: its docstring is the OpenAPI text
        for operation in spec["paths"][path].values():
            assert operation.get("description") or operation.get("summary"), path
    assert "micro-euro" in spec["components"]["schemas"]["Trip"]["properties"]["fare_micro"]["description"]
    not_found = spec["paths"]["/api/v1/trips/{trip_id}"]["get"]["responses"]["404"]
    assert "application/problem+json" in not_found["content"]


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_api_docs_pages_load_their_scripts_from_the_app_not_a_cdn(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/docs-assets/") for a in assets), assets
    assert "https://" not in page.text
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_an_unknown_path_is_a_404_problem(client: TestClient) -> None:
    assert_problem(client.get("/api/v1/nothing-here"), 404)


def test_an_unreachable_store_is_a_503_problem_that_hides_its_url() -> None:
    class DownReadModel(FakeReadModel):
        def stats(self) -> Stats:
            raise StoreUnavailable("postgresql://user:secret@db/smartzone", "connection refused")

    body = assert_problem(TestClient(app_as(DownReadModel())).get("/api/v1/stats"), 503)
    assert "database" in body["detail"] and "secret" not in body["detail"]


def test_the_read_model_can_be_overridden_per_test(fake: FakeReadModel) -> None:
    app = app_as(FakeReadModel())
    app.dependency_overrides[read_model] = lambda: fake
    assert len(TestClient(app).get("/api/v1/vehicles").json()["items"]) == 3


def test_the_app_offers_its_own_source_code_with_the_licence() -> None:
    import io
    import tarfile

    client = TestClient(create_app(FakeReadModel(), config()))
    page = client.get("/")
    assert 'href="/source.tar.gz"' in page.text
    response = client.get("/source.tar.gz")
    assert response.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as tar:
        names = tar.getnames()
        licence = tar.extractfile("smartzone-source/LICENSE")
        assert licence is not None and b"GNU AFFERO GENERAL PUBLIC LICENSE" in licence.read()
    assert "smartzone-source/dashboard/app.py" in names
    assert "smartzone-source/settlement/contracts/clearing.vy" in names


def test_a_balance_proof_is_served_by_address_in_any_case_404_for_none_and_422_for_no_address() -> None:
    account = Address(b"\xab" * 20)
    document = {"account": account.checksum, "earned_micro": 5, "spent_micro": 0, "epoch_id": 3, "chain_id": 31337,
                "contract": "0x" + "C1" * 20, "root": "0x" + "00" * 32, "leaf_types": ["uint256"], "leaf_values": ["1"],
                "proof": []}  # fmt: skip
    client = TestClient(app_as(FakeReadModel(balances={account: document})))
    assert client.get(f"/api/v1/accounts/{str(account).lower()}/balance-proof").json() == document
    missing = client.get(f"/api/v1/accounts/{'0x' + '12' * 20}/balance-proof")
    assert missing.status_code == 404 and "no epoch on chain" in missing.json()["detail"]
    assert client.get("/api/v1/accounts/0x1234/balance-proof").status_code == 422
