"""PNG charts of the analysis frames: trips per hour, utilisation per vehicle and hour, trip origins over the streets.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global backend switch). The map is
given as plain coordinates (``ZoneMap``), so this module needs no street data of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

LonLat = tuple[float, float]
Target = TypeVar("Target", Path, BinaryIO)
TRIPS_WORDS = {"ylabel": "trips", "legend": "status", "empty": "no trips"}
UTILISATION_WORDS = {"title": "Share of the fleet on trips per hour", "ylabel": "% of vehicles", "empty": "no trips"}
DPI = 120
MAX_TICKS = 40


@dataclass(frozen=True)
class ZoneMap:
    """What to draw under the origins: street centre lines and the zone's boundary, as (lon, lat) vertices."""

    streets: Sequence[Sequence[LonLat]] = ()
    boundary: Sequence[LonLat] = ()
    attribution: str = ""
    notes: list[str] = field(default_factory=list)

    def bbox(self) -> tuple[float, float, float, float] | None:
        """``(min_lon, min_lat, max_lon, max_lat)`` of everything drawn, or None for an empty map."""
        points = [p for line in self.streets for p in line] + list(self.boundary)
        if not points:
            return None
        lons, lats = zip(*points, strict=True)
        return min(lons), min(lats), max(lons), max(lats)


def trips_per_hour(
    trips: pd.DataFrame,
    path: Target,
    *,
    tz: str = "UTC",
    words: Mapping[str, str] | None = None,
    fmt: str | None = None,
) -> Target:
    """Bars: trips started in each hour from the first to the last, by status (stacked); hours shown in ``tz``.

    ``words`` replaces the English texts (keys ``title``, ``ylabel``, ``legend``, ``empty``); ``fmt`` the format
    (default: the file's suffix, else PNG)."""
    text = {**TRIPS_WORDS, "title": f"Trips started per hour ({tz})", **(words or {})}
    fig = _figure(9, 4)
    ax = fig.add_subplot()
    started = trips.dropna(subset=["start_time"])
    if started.empty:
        ax.text(0.5, 0.5, text["empty"], ha="center", va="center", transform=ax.transAxes)
    else:
        hours = started["start_time"].dt.floor("h")  # whole-hour offsets: a UTC hour is a local hour
        counts = pd.crosstab(hours, started["status"]).sort_index()
        counts = counts.reindex(pd.date_range(counts.index.min(), counts.index.max(), freq="h"), fill_value=0)
        bottom = np.zeros(len(counts))
        for status in counts.columns:
            ax.bar(counts.index, counts[status], width=1 / 24 * 0.8, bottom=bottom, align="edge", label=status)
            bottom += counts[status].to_numpy()
        ax.legend(title=text["legend"], fontsize="small")
        ax.xaxis.set_major_formatter(DateFormatter("%m-%d %H:%M", tz=tz))
        fig.autofmt_xdate()
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(text["title"])
    ax.set_ylabel(text["ylabel"])
    return _save(fig, path, fmt)


def fleet_utilisation(
    utilisation: pd.DataFrame,
    path: Target,
    *,
    tz: str = "UTC",
    words: Mapping[str, str] | None = None,
    fmt: str | None = None,
) -> Target:
    """Bars: the share of the fleet on trips in each period (the mean over vehicles of ``analysis.utilisation``), in
    per cent, periods shown in ``tz``; ``words`` and ``fmt`` as for ``trips_per_hour``."""
    text = {**UTILISATION_WORDS, **(words or {})}
    fig = _figure(9, 4)
    ax = fig.add_subplot()
    share = utilisation.groupby("period", sort=True)["utilisation"].mean() * 100 if len(utilisation) else None
    if share is None or share.empty:
        ax.text(0.5, 0.5, text["empty"], ha="center", va="center", transform=ax.transAxes)
    else:
        ax.bar(share.index, share.to_numpy(float), width=1 / 24 * 0.8, align="edge", color="#0b5cad")
        ax.xaxis.set_major_formatter(DateFormatter("%m-%d %H:%M", tz=tz))
        ax.set_ylim(0, max(5.0, float(share.max()) * 1.15))
        fig.autofmt_xdate()
    ax.set_title(text["title"])
    ax.set_ylabel(text["ylabel"])
    return _save(fig, path, fmt)


def utilisation_heatmap(utilisation: pd.DataFrame, path: Path) -> Path:
    """Heatmap: vehicles (rows) by period (columns), the share of each period spent on trips."""
    grid = utilisation.pivot(index="vehicle_id", columns="period", values="utilisation")
    fig = _figure(9, max(3.0, min(12.0, 1.5 + 0.25 * len(grid))))
    ax = fig.add_subplot()
    if grid.empty:
        ax.text(0.5, 0.5, "no trips", ha="center", va="center", transform=ax.transAxes)
    else:
        image = ax.imshow(grid.to_numpy(float), aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        fig.colorbar(image, ax=ax, label="share of the period on trips")
        _ticks(ax.set_yticks, ax.set_yticklabels, list(grid.index))
        labels = [pd.Timestamp(p).strftime("%m-%d %H:%M") for p in grid.columns]
        _ticks(ax.set_xticks, lambda ls: ax.set_xticklabels(ls, rotation=45, ha="right"), labels)
    ax.set_title("Utilisation per vehicle (UTC)")
    return _save(fig, path)


def origins_map(trips: pd.DataFrame, zone: ZoneMap, path: Path, bins: int = 40) -> Path:
    """Map: the zone's streets and boundary, and a 2D histogram of where trips started on top."""
    fig = _figure(7, 7)
    ax = fig.add_subplot()
    for line in zone.streets:
        lons, lats = zip(*line, strict=True)
        ax.plot(lons, lats, color="0.6", linewidth=1, zorder=1)
    if zone.boundary:
        lons, lats = zip(*[*zone.boundary, zone.boundary[0]], strict=True)
        ax.plot(lons, lats, color="black", linewidth=1.5, zorder=2, label="zone")
    starts = trips.dropna(subset=["start_lat", "start_lon"])
    box = zone.bbox()
    if not starts.empty:
        lon, lat = starts["start_lon"].to_numpy(float), starts["start_lat"].to_numpy(float)
        extent = [[box[0], box[2]], [box[1], box[3]]] if box else None
        *_, image = ax.hist2d(lon, lat, bins=bins, range=extent, cmin=1, cmap="inferno_r", vmin=0, zorder=3)
        bar = fig.colorbar(image, ax=ax, label="trips started", shrink=0.8)
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    ax.set_aspect(1 / math.cos(math.radians(float(np.mean(box[1::2])) if box else 51.2)))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(f"Trip origins ({len(starts)} trips)")
    caption = "; ".join(filter(None, [zone.attribution, *zone.notes]))
    if caption:
        fig.text(0.01, 0.01, caption, fontsize="x-small", color="0.3")
    return _save(fig, path)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


Setter = Callable[[list[Any]], object]


def _ticks(set_ticks: Setter, set_labels: Setter, labels: list[str]) -> None:
    """At most ``MAX_TICKS`` evenly spread tick labels."""
    every = max(1, math.ceil(len(labels) / MAX_TICKS))
    positions = list(range(0, len(labels), every))
    set_ticks(positions)
    set_labels([labels[i] for i in positions])


def _save(fig: Figure, path: Target, fmt: str | None = None) -> Target:
    """Write ``fig`` to a file path (format from ``fmt``, else its suffix) or a binary stream (``fmt``, else PNG)."""
    if isinstance(path, Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = fmt or ("svg" if path.suffix == ".svg" else "png")
    fmt = fmt or "png"
    if fmt == "svg":  # the same file for the same chart (ids from a fixed salt); texts drawn as outlines
        with rc_context({"svg.hashsalt": "smartzone"}):
            fig.savefig(path, format=fmt, metadata={"Date": None})
    else:
        fig.savefig(path, format=fmt, metadata={"Software": None})
    return path
