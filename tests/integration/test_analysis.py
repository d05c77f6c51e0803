"""The research API on a real database: frames of the worked example, utilisation across hours, exports, charts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from settlement import analysis, charts
from settlement.db import Database
from settlement.exports import NULL_PARTITION, ExportError, export
from tests.research_example import FEE_BPS, T0, build

PNG = b"\x89PNG\r\n\x1a\n"
HOUR = pd.Timestamp("2026-11-30T07:00:00Z")


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = build(f"sqlite:///{tmp_path_factory.mktemp('example') / 'example.db'}")
    yield database
    database.close()


def at(hh_mm: str) -> pd.Timestamp:
    return pd.Timestamp(f"2026-11-30T{hh_mm}:00Z")


def test_trips_come_one_row_each_with_utc_times_and_integer_money(example: Database) -> None:
    trips = analysis.trips(example)
    assert list(trips.columns) == list(analysis.TRIP_COLUMNS)
    assert len(trips) == 8 and trips["trip_id"].is_unique
    assert {c: str(trips[c].dtype) for c in ("fare_micro", "owner_share", "fee", "epoch_id")} == dict.fromkeys(
        ("fare_micro", "owner_share", "fee", "epoch_id"), "Int64"
    )
    assert str(trips["start_time"].dtype.tz) == "UTC"
    first = trips.iloc[0]
    assert (first.trip_id, first.start_time, first.end_time) == ("bike-1:1", at("07:50"), at("08:10"))
    assert (first.distance_m, first.duration_s) == (2400, 1200)
    assert first.fare_micro == first.charged_micro == 1_500_000
    assert first.owner_share + first.fee == first.fare_micro and first.fee == first.fare_micro * FEE_BPS // 10_000
    assert trips["status"].value_counts().to_dict() == {"committed": 5, "rejected": 1, "open": 1, "priced": 1}
    rejected = trips[trips["status"] == "rejected"].iloc[0]
    assert rejected.reason == "trip_too_fast" and pd.isna(rejected.fare_micro)
    still_open = trips[trips["status"] == "open"].iloc[0]
    assert pd.isna(still_open.end_time) and pd.isna(still_open.owner)


def test_trips_are_selected_by_start_since_inclusive_until_exclusive(example: Database) -> None:
    window = analysis.trips(example, since="2026-11-30T08:30Z", until=at("09:30"))
    assert list(window["trip_id"]) == ["car-1:1", "ebike-1:1", "bike-1:3"]
    assert len(analysis.trips(example, since=T0 + 10**9)) == 0


def test_a_trip_over_an_hour_boundary_counts_in_both_hours(example: Database) -> None:
    use = analysis.utilisation(example).set_index(["vehicle_id", "period"])
    assert use.loc[("bike-1", at("07:00")), "on_trip_min"] == 10  # 07:50-08:10
    assert use.loc[("bike-1", at("08:00")), "on_trip_min"] == 10
    assert use.loc[("car-1", at("08:00")), "utilisation"] == 0.5  # 08:30-09:15
    assert use.loc[("car-1", at("09:00")), "utilisation"] == 0.25
    assert use.loc[("ebike-1", at("10:00")), "on_trip_min"] == 5  # 09:50-10:05, priced after the epoch
    assert use.loc[("bike-2", at("09:00")), "on_trip_min"] == 2  # rejected as too fast: still a ride


def test_utilisation_has_every_vehicle_in_every_hour_and_zero_when_idle(example: Database) -> None:
    use = analysis.utilisation(example)
    assert len(use) == 5 * 4  # five registered vehicles (the scooter never rode) x 07:00 to 10:00
    assert use[use["vehicle_id"] == "scooter-1"]["on_trip_min"].sum() == 0
    assert use["on_trip_min"].sum() == (20 + 15 + 45 + 18 + 12 + 2 + 15)  # the open trip counts nothing
    assert list(use.columns) == list(analysis.UTILISATION_COLUMNS)


def test_utilisation_in_quarter_hours_and_within_a_window(example: Database) -> None:
    quarters = analysis.utilisation(example, freq="15min").set_index(["vehicle_id", "period"])
    assert quarters.loc[("bike-1", at("07:45")), "on_trip_min"] == 10
    assert quarters.loc[("bike-1", at("08:00")), "utilisation"] == 10 / 15
    window = analysis.utilisation(example, since=at("08:00"), until=at("09:00"))
    assert set(window["period"]) == {at("08:00")}
    assert window.set_index("vehicle_id").loc["bike-1", "on_trip_min"] == 10
    clipped = analysis.utilisation(example, since=at("08:30"), until=at("09:10")).set_index(["vehicle_id", "period"])
    assert clipped.loc["car-1", "on_trip_min"].tolist() == [30, 10]  # 08:30-09:15 seen through 08:30-09:10
    quiet = analysis.utilisation(example, since=at("12:00"), until=at("14:00"))
    assert len(quiet) == 5 * 2 and quiet["on_trip_min"].sum() == 0


def test_utilisation_refuses_a_period_of_no_fixed_length(example: Database) -> None:
    with pytest.raises(ValueError, match="fixed period"):
        analysis.utilisation(example, freq="ME")


def test_revenue_per_owner_adds_up_to_the_epoch(example: Database) -> None:
    revenue = analysis.revenue(example)
    assert list(revenue.columns) == list(analysis.REVENUE_COLUMNS)
    assert all(str(revenue[c].dtype) == "Int64" for c in analysis.REVENUE_COLUMNS if c != "owner")
    assert list(revenue["earned_micro"]) == [14_175_000, 3_330_000, 2_340_000, 1_125_000]
    assert list(revenue["trips"]) == [1, 1, 2, 1]
    assert (revenue["settled_micro"] == revenue["earned_micro"]).all() and revenue["pending_micro"].sum() == 0
    assert list(revenue["unbatched_micro"]) == [0, 3_250_000, 0, 0]
    epoch = analysis.epochs(example).iloc[0]
    assert revenue["earned_micro"].sum() + revenue["fee_micro"].sum() == epoch.total_micro == 23_300_000


def test_epochs_say_where_each_went_on_chain(example: Database) -> None:
    epochs = analysis.epochs(example)
    assert list(epochs.columns) == list(analysis.EPOCH_COLUMNS)
    epoch = epochs.iloc[0]
    assert (epoch.epoch_id, epoch.status, epoch.trips, epoch.fee_micro) == (1, "committed", 5, 2_330_000)
    assert epoch.closed_time == at("09:45") and epoch.trips_root.startswith("0x") and epoch.gas_used > 0


def test_readings_are_read_in_time_order_by_window_and_vehicle(example: Database) -> None:
    readings = analysis.readings(example)
    assert list(readings.columns) == list(analysis.READING_COLUMNS)
    assert list(readings["seq"]) == [3, 4, 5] and list(readings["time"]) == [at("09:20"), at("09:25"), at("09:30")]
    assert str(readings["odometer_m"].dtype) == "Int64" and readings["odometer_m"].tolist() == [19_000] * 3
    assert len(analysis.readings(example, since=at("09:21"), vehicle_id="car-1")) == 2
    assert len(analysis.readings(example, vehicle_id="bike-1")) == 0


def test_parquet_export_is_partitioned_by_day_and_hour_and_reads_back_whole(example: Database, tmp_path: Path) -> None:
    trips = analysis.trips(example)
    files = export(trips, tmp_path / "trips")
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        f"trips/day=2026-11-30/hour={h}/part-0.parquet" for h in ("07", "08", "09")
    ]
    dataset = ds.dataset(tmp_path / "trips", format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert table.num_rows == 8
    assert str(table.schema.field("fare_micro").type) == "int64"
    assert str(table.schema.field("start_time").type) == "timestamp[ms, tz=UTC]"
    assert sorted(set(zip(table["day"].to_pylist(), table["hour"].to_pylist(), strict=True))) == [
        ("2026-11-30", 7), ("2026-11-30", 8), ("2026-11-30", 9)
    ]  # fmt: skip
    back = pd.read_parquet(tmp_path / "trips").sort_values("trip_id", ignore_index=True)
    mine = trips.sort_values("trip_id", ignore_index=True)
    assert back["fare_micro"].tolist() == mine["fare_micro"].tolist()
    assert (back["start_time"] == mine["start_time"]).all()
    assert "day" not in pq.read_table(files[0]).column_names  # the partition lives in the path only


def test_chunks_of_one_table_export_to_numbered_parts(example: Database, tmp_path: Path) -> None:
    files = export(analysis.trip_chunks(example, chunk_rows=3), tmp_path / "trips")
    assert {f.name for f in files} == {"part-0.parquet", "part-1.parquet", "part-2.parquet"}
    assert ds.dataset(tmp_path / "trips", partitioning="hive").count_rows() == 8


def test_csv_export_reads_back_with_pandas(example: Database, tmp_path: Path) -> None:
    files = export(analysis.utilisation(example), tmp_path / "use", fmt="csv")
    assert files[0].as_posix().endswith("use/day=2026-11-30/hour=07/part-0.csv")
    back = pd.concat(pd.read_csv(f) for f in files)
    assert len(back) == 20 and back["on_trip_min"].sum() == 127


def test_a_row_without_a_time_goes_to_the_null_partition(tmp_path: Path) -> None:
    frame = pd.DataFrame({"time": pd.to_datetime([T0, None], unit="ms", utc=True), "n": pd.array([1, 2], "Int64")})
    files = export(frame, tmp_path / "x")
    assert files[1].parent.name == f"hour={NULL_PARTITION}"
    table = ds.dataset(tmp_path / "x", partitioning="hive").to_table()
    assert sorted(table["day"].to_pylist(), key=str) == ["2026-11-30", None]


def test_a_frame_without_a_time_is_written_whole_and_an_export_never_mixes_with_another(
    example: Database, tmp_path: Path
) -> None:
    files = export(analysis.revenue(example), tmp_path / "revenue")
    assert [f.name for f in files] == ["part-0.parquet"] and pq.read_table(files[0]).num_rows == 4
    with pytest.raises(ExportError, match="not an empty directory"):
        export(analysis.revenue(example), tmp_path / "revenue")
    with pytest.raises(ExportError, match="unknown export format"):
        export(analysis.revenue(example), tmp_path / "other", fmt="xlsx")


def test_charts_are_written_as_png_also_when_there_is_nothing_to_draw(example: Database, tmp_path: Path) -> None:
    trips, use = analysis.trips(example), analysis.utilisation(example)
    street, boundary = [(4.394, 51.212), (4.398, 51.216)], [(4.39, 51.21), (4.40, 51.21), (4.40, 51.22)]
    zone = charts.ZoneMap(streets=[street], boundary=boundary)
    written = [
        charts.trips_per_hour(trips, tmp_path / "a.png"),
        charts.utilisation_heatmap(use, tmp_path / "b.png"),
        charts.origins_map(trips, zone, tmp_path / "c.png"),
        charts.trips_per_hour(trips.iloc[0:0], tmp_path / "empty" / "a.png"),
        charts.utilisation_heatmap(use.iloc[0:0], tmp_path / "empty" / "b.png"),
        charts.origins_map(trips.iloc[0:0], charts.ZoneMap(), tmp_path / "empty" / "c.png"),
    ]
    assert all(p.read_bytes().startswith(PNG) and p.stat().st_size > 1000 for p in written)


@pytest.mark.services
def test_postgresql_gives_the_same_frames_as_sqlite(example: Database, postgres_url: str) -> None:
    other = build(postgres_url)
    try:
        for frame in (analysis.trips, analysis.revenue, analysis.utilisation, analysis.epochs, analysis.readings):
            pd.testing.assert_frame_equal(frame(other), frame(example))
    finally:
        other.close()
