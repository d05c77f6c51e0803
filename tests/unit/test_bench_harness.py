"""The benchmark harness's pure parts: spreads, ratios, markdown tables, the generated section, rates over time."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.harness import (
    END,
    START,
    Figure,
    Plot,
    Section,
    Spread,
    generated,
    merged,
    parts_of,
    rates,
    ratio,
    replace_generated,
    section_markdown,
    table,
    thinned,
)


def test_a_spread_is_the_min_median_and_max_of_the_rounds() -> None:
    assert Spread.of([3.0, 1.0, 2.0]) == Spread(1.0, 2.0, 3.0)
    assert Spread.of([4.0, 1.0, 2.0, 3.0]) == Spread(1.0, 2.5, 4.0)
    assert Spread.of([7.0]) == Spread(7.0, 7.0, 7.0)


def test_a_spread_of_no_rounds_is_refused() -> None:
    with pytest.raises(ValueError):
        Spread.of([])


def test_the_ratio_is_the_median_of_ours_over_the_median_of_the_baseline() -> None:
    figure = Figure("rate", "msg/s", (50.0, 60.0, 100.0), (100.0, 200.0, 120.0))
    assert figure.ratio == pytest.approx(60.0 / 120.0)
    assert figure.rounds == 3


def test_paired_rounds_give_the_spread_of_their_own_ratios() -> None:
    figure = Figure("rate", "msg/s", (50.0, 60.0), (100.0, 60.0))
    assert figure.round_ratios == Spread(0.5, 0.75, 1.0)
    assert Figure("rate", "msg/s", (1.0,), (1.0, 2.0)).round_ratios is None


def test_a_ratio_over_a_zero_baseline_is_infinite_not_an_error() -> None:
    assert ratio(3.0, 0.0) == math.inf
    assert math.isnan(ratio(0.0, 0.0))
    assert ratio(1.0, 4.0) == 0.25


def test_the_table_shows_both_sides_the_ratio_and_which_way_is_better() -> None:
    text = table(
        [
            Figure("ingest rate", "msg/s", (900.0, 1000.0, 1100.0), (2000.0, 2000.0, 2500.0), "aggregator", "bare"),
            Figure("latency", "ms", (12.0,), (3.0,), "stats", "trivial", higher_is_better=False),
        ]
    )
    lines = text.splitlines()
    assert lines[0].startswith("| figure | unit |") and lines[1].startswith("|---")
    assert "| ingest rate | msg/s | aggregator | 900 / **1,000** / 1,100 | bare | 2,000 / **2,000** / 2,500 |" in text
    assert "**0.50** (higher is better) | 0.44–0.50 | 3 |" in lines[2]
    assert "**4.00** (lower is better) | — | 1 |" in lines[3]


def test_a_skipped_benchmark_says_why_with_its_command(tmp_path: Path) -> None:
    section = Section("read_side", "Read side", "python -m bench --only read_side", skipped="no module")
    text = section_markdown(section, tmp_path)
    assert "```sh\npython -m bench --only read_side\n```" in text
    assert "Skipped: no module" in text
    assert "| figure |" not in text


def test_plots_are_linked_relative_to_the_document(tmp_path: Path) -> None:
    section = Section("ingest", "Ingest", "cmd", plots=[Plot(tmp_path / "bench" / "ingest.png", "rate over time")])
    assert "![rate over time](bench/ingest.png)" in section_markdown(section, tmp_path)


def test_the_generated_section_is_appended_when_the_document_has_none() -> None:
    document = "# Benchmarks\n\nHand-written figures.\n"
    section = generated({}, "## Generated")
    out = replace_generated(document, section)
    assert out.startswith(document.rstrip("\n"))
    assert out.index(START) < out.index("## Generated") < out.index(END)


def test_a_rerun_replaces_only_the_generated_section() -> None:
    before, after = "# Benchmarks\n\nKept above.\n\n", "\n## Kept below\n\nAlso kept.\n"
    document = before + generated({}, "## Generated: first") + after
    second = replace_generated(document, generated({}, "## Generated: second"))
    assert "first" not in second and "## Generated: second" in second
    assert second.count(START) == 1 and second.count(END) == 1
    assert second.startswith("# Benchmarks\n\nKept above.")
    assert second.rstrip().endswith("Also kept.")


def test_text_between_two_sections_outside_the_markers_is_kept() -> None:
    document = f"intro\n\n{START}\nold\n{END}\n\n## After\n\ntext\n"
    out = replace_generated(document, f"{START}\nnew\n{END}\n")
    assert out == f"intro\n\n{START}\nnew\n{END}\n\n## After\n\ntext\n"


def test_a_start_marker_without_an_end_is_refused_rather_than_eating_the_document() -> None:
    with pytest.raises(ValueError):
        replace_generated(f"intro\n{START}\nold\n", f"{START}\nnew\n{END}\n")


def part(name: str, figure: str) -> str:
    return section_markdown(Section(name, name.title(), f"python -m bench --only {name}", notes=[figure]), Path("d"))


def test_a_rerun_of_some_benchmarks_replaces_their_parts_and_keeps_the_others() -> None:
    document = "# Benchmarks\n\n" + generated({"publish": part("publish", "old publish"),
                                                 "ingest": part("ingest", "old ingest")}, "## Generated")  # fmt: skip
    assert list(parts_of(document)) == ["publish", "ingest"]
    parts = merged(document, {"ingest": part("ingest", "new ingest"), "offline": part("offline", "new offline")})
    out = replace_generated(document, generated(parts, "## Generated"))
    assert list(parts_of(out)) == ["publish", "ingest", "offline"]
    assert "old publish" in out and "new ingest" in out and "old ingest" not in out and "new offline" in out
    assert out.count(START) == 1 and out.count(END) == 1


def test_parts_survive_a_round_trip_unchanged() -> None:
    parts = {"publish": part("publish", "a"), "ingest": part("ingest", "b")}
    document = "intro\n\n" + generated(parts, "## Generated")
    again = replace_generated(document, generated(parts_of(document), "## Generated"))
    assert again == document


def test_a_document_without_a_generated_section_has_no_parts() -> None:
    assert parts_of("# Benchmarks\n") == {}


def test_rates_over_time_come_from_cumulative_counts_between_the_first_and_last_message() -> None:
    samples = [(0.0, 0), (0.1, 0), (0.2, 100), (0.3, 300), (0.4, 400), (0.5, 400), (0.6, 400)]
    assert rates(samples) == [
        pytest.approx((0.1, 1000.0)),
        pytest.approx((0.2, 2000.0)),
        pytest.approx((0.3, 1000.0)),
    ]


def test_rates_share_an_origin_when_one_is_given() -> None:
    assert rates([(1.0, 0), (2.0, 10)], origin=0.5) == [(1.5, 10.0)]


def test_no_messages_means_no_rates() -> None:
    assert rates([(0.0, 0), (1.0, 0)]) == []
    assert rates([]) == []


def test_rates_over_a_step_smooth_a_consumer_that_works_in_batches() -> None:
    bursts = [(k / 10, 100 * (k // 5)) for k in range(0, 21)]  # 100 messages every half second, in one go
    assert rates(bursts, origin=0.0, step=0.5) == [
        pytest.approx((0.9, 200.0)),
        pytest.approx((1.4, 200.0)),
        pytest.approx((2.0, 200 / 0.6)),
    ]


def test_thinning_keeps_the_ends_and_leaves_no_short_last_interval() -> None:
    samples = [(t / 10, t) for t in range(0, 13)]
    assert thinned(samples, 0.5) == [(0.0, 0), (0.5, 5), (1.2, 12)]
    assert thinned(samples, 0.0) == samples
    assert thinned([], 1.0) == []
