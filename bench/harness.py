"""The benchmark harness's results model: figures beside their baselines, their spread, markdown and plots.

A ``Figure`` is one measured quantity of the project (``ours``) and of its baseline measured in the same run,
one value per round. Its ``Spread`` (min / median / max) and ratio (median ours / median baseline) are what the
harness prints and writes into ``docs/benchmarks.md`` between ``START`` and ``END``, so that a rerun replaces
that section only. Plots are drawn with matplotlib's Agg backend when matplotlib is installed (the ``bench``
extra); without it the harness says so and writes none.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

START = "<!-- bench:generated:start (python -m bench --write-docs replaces everything up to the end marker) -->"
END = "<!-- bench:generated:end -->"
PART = "<!-- bench:part {name} -->"  # opens one benchmark's part; a part runs to the next part or to END


@dataclass(frozen=True)
class Spread:
    """Min, median and max of one side's rounds."""

    low: float
    median: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("a spread needs at least one value")
        return cls(min(values), statistics.median(values), max(values))


@dataclass(frozen=True)
class Figure:
    """One quantity measured for the project and for its baseline in the same run, one value per round.

    ``higher_is_better`` says which way the ratio (ours / baseline) should go: up for rates, down for latencies.
    """

    name: str
    unit: str
    ours: tuple[float, ...]
    baseline: tuple[float, ...]
    ours_label: str = "ours"
    baseline_label: str = "baseline"
    higher_is_better: bool = True

    @property
    def rounds(self) -> int:
        return len(self.ours)

    @property
    def ours_spread(self) -> Spread:
        return Spread.of(self.ours)

    @property
    def baseline_spread(self) -> Spread:
        return Spread.of(self.baseline)

    @property
    def ratio(self) -> float:
        """Median of ours over median of the baseline (``inf`` when the baseline's median is 0)."""
        return ratio(self.ours_spread.median, self.baseline_spread.median)

    @property
    def round_ratios(self) -> Spread | None:
        """The spread of the per-round ratios when the rounds were paired (as many of each), else ``None``."""
        if len(self.ours) != len(self.baseline):
            return None
        return Spread.of([ratio(a, b) for a, b in zip(self.ours, self.baseline, strict=True)])


def ratio(ours: float, baseline: float) -> float:
    """``ours / baseline``; ``inf`` (or ``nan`` for 0 / 0) when the baseline is 0."""
    if baseline == 0:
        return float("nan") if ours == 0 else float("inf")
    return ours / baseline


@dataclass(frozen=True)
class Plot:
    """A PNG the harness drew, and what it shows."""

    path: Path
    caption: str


@dataclass
class Section:
    """One benchmark's outcome: its command, its figures, its notes and plots, or why it was skipped."""

    name: str
    title: str
    command: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    output: str = ""  # a module's own printed report, when it gives no figures of its own
    skipped: str = ""  # why it did not run (missing module, service down, ...)
    failed: str = ""  # the error that stopped it
    when: str = ""  # when it ran, as written above its table


# --- numbers as text ----------------------------------------------------------------------------------
def number(value: float) -> str:
    """A figure as people read it: thousands separated, fewer decimals the larger it is."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def spread_text(spread: Spread) -> str:
    return f"{number(spread.low)} / **{number(spread.median)}** / {number(spread.high)}"


def table(figures: Sequence[Figure]) -> str:
    """A markdown table of ``figures``: each side's min / median / max, the ratio and the rounds."""
    lines = [
        "| figure | unit | ours | ours min / median / max | baseline | baseline min / median / max "
        "| ratio ours / baseline | per-round ratios | rounds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        better = "higher is better" if f.higher_is_better else "lower is better"
        paired = f.round_ratios
        per_round = f"{paired.low:.2f}–{paired.high:.2f}" if paired and f.rounds > 1 else "—"
        lines.append(
            f"| {f.name} | {f.unit} | {f.ours_label} | {spread_text(f.ours_spread)} | {f.baseline_label} "
            f"| {spread_text(f.baseline_spread)} | **{f.ratio:.2f}** ({better}) | {per_round} | {f.rounds} |"
        )
    return "\n".join(lines)


def section_markdown(section: Section, docs_dir: Path) -> str:
    """One benchmark's part of the generated section; plot links are relative to ``docs_dir``."""
    out = [PART.format(name=section.name), f"### {section.title}", "", "```sh", section.command, "```", ""]
    if section.when:
        out += [f"Run {section.when}.", ""]
    if section.skipped:
        out += [f"Skipped: {section.skipped}", ""]
        return "\n".join(out)
    if section.failed:
        out += [f"**Failed:** `{section.failed}`", ""]
    if section.figures:
        out += [table(section.figures), ""]
    if section.output:
        out += ["Its own report:", "", "```text", section.output.rstrip(), "```", ""]
    out += [f"- {note}" for note in section.notes]
    if section.notes:
        out.append("")
    for plot in section.plots:
        out += [f"![{plot.caption}]({plot.path.relative_to(docs_dir).as_posix()})", "", f"*{plot.caption}*", ""]
    return "\n".join(out)


def generated(parts: Mapping[str, str], header: str) -> str:
    """The whole generated section, markers included: ``header`` then each part's markdown, in order."""
    body = [START, "", header.rstrip(), ""]
    body += [text.rstrip() + "\n" for text in parts.values()]
    return "\n".join(body).rstrip() + "\n\n" + END + "\n"


def _region(document: str) -> tuple[int, int] | None:
    """Where the generated section (``START`` … ``END`` included) lies in ``document``, if it has one."""
    start = document.find(START)
    if start == -1:
        return None
    end = document.find(END, start)
    if end == -1:
        raise ValueError(f"{START!r} without {END!r}: fix the document by hand")
    return start, end + len(END)


def parts_of(document: str) -> dict[str, str]:
    """The parts of ``document``'s generated section by name, in their order (empty when it has none)."""
    region = _region(document)
    if region is None:
        return {}
    text = document[region[0] : region[1] - len(END)]
    pieces = re.split(r"^(<!-- bench:part (\S+) -->)$", text, flags=re.MULTILINE)
    # [before, marker, name, body, marker, name, body, ...]
    return {pieces[i + 1]: pieces[i] + pieces[i + 2] for i in range(1, len(pieces) - 2, 3)}


def merged(document: str, fresh: Mapping[str, str]) -> dict[str, str]:
    """The document's parts with the ``fresh`` ones replacing those of the same name; new ones come last."""
    return {**parts_of(document), **fresh}


def replace_generated(document: str, section: str) -> str:
    """``document`` with its generated section (``START`` … ``END``) replaced by ``section``, or with
    ``section`` appended when it has none yet. Everything outside the markers is kept as it was."""
    region = _region(document)
    if region is None:
        return document.rstrip("\n") + "\n\n" + section
    after = document[region[1] :].lstrip("\n")
    return document[: region[0]] + section + ("\n" + after if after else "")


# --- rates over time ------------------------------------------------------------------------------------
def rates(
    samples: Sequence[tuple[float, int]], origin: float | None = None, step: float = 0.0
) -> list[tuple[float, float]]:
    """(seconds since ``origin``, messages/s over the interval before) from cumulative samples.

    The samples are (time, messages so far); intervals before the first message and after the last are dropped.
    ``origin`` defaults to the sample just before the first message (pass one shared origin to compare sides).
    With ``step``, each rate is taken over at least ``step`` seconds (a consumer that works in batches reads as
    bursts and gaps at the sampling interval; over a second it reads as a rate).
    """
    first = next((i for i, (_, n) in enumerate(samples) if n > 0), None)
    if first is None:
        return []
    last = next(i for i, (_, n) in enumerate(samples) if n == samples[-1][1])
    window = thinned(samples[max(first - 1, 0) : last + 1], step)
    t0 = window[0][0] if origin is None else origin
    return [
        (t - t0, (n - n_prev) / (t - t_prev))
        for (t_prev, n_prev), (t, n) in zip(window, window[1:], strict=False)
        if t > t_prev
    ]


def thinned(samples: Sequence[tuple[float, int]], step: float) -> list[tuple[float, int]]:
    """The samples at least ``step`` seconds apart, the first and the last always kept (the last interval may
    run up to twice ``step``)."""
    if not samples:
        return []
    out = [samples[0]]
    for sample in samples[1:]:
        if sample[0] - out[-1][0] >= step - 1e-9:
            out.append(sample)
    if out[-1] != samples[-1]:
        if len(out) > 1 and samples[-1][0] - out[-1][0] < step - 1e-9:
            out[-1] = samples[-1]  # no short last interval: the one before it stretches to the end
        else:
            out.append(samples[-1])
    return out


# --- plots ----------------------------------------------------------------------------------------------
def plotting_available() -> bool:
    """Whether matplotlib can be imported (the ``bench`` extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_rates(path: Path, series: Mapping[str, Sequence[tuple[float, float]]], title: str) -> Path:
    """A line per named series of (seconds, msg/s), written as a PNG to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    for name, points in series.items():
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, label=name, linewidth=1.2)
    ax.set_xlabel("seconds since the first message")
    ax.set_ylabel("messages/s")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_bars(path: Path, groups: Mapping[str, Mapping[str, float]], ylabel: str, title: str) -> Path:
    """Grouped bars: one group per key of ``groups`` (e.g. an endpoint), one bar per inner key (e.g. p50, p95)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(groups)
    kinds = sorted({k for bars in groups.values() for k in bars})
    width = 0.8 / max(len(kinds), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(labels)), 4), dpi=100)
    for i, kind in enumerate(kinds):
        xs = [j + i * width for j in range(len(labels))]
        ax.bar(xs, [groups[label].get(kind, 0.0) for label in labels], width, label=kind)
    ax.set_xticks([j + width * (len(kinds) - 1) / 2 for j in range(len(labels))])
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize="small")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
