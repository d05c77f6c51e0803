"""The settlement page and the chain health API over a fake read model and a fake chain status."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dashboard import deps
from dashboard.app import create_app
from dashboard.chain_status import ChainHealth, FakeChainStatus, LiveChainStatus, lag_of
from dashboard.config import DashboardConfig, Principal, Role
from dashboard.routes import settlement
from settlement.views import EpochView, InvalidCursor, PayoutView, Stats, TripView, cursor_after, cursor_key

OWNER_A = "0x" + "A1" * 20
OWNER_B = "0x" + "B2" * 20
T0 = 1_795_000_000_000
TX = "0x" + "ab" * 32
OPERATOR = Principal(Role.OPERATOR, "op")
RESEARCHER = Principal(Role.RESEARCHER, "res")


def checksum(address: str) -> str:
    from sensors.address import Address

    return Address.parse(address).checksum


@dataclass
class FakePayout:
    """A payout with the data contract's claim fields."""

    owner: str
    trip_count: int
    settled_micro: int
    pending_micro: int
    claimed_micro: int = 0
    claimable_micro: int = 0


@dataclass
class FakeReadModel:
    """Epochs newest first, payouts by owner (filtered by owner as the data contract says), priced trips."""

    epoch_views: list[EpochView] = field(default_factory=list)
    payout_views: list[Any] = field(default_factory=list)
    priced: int = 0
    asked_owner: list[str | None] = field(default_factory=list)

    def epochs(self, limit: int = 100, cursor: str | None = None) -> list[EpochView]:
        views = sorted(self.epoch_views, key=lambda e: -e.epoch_id)
        if cursor is not None:
            last = key_of(cursor)
            views = [e for e in views if e.epoch_id < last]
        return views[:limit]

    def payouts(self, limit: int = 100, cursor: str | None = None, *, owner: str | None = None) -> list[Any]:
        self.asked_owner.append(owner)
        views = sorted(self.payout_views, key=lambda p: p.owner)
        if owner is not None:
            views = [p for p in views if p.owner == owner]
        return views[:limit]

    def trips(self, limit: int = 100, status: str | None = None, **_: Any) -> list[TripView]:
        assert status == "priced"
        trip = TripView("t", "v", "bike", None, None, T0, T0, 1, 1, 1, "priced", None)
        return [trip] * min(limit, self.priced)

    def stats(self) -> Stats:
        return Stats(0, 0, 0, 0, 0, 0, 0, 0)


def key_of(cursor: str) -> int:
    (epoch_id,) = cursor_key(cursor, int)
    if not isinstance(epoch_id, int):
        raise InvalidCursor(cursor)
    return epoch_id


def epoch(epoch_id: int, status: str = "final", tx: str | None = TX, trips: int = 3) -> EpochView:
    settled = status != "closed"
    return EpochView(
        epoch_id, trips, 4_260_000 * epoch_id, "0x" + "00" * 32, status, tx if settled else None,
        100 + epoch_id if settled else None, 65_800 if settled else None, T0 + epoch_id * 60_000,
        T0 + epoch_id * 60_000 + 5_000 if settled else None,
    )  # fmt: skip


HEALTH = ChainHealth(
    "anvil @ 127.0.0.1", True, None, T0, chain_id=31337, latest_block=123, settler=OWNER_A,
    settler_balance_wei=9_999_876_543_210_000_000_000, contract_last_epoch=4, last_settled_epoch=4,
    last_settled_ms=T0 - 30_000, behind_s=30, epochs_waiting=1, trips_waiting=7,
)  # fmt: skip


@pytest.fixture()
def model() -> FakeReadModel:
    return FakeReadModel(
        [epoch(i) for i in range(1, 5)] + [epoch(5, "closed")],
        [FakePayout(checksum(OWNER_A), 4, 3_000_000, 1_000_000, 2_000_000, 1_000_000),
         FakePayout(checksum(OWNER_B), 2, 500_000, 0)],
    )  # fmt: skip


def make_app(model: FakeReadModel, who: Principal | None, explorer: str | None = None) -> FastAPI:
    config = DashboardConfig(session_secret="s" * 32, explorer_tx_url=explorer)
    app = create_app(model, config, clock=lambda: T0)  # type: ignore[arg-type]
    app.state.chain_status = FakeChainStatus(HEALTH, claims={checksum(OWNER_A): 2_000_000})
    app.dependency_overrides[deps.principal] = lambda: who
    return app


@pytest.fixture()
def client_for(model: FakeReadModel) -> Iterator[Any]:
    def build(who: Principal | None, explorer: str | None = None) -> TestClient:
        return TestClient(make_app(model, who, explorer), follow_redirects=False)

    yield build


def test_the_chain_health_needs_an_operator(client_for: Any) -> None:
    assert client_for(None).get("/api/v1/chain").status_code == 401
    assert client_for(RESEARCHER).get("/api/v1/chain").status_code == 403
    account = client_for(Principal(Role.ACCOUNT, checksum(OWNER_A))).get("/api/v1/chain")
    assert account.status_code == 403
    assert account.headers["content-type"].startswith("application/problem+json")


def test_the_chain_health_is_json_with_the_balance_as_a_decimal_string(client_for: Any) -> None:
    body = client_for(OPERATOR).get("/api/v1/chain").json()
    assert body["reachable"] is True
    assert body["latest_block"] == 123
    assert body["settler_balance_wei"] == "9999876543210000000000"
    assert (body["epochs_waiting"], body["trips_waiting"], body["behind_s"]) == (1, 7, 30)


def test_without_a_chain_status_the_health_says_no_node_is_configured(model: FakeReadModel) -> None:
    app = make_app(model, OPERATOR)
    app.state.chain_status = None
    body = TestClient(app).get("/api/v1/chain").json()
    assert body["reachable"] is False and "no chain node" in body["reason"]


def test_an_anonymous_visitor_is_sent_to_the_login_with_the_way_back(client_for: Any) -> None:
    response = client_for(None).get("/settlement?owner=x")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/settlement%3Fowner%3Dx"


def test_a_researcher_may_not_see_the_settlement_page(client_for: Any) -> None:
    assert client_for(RESEARCHER).get("/settlement").status_code == 403


def test_the_operator_sees_epochs_with_the_full_hash_a_copy_button_and_the_explorer_link(client_for: Any) -> None:
    html = client_for(OPERATOR, "https://explorer.example/tx/{tx}").get("/settlement").text
    assert html.count(f">{TX}</code>") == 4
    assert html.count(f'data-copy="{TX}"') == 4
    assert f'href="https://explorer.example/tx/{TX}"' in html
    assert 'data-epoch="5"' in html and "waiting" in html
    assert ">€17.04<" in html  # epoch 4's total


def test_without_an_explorer_setting_there_is_no_explorer_link(client_for: Any) -> None:
    html = client_for(OPERATOR).get("/settlement").text
    assert 'class="explorer"' not in html
    assert f'data-copy="{TX}"' in html


def test_the_operator_sees_the_chain_health_and_every_owner(client_for: Any, model: FakeReadModel) -> None:
    html = client_for(OPERATOR).get("/settlement").text
    assert 'id="chain"' in html and 'data-chain="latest_block">123<' in html
    assert "9,999.877" in html
    assert checksum(OWNER_A) in html and checksum(OWNER_B) in html
    assert model.asked_owner[-1] is None


def test_the_claim_columns_show_claimed_and_claimable(client_for: Any) -> None:
    html = client_for(OPERATOR).get(f"/settlement?owner={OWNER_A.lower()}").text
    row = re.search(r'<tr data-owner="[^"]+">(.*?)</tr>', html, re.S)
    assert row is not None
    cells = re.findall(r'class="num">([^<]*)<', row.group(1))
    assert cells == ["4", "€4.00", "€3.00", "€1.00", "€2.00", "€1.00"]


def test_an_owner_sees_only_their_own_payouts_and_no_chain_health(client_for: Any, model: FakeReadModel) -> None:
    mine = checksum(OWNER_B)
    html = client_for(Principal(Role.ACCOUNT, mine)).get(f"/settlement?owner={checksum(OWNER_A)}").text
    assert model.asked_owner[-1] == mine
    assert f'data-owner="{mine}"' in html
    assert f'data-owner="{checksum(OWNER_A)}"' not in html
    assert 'id="chain"' not in html
    assert 'name="owner"' not in html  # no filter to try others with
    assert f'data-copy="{TX}"' in html  # the epochs are public


def test_the_operator_filters_payouts_by_owner_and_a_malformed_owner_is_refused(
    client_for: Any, model: FakeReadModel
) -> None:
    client = client_for(OPERATOR)
    html = client.get(f"/settlement?owner={OWNER_B.lower()}").text
    assert model.asked_owner[-1] == checksum(OWNER_B)
    assert f'data-owner="{checksum(OWNER_A)}"' not in html
    bad = client.get("/settlement?owner=0x1234")
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")


def test_epochs_are_paged_by_cursor_and_a_tampered_cursor_is_refused(model: FakeReadModel) -> None:
    model.epoch_views = [epoch(i) for i in range(1, 46)]
    client = TestClient(make_app(model, OPERATOR))
    first = client.get("/settlement").text
    assert first.count("data-epoch=") == settlement.PAGE_ROWS
    cursor = cursor_after(epoch(26))
    assert f"cursor={cursor}" in first
    second = client.get(f"/settlement?cursor={cursor}").text
    assert 'data-epoch="25"' in second and 'data-epoch="26"' not in second
    assert client.get("/settlement?cursor=bm90LWEtY3Vyc29y").status_code == 422


def test_the_page_carries_the_explorer_pattern_for_its_script_and_no_inline_script(client_for: Any) -> None:
    response = client_for(OPERATOR, "https://explorer.example/tx/{tx}").get("/settlement")
    config = re.search(r'<script type="application/json" id="sz-config">(.*?)</script>', response.text, re.S)
    assert config is not None
    assert json.loads(config.group(1))["explorer_tx_url"] == "https://explorer.example/tx/{tx}"
    scripts = re.findall(r"<script(?![^>]*(?:src=|application/json))[^>]*>", response.text)
    assert scripts == []


def test_the_dutch_page_writes_euros_the_dutch_way(client_for: Any) -> None:
    client = client_for(OPERATOR)
    client.cookies.set("lang", "nl")
    html = client.get("/settlement").text
    assert "Tijdvakken" in html and "€ 17,04" in html.replace("\u00a0", " ")


class Probe:
    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.fail is not None:
            raise self.fail

        @dataclass(frozen=True)
        class Facts:
            chain_id: int = 31337
            latest_block: int = 77
            settler: str | None = OWNER_A
            settler_balance_wei: int | None = 10**18
            contract_last_epoch: int | None = 4

        return Facts()


def test_live_status_combines_the_node_with_the_lag_of_the_read_model(model: FakeReadModel) -> None:
    model.priced = 4
    now = T0 + 1_000_000
    status = LiveChainStatus(Probe(), model, lambda: now, "node")  # type: ignore[arg-type]
    health = status.status()
    assert health.reachable and health.latest_block == 77
    assert health.last_settled_epoch == 4
    assert health.epochs_waiting == 1 and health.trips_waiting == 4 + 3
    assert health.behind_s == (1_000_000 - (4 * 60_000 + 5_000)) // 1000


def test_an_unreachable_node_is_a_status_with_its_reason_and_no_credentials(model: FakeReadModel) -> None:
    probe = Probe(ConnectionError("cannot reach http://user:secret@node.example:8545 now"))
    health = LiveChainStatus(probe, model, lambda: T0, "node").status()  # type: ignore[arg-type]
    assert health.reachable is False
    assert health.reason is not None and "secret" not in health.reason and "node.example" in health.reason
    assert health.last_settled_epoch == 4  # the read model still tells the lag


def test_the_live_status_asks_the_node_at_most_once_in_its_time_to_live(model: FakeReadModel) -> None:
    probe = Probe()
    now = [T0]
    status = LiveChainStatus(probe, model, lambda: now[0], "node", ttl_s=5)  # type: ignore[arg-type]
    status.status()
    now[0] += 4_000
    status.status()
    assert probe.calls == 1
    now[0] += 2_000
    status.status()
    assert probe.calls == 2


def test_the_waiting_trips_are_capped_and_say_so() -> None:
    lag = lag_of([epoch(2, "closed", trips=5), epoch(1)], priced_trips=1001)
    assert lag.trips_capped and lag.trips_waiting == 1000 + 5
    assert lag.last_settled_epoch == 1 and lag.epochs_waiting == 1


def test_an_epoch_with_no_hash_shows_no_copy_button(model: FakeReadModel) -> None:
    model.epoch_views = [epoch(1, "closed")]
    html = TestClient(make_app(model, OPERATOR)).get("/settlement").text
    assert "data-copy" not in html


def test_the_payout_view_fields_of_main_default_claims_to_zero() -> None:
    row = settlement.payout_row(PayoutView(OWNER_A, 1, 5, 6))
    assert (row["earned_micro"], row["claimed_micro"], row["claimable_micro"]) == (11, 0, 0)


def test_claims_are_read_on_chain_and_what_is_claimable_is_settled_less_claimed() -> None:
    from dashboard.chain_status import ChainHealth, FakeChainStatus
    from dashboard.routes.settlement import payout_row
    from settlement.views import PayoutView

    owner = "0x" + "Ab" * 20
    view = PayoutView(
        owner, 3, settled_micro=5_000_000, pending_micro=250_000, claimed_micro=0, claimable_micro=5_000_000
    )
    chain = FakeChainStatus(ChainHealth(None, True, None, 0), claims={owner: 1_500_000})
    row = payout_row(view, chain.claimed([owner]))
    assert (row["claimed_micro"], row["claimable_micro"], row["earned_micro"]) == (1_500_000, 3_500_000, 5_250_000)
    assert row["claims_read"]
    over = payout_row(view, {owner: 9_000_000})  # never negative, whatever the chain says
    assert over["claimable_micro"] == 0
    unread = payout_row(view, FakeChainStatus(ChainHealth(None, False, "down", 0)).claimed([owner]))
    assert not unread["claims_read"] and unread["claimable_micro"] == 5_000_000


def test_claims_are_read_at_most_once_per_interval_and_a_failing_node_is_not_asked_on_every_load() -> None:
    from dashboard.chain_status import LiveChainStatus
    from settlement.memory import MemoryReadModel

    class Probe:
        def __init__(self) -> None:
            self.asked = 0
            self.down = False

        def __call__(self) -> Any:
            raise AssertionError("not asked here")

        def claimed(self, owners: Any) -> dict[str, int]:
            self.asked += 1
            if self.down:
                raise TimeoutError("node timed out")
            return dict.fromkeys(owners, 7)

    now = [0]
    probe = Probe()
    status = LiveChainStatus(probe, MemoryReadModel(), lambda: now[0], "node", ttl_s=5)
    assert status.claimed(["0xA"]) == {"0xA": 7} and status.claimed(["0xA"]) == {"0xA": 7}
    assert probe.asked == 1
    now[0], probe.down = 6_000, True
    assert status.claimed(["0xA"]) is None and status.claimed(["0xA"]) is None
    assert probe.asked == 2  # the failure is kept too
    now[0], probe.down = 12_000, False
    assert status.claimed(["0xA"]) == {"0xA": 7} and probe.asked == 3
