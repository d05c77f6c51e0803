"""The ``smartzone analyse`` command: a settlement database or a recording summarised, exported and plotted."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from settlement.db import Database
from settlement.errors import SettlementError
from settlement.fares import format_eur
from settlement.lifecycle import ON_CHAIN_EPOCH
from smartzone.settings import Settings

if TYPE_CHECKING:  # pandas, pyarrow and matplotlib load when the command runs, not with every `smartzone` command
    import pandas as pd

    from settlement.charts import ZoneMap

RECORDING_SUFFIXES = (".jsonl.gz", ".jsonl")
GZIP_MAGIC = b"\x1f\x8b"
SQLITE_MAGIC = b"SQLite format 3\x00"
STREETS_ATTRIBUTION = "Streets and zone: Bron: Stad Antwerpen (open geodata), reconstructed (see simulator/data)"
TABLES = ("trips", "utilisation", "revenue", "epochs")


def add_analyse_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``analyse`` on the CLI's subcommands."""
    analyse = sub.add_parser(
        "analyse",
        help="summarise, export (Parquet/CSV) and plot the trips of a database or a recording",
        description="Read the trips, utilisation, revenue and epochs of a settlement database (SOURCE: a database "
        "URL or a SQLite file; default SMARTZONE_DATABASE_URL) or of a recording (*.jsonl.gz, replayed offline "
        "into a temporary SQLite database first) and print a summary. With --out, write each table as a "
        "dataset partitioned by day and hour (day=YYYY-MM-DD/hour=HH/part-N.parquet) that pandas, DuckDB and "
        "Spark read whole; with --plots, PNG charts too.",
    )
    analyse.add_argument("source", nargs="?", metavar="SOURCE", help="database URL, SQLite file or recording")
    analyse.add_argument("--out", type=Path, metavar="DIR", help="where to write exports and plots")
    analyse.add_argument("--format", dest="fmt", choices=("parquet", "csv"), default="parquet", help="export format")
    analyse.add_argument("--plots", action="store_true", help="also write PNG charts into OUT/plots")
    analyse.add_argument("--readings", action="store_true", help="also export the raw telemetry (can be large)")
    analyse.add_argument("--since", metavar="TIME", help="only trips from TIME (ISO 8601; UTC if no offset)")
    analyse.add_argument("--until", metavar="TIME", help="only trips before this time")
    analyse.add_argument("--freq", default="h", help="utilisation period (default h; e.g. 15min, D)")
    analyse.add_argument("--streets", type=Path, metavar="FILE", help="streets to draw (GeoJSON; default the zone's)")
    analyse.add_argument("--registrations", type=Path, metavar="FILE", help="a recording's fleet: its signed "
                         "registrations (JSON lines; default: rebuilt from the recording's scenario seed)")  # fmt: skip
    analyse.set_defaults(command=run_analyse)


def run_analyse(settings: Settings, args: argparse.Namespace) -> int:
    """Summarise SOURCE on stdout, progress on stderr; 0, or 2 for a source or output that cannot be used."""
    if args.plots and args.out is None:
        print("smartzone: error: --plots needs --out DIR to write the charts into", file=sys.stderr)
        return 2
    if args.out is not None:
        busy = [d for d in _targets(args.out, args) if d.exists() and (not d.is_dir() or any(d.iterdir()))]
        if busy:
            print(f"smartzone: error: {busy[0]} is not empty: choose another --out", file=sys.stderr)
            return 2
    with _database(settings, args.source, args.registrations) as database:
        return _analyse(database, args)


def _analyse(database: Database, args: argparse.Namespace) -> int:
    from settlement import analysis

    _progress(f"reading {database.url}")
    try:
        trips = analysis.trips(database, args.since, args.until)
        use = analysis.utilisation(database, args.freq, args.since, args.until)
    except ValueError as exc:  # a --since/--until or --freq that pandas cannot read
        print(f"smartzone: error: {exc}", file=sys.stderr)
        return 2
    frames = {"trips": trips, "utilisation": use, "revenue": analysis.revenue(database)}
    frames["epochs"] = analysis.epochs(database)
    print(summary(frames), flush=True)
    if args.out is not None:
        _export(database, frames, args)
    if args.plots:
        _plot(frames, args)
    return 0


def summary(frames: dict[str, pd.DataFrame]) -> str:
    """The summary ``analyse`` prints: trips by status, revenue per owner, the busiest hour, epochs."""
    trips, revenue, epochs = frames["trips"], frames["revenue"], frames["epochs"]
    lines = [f"trips: {len(trips)}"]
    by_status = trips["status"].value_counts().sort_index()
    lines += [f"  {status:<10} {count:>6}" for status, count in by_status.items()]
    lines.append(f"revenue per owner (owner's share of the fares batched into epochs; fee: the zone's): {len(revenue)}")
    if len(revenue):
        lines.append(f"  {'owner':<42} {'trips':>6} {'earned':>10} {'fee':>9} {'settled':>10} {'unbatched':>9}")
    for r in revenue.itertuples():
        earned, fee, settled = (format_eur(int(m)) for m in (r.earned_micro, r.fee_micro, r.settled_micro))
        lines.append(f"  {r.owner:<42} {r.trips:>6} {earned:>10} {fee:>9} {settled:>10} {r.unbatched_trips:>9}")
    started = trips["start_time"].dropna()
    if len(started):
        per_hour = started.dt.floor("h").value_counts()
        top = per_hour[per_hour == per_hour.max()].sort_index()
        lines.append(f"busiest hour: {top.index[0]:%Y-%m-%d %H:00} UTC, {top.iloc[0]} trips started")
    on_chain = epochs[epochs["status"].isin([s.value for s in ON_CHAIN_EPOCH])]
    total = format_eur(int(epochs["total_micro"].sum())) if len(epochs) else format_eur(0)
    lines.append(f"epochs: {len(epochs)} ({len(on_chain)} on chain), {int(epochs['trips'].sum())} trips, {total}")
    return "\n".join(lines)


def zone_map(streets: Path | None = None) -> ZoneMap:
    """The zone's boundary and streets to draw under the trip origins: ``streets`` if given, else the package's
    street file, else the lab's shared copy; without one, the boundary alone (the map says so)."""
    from settlement.charts import ZoneMap
    from simulator.zone import load_zone

    boundary = [(p.lon, p.lat) for p in load_zone().ring]
    packaged = resources.files("simulator").joinpath("data", "streets.geojson")
    source = streets or (packaged if packaged.is_file() else None)
    if source is None:
        return ZoneMap(boundary=boundary, attribution=STREETS_ATTRIBUTION, notes=["streets not available"])
    try:
        lines = street_lines(json.loads(source.read_text("utf-8")))
    except (OSError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise SettlementError(f"cannot draw the streets of {source}: {exc}") from None
    return ZoneMap(streets=lines, boundary=boundary, attribution=STREETS_ATTRIBUTION)


def street_lines(collection: dict[str, Any]) -> list[list[tuple[float, float]]]:
    """The (lon, lat) vertices of every LineString (and each part of a MultiLineString) of a GeoJSON collection."""
    lines: list[list[tuple[float, float]]] = []
    for feature in collection.get("features", []):
        geometry = feature.get("geometry") or {}
        kind, coordinates = geometry.get("type"), geometry.get("coordinates") or []
        parts = [coordinates] if kind == "LineString" else coordinates if kind == "MultiLineString" else []
        lines.extend([(float(c[0]), float(c[1])) for c in part] for part in parts)
    return lines


@contextmanager
def _database(settings: Settings, source: str | None, registrations: Path | None = None) -> Iterator[Database]:
    """The database SOURCE names, or one a recording is replayed into (in a temporary directory, removed after)."""
    url = _database_url(source) if source is not None else settings.db_url()
    if url is not None:
        database = Database.connect(url)
        try:
            yield database
        finally:
            database.close()
        return
    assert source is not None
    with tempfile.TemporaryDirectory(prefix="smartzone-analyse-") as scratch:
        replayed = f"sqlite:///{Path(scratch) / 'replay.db'}"
        _replay(Path(source), replayed, settings, registrations)
        database = Database.connect(replayed)
        try:
            yield database
        finally:
            database.close()


def _database_url(source: str) -> str | None:
    """SOURCE as a database URL, or None for a recording; ``SettlementError`` for neither."""
    path = Path(source)
    if path.name.endswith(RECORDING_SUFFIXES):
        return None
    if "://" in source:
        return source
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise SettlementError(f"cannot read {source}: {exc.strerror or exc}") from None
    if head.startswith(GZIP_MAGIC):
        return None
    if head == SQLITE_MAGIC:
        return f"sqlite:///{path.resolve()}"
    raise SettlementError(f"{source} is neither a database URL, a SQLite file nor a recording (*.jsonl.gz)")


def _replay(recording: Path, url: str, settings: Settings, registrations: Path | None) -> None:
    """Replay ``recording`` offline (``smartzone replay --offline``, its recorded tariffs) into the database ``url``."""
    try:
        replay = importlib.import_module("smartzone.replay")  # the offline replay (issue 10, item 8)
        replay_offline = replay.replay_offline
    except (ImportError, AttributeError):
        raise SettlementError(f"cannot analyse {recording}: this smartzone cannot replay recordings offline") from None
    _progress(f"replaying {recording} into a temporary database")
    extra: dict[str, Any] = {}
    if registrations is not None:
        extra["registrations"] = replay.read_registrations(registrations)

    def progress(messages: int, fraction: float) -> None:
        _progress(f"replayed {messages:,} messages ({fraction:.0%} of the file)")

    replay_offline(recording, url, settings=settings, progress=progress, **extra)


def _targets(out: Path, args: argparse.Namespace) -> list[Path]:
    names = [*TABLES, *(["readings"] if args.readings else []), *(["plots"] if args.plots else [])]
    return [out / name for name in names]


def _export(database: Database, frames: dict[str, pd.DataFrame], args: argparse.Namespace) -> None:
    from settlement import analysis
    from settlement.exports import export

    for name, frame in frames.items():
        files = export(frame, args.out / name, args.fmt)
        print(f"wrote {args.out / name}: {_many(len(frame), 'row')} in {_many(len(files), 'file')}", flush=True)
    if args.readings:
        _progress("exporting raw readings")
        files = export(analysis.reading_chunks(database, args.since, args.until), args.out / "readings", args.fmt)
        print(f"wrote {args.out / 'readings'}: {_many(len(files), 'file')}", flush=True)


def _plot(frames: dict[str, pd.DataFrame], args: argparse.Namespace) -> None:
    from settlement import charts

    plots = args.out / "plots"
    _progress("drawing charts")
    written = [
        charts.trips_per_hour(frames["trips"], plots / "trips_per_hour.png"),
        charts.utilisation_heatmap(frames["utilisation"], plots / "utilisation.png"),
        charts.origins_map(frames["trips"], zone_map(args.streets), plots / "origins.png"),
    ]
    print(f"wrote {plots}: " + ", ".join(p.name for p in written), flush=True)


def _many(n: int, thing: str) -> str:
    return f"{n} {thing}" + ("" if n == 1 else "s")


def _progress(text: str) -> None:
    print(f"analyse: {text}", file=sys.stderr, flush=True)
