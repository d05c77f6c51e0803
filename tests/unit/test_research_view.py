"""The research page and API over a fake replay control and fake research data: roles, replays, exports, charts."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dashboard import deps
from dashboard.app import create_app
from dashboard.config import DashboardConfig, Principal, Role
from dashboard.i18n import Language
from dashboard.replay_control import FakeReplayControl, RecordingInfo, ReplayBusy, UnknownRecording, check_name
from dashboard.routes import research
from settlement.analysis import READING_COLUMNS, TRIP_COLUMNS
from settlement.views import Stats

T0 = 1_795_000_000_000  # 2026-11-18 11:06:40 UTC, 12:06 in Brussels
RESEARCHER = Principal(Role.RESEARCHER, "res")
OPERATOR = Principal(Role.OPERATOR, "op")
ACCOUNT = Principal(Role.ACCOUNT, "0x" + "11" * 20)
RECORDINGS = [
    RecordingInfo("weekday.jsonl.gz", 20_480, 1200, 600.0, T0, "smartzone", "weekday", 7),
    RecordingInfo("rush.jsonl.gz", 4096, 90, 42.5, T0, "smartzone"),
]


def typed(columns: dict[str, str], rows: dict[str, list[Any]]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(rows.get(name, [None] * len(next(iter(rows.values())))), dtype=dtype)
                         for name, dtype in columns.items()})  # fmt: skip


def trips_frame(n: int, first: int = 0) -> pd.DataFrame:
    ids = [f"trip-{i:03}" for i in range(first, first + n)]
    starts = pd.to_datetime([T0 + i * 600_000 for i in range(first, first + n)], unit="ms", utc=True)
    return typed(
        dict(TRIP_COLUMNS),
        {"trip_id": ids, "status": ["final"] * n, "start_time": list(starts), "fare_micro": [1_230_000] * n},
    )


class FakeData:
    """Research frames from lists; remembers the windows asked for and how many chunks were taken."""

    def __init__(self, chunks: int = 3) -> None:
        self.chunks = chunks
        self.windows: list[tuple[str, int | None, int | None]] = []
        self.taken = 0
        self.drawn = 0

    def trip_chunks(self, from_ms: int | None, to_ms: int | None) -> Iterator[pd.DataFrame]:
        self.windows.append(("trips", from_ms, to_ms))
        for i in range(self.chunks):
            self.taken += 1
            yield trips_frame(2, first=2 * i)

    def reading_chunks(self, from_ms: int | None, to_ms: int | None) -> Iterator[pd.DataFrame]:
        self.windows.append(("readings", from_ms, to_ms))
        yield pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in READING_COLUMNS.items()})

    def trips(self, from_ms: int | None, to_ms: int | None) -> pd.DataFrame:
        self.drawn += 1
        return trips_frame(6)

    def utilisation(self, from_ms: int | None, to_ms: int | None) -> pd.DataFrame:
        self.drawn += 1
        periods = pd.to_datetime([T0 // 3_600_000 * 3_600_000] * 2, unit="ms", utc=True)
        return pd.DataFrame({"vehicle_id": ["a", "b"], "period": periods, "on_trip_min": [30.0, 0.0],
                             "utilisation": [0.5, 0.0]})  # fmt: skip


class FakeModel:
    def stats(self) -> Stats:
        return Stats(0, 0, 0, 0, 0, 0, 0, 0)


def make_app(who: Principal | None, control: FakeReplayControl | None, data: FakeData | None) -> FastAPI:
    app = create_app(FakeModel(), DashboardConfig(session_secret="s" * 32), clock=lambda: T0)  # type: ignore[arg-type]
    app.state.replay_control = control
    app.state.research_data = data
    app.dependency_overrides[deps.principal] = lambda: who
    return app


@pytest.fixture()
def control() -> FakeReplayControl:
    return FakeReplayControl(list(RECORDINGS), clock_ms=T0)


@pytest.fixture()
def data() -> FakeData:
    return FakeData()


@pytest.fixture()
def client(control: FakeReplayControl, data: FakeData) -> TestClient:
    return TestClient(make_app(RESEARCHER, control, data), follow_redirects=False)


STAFF_ONLY = [
    ("GET", "/api/v1/recordings"),
    ("GET", "/api/v1/replays/current"),
    ("DELETE", "/api/v1/replays/current"),
    ("GET", "/api/v1/exports/trips.csv"),
    ("GET", "/api/v1/exports/readings.parquet"),
    ("GET", "/research/charts/trips-per-hour.svg"),
    ("GET", "/research/charts/utilisation.svg"),
]


@pytest.mark.parametrize(("method", "path"), STAFF_ONLY)
def test_research_endpoints_refuse_anonymous_visitors_and_accounts(
    control: FakeReplayControl, data: FakeData, method: str, path: str
) -> None:
    anonymous = TestClient(make_app(None, control, data)).request(method, path)
    account = TestClient(make_app(ACCOUNT, control, data)).request(method, path)
    assert (anonymous.status_code, account.status_code) == (401, 403)
    assert account.headers["content-type"].startswith("application/problem+json")


def test_starting_a_replay_needs_staff_even_with_a_valid_body(control: FakeReplayControl, data: FakeData) -> None:
    body = {"recording": "rush.jsonl.gz", "speed": 10}
    assert TestClient(make_app(None, control, data)).post("/api/v1/replays", json=body).status_code == 401
    assert TestClient(make_app(ACCOUNT, control, data)).post("/api/v1/replays", json=body).status_code == 403
    assert control.started == []


def test_the_recordings_are_listed_with_size_messages_duration_and_scenario(client: TestClient) -> None:
    items = client.get("/api/v1/recordings").json()["items"]
    assert [i["name"] for i in items] == ["rush.jsonl.gz", "weekday.jsonl.gz"]
    assert items[1] | {} == items[1] and items[1]["messages"] == 1200 and items[1]["seed"] == 7
    assert items[1]["scenario"] == "weekday" and items[1]["size_bytes"] == 20_480


def test_a_replay_starts_reports_progress_and_stops(client: TestClient, control: FakeReplayControl) -> None:
    started = client.post("/api/v1/replays", json={"recording": "weekday.jsonl.gz", "speed": 60})
    assert started.status_code == 201
    assert started.json()["state"] == "running" and started.json()["speed"] == 60
    control.advance(300, 150.0, 0.25)
    now = client.get("/api/v1/replays/current").json()
    assert (now["published"], now["recorded_s"], now["fraction"], now["total"]) == (300, 150.0, 0.25, 1200)
    stopped = client.delete("/api/v1/replays/current").json()
    assert stopped["state"] == "stopped" and stopped["published"] == 300
    assert control.started == [("weekday.jsonl.gz", 60.0)]


def test_a_second_replay_while_one_runs_is_a_conflict(client: TestClient, control: FakeReplayControl) -> None:
    assert client.post("/api/v1/replays", json={"recording": "rush.jsonl.gz", "speed": 0}).status_code == 201
    second = client.post("/api/v1/replays", json={"recording": "weekday.jsonl.gz", "speed": 1})
    assert second.status_code == 409
    assert second.headers["content-type"].startswith("application/problem+json")
    assert control.status().recording == "rush.jsonl.gz"


@pytest.mark.parametrize("speed", [-1, 1001, "fast", None])
def test_a_bad_speed_is_refused(client: TestClient, control: FakeReplayControl, speed: Any) -> None:
    response = client.post("/api/v1/replays", json={"recording": "rush.jsonl.gz", "speed": speed})
    assert response.status_code == 422
    assert control.started == []


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "a/../../b", "..", ".hidden", "x\\y", "a..b"])
def test_a_recording_name_that_is_a_path_is_refused(client: TestClient, control: FakeReplayControl, name: str) -> None:
    response = client.post("/api/v1/replays", json={"recording": name, "speed": 1})
    assert response.status_code == 422
    assert control.started == []


def test_an_unknown_recording_is_not_found(client: TestClient) -> None:
    response = client.post("/api/v1/replays", json={"recording": "nope.jsonl.gz", "speed": 1})
    assert response.status_code == 404


def test_a_malformed_body_is_a_problem_not_a_crash(client: TestClient) -> None:
    response = client.post("/api/v1/replays", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_without_a_replay_control_the_replay_api_says_it_is_unavailable(data: FakeData) -> None:
    client = TestClient(make_app(OPERATOR, None, data))
    assert client.get("/api/v1/replays/current").status_code == 503
    assert "not configured" in client.get("/research").text or client.get("/research").status_code == 200


def test_trips_download_as_csv_streams_every_chunk_with_one_header(client: TestClient, data: FakeData) -> None:
    response = client.get("/api/v1/exports/trips.csv?from_ms=5&to_ms=10")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="trips.csv"'
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.strip().splitlines()
    assert lines[0].startswith("trip_id,vehicle_id") and len(lines) == 1 + 6
    assert sum(line.startswith("trip_id") for line in lines) == 1
    assert "2026-11-18T11:06:40.000Z" in lines[1] and ",1230000," in lines[1]
    assert data.windows == [("trips", 5, 10)] and data.taken == 3


def test_trips_download_as_parquet_is_one_file_with_a_row_group_per_chunk(client: TestClient) -> None:
    response = client.get("/api/v1/exports/trips.parquet")
    assert response.headers["content-disposition"] == 'attachment; filename="trips.parquet"'
    file = pq.ParquetFile(io.BytesIO(response.content))
    assert file.metadata.num_rows == 6 and file.num_row_groups == 3
    table = file.read().to_pandas()
    assert list(table["trip_id"]) == [f"trip-{i:03}" for i in range(6)]
    assert int(table["fare_micro"].iloc[0]) == 1_230_000


def test_an_empty_readings_download_still_has_its_columns(client: TestClient) -> None:
    csv = client.get("/api/v1/exports/readings.csv").text
    assert csv.strip() == ",".join(READING_COLUMNS)
    parquet = pq.ParquetFile(io.BytesIO(client.get("/api/v1/exports/readings.parquet").content))
    assert parquet.schema_arrow.names == list(READING_COLUMNS)


@pytest.mark.parametrize("query", ["from_ms=-1", "to_ms=abc", "from_ms=1e99"])
def test_a_bad_window_is_refused(client: TestClient, query: str) -> None:
    assert client.get(f"/api/v1/exports/trips.csv?{query}").status_code == 422


def test_the_charts_are_svg_with_brussels_hours_and_cached(client: TestClient, data: FakeData) -> None:
    first = client.get("/research/charts/trips-per-hour.svg")
    assert first.headers["content-type"] == "image/svg+xml"
    svg = first.text
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "<script" not in svg
    assert "11-18 12:00" in svg and "11-18 11:00" not in svg  # trips from 11:06 UTC: 12:06 in Brussels
    assert "Trips started per hour" in svg
    client.get("/research/charts/trips-per-hour.svg")
    assert data.drawn == 1
    utilisation = client.get("/research/charts/utilisation.svg").text
    assert "Share of the fleet on a trip per hour" in utilisation
    assert data.drawn == 2


def test_the_charts_are_drawn_in_the_page_language(client: TestClient) -> None:
    client.cookies.set("lang", "nl")
    assert "Gestarte ritten per uur" in client.get("/research/charts/trips-per-hour.svg").text
    assert "Aandeel van de vloot op rit per uur" in client.get("/research/charts/utilisation.svg").text


@pytest.mark.parametrize("lang", list(Language))
@pytest.mark.parametrize("name", sorted(research.CHART_TEXTS))
def test_every_text_a_chart_draws_has_words_in_both_languages(lang: Language, name: str) -> None:
    words = research.chart_words(lang, name)
    assert set(words) == set(research.CHART_TEXTS[name]) and all(text.strip() for text in words.values())
    assert "legend" not in research.chart_words(lang, "utilisation")


def test_the_research_page_lists_recordings_and_offers_the_speeds(client: TestClient) -> None:
    html = client.get("/research").text
    assert 'data-recording="weekday.jsonl.gz"' in html and "weekday · seed 7" in html
    assert 'value="60.0"' in html and 'value="0.0"' in html
    assert 'src="/research/charts/trips-per-hour.svg"' in html and 'href="/api/v1/exports/trips.parquet"' in html


def test_the_research_page_sends_nobody_to_the_login_and_refuses_accounts(
    control: FakeReplayControl, data: FakeData
) -> None:
    anonymous = TestClient(make_app(None, control, data), follow_redirects=False).get("/research")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=/research"
    assert TestClient(make_app(ACCOUNT, control, data)).get("/research").status_code == 403
    assert TestClient(make_app(OPERATOR, control, data)).get("/research").status_code == 200


def test_the_fake_control_refuses_a_second_replay_and_path_names() -> None:
    fake = FakeReplayControl(list(RECORDINGS))
    fake.start("rush.jsonl.gz", 1)
    with pytest.raises(ReplayBusy):
        fake.start("rush.jsonl.gz", 1)
    with pytest.raises(UnknownRecording):
        check_name("../rush.jsonl.gz")
