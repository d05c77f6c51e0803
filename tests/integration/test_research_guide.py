"""docs/research.md's worked example: its database rebuilt, its commands and code run, their output compared."""

from __future__ import annotations

import doctest
import re
import shlex
from pathlib import Path

import pytest

from smartzone.cli import main
from tests.research_example import build

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "research.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.M | re.S)


def blocks(kind: str) -> list[str]:
    """The guide's fenced blocks of ``kind`` (``console``, ``python``), in order."""
    return [body for lang, body in FENCE.findall(GUIDE.read_text("utf-8")) if lang == kind]


def test_the_example_summary_is_what_analyse_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    build(f"sqlite:///{tmp_path / 'example.db'}").close()
    [example] = [b for b in blocks("console") if b.startswith("$ python -m tests.research_example")]
    command, printed = example.split("$ smartzone ", 1)[1].split("\n", 1)
    assert main(shlex.split(command)) == 0
    assert capsys.readouterr().out == printed
    assert "trips: 8" in printed and "€23.30" in printed  # the figures the guide's prose quotes


def test_the_guides_python_samples_print_what_it_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    build(f"sqlite:///{tmp_path / 'example.db'}").close()
    assert main(["analyse", "example.db", "--out", "out"]) == 0
    samples = [b for b in blocks("python") if b.lstrip().startswith(">>>")]
    assert len(samples) >= 4
    test = doctest.DocTestParser().get_doctest("\n".join(samples), {}, "research.md", str(GUIDE), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    failures: list[str] = []
    runner.run(test, out=failures.append)
    assert runner.summarize(verbose=False).failed == 0, "".join(failures)
    assert len(test.examples) >= 15
