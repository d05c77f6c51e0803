"""Run one of the browser scripts' Node tests (``tests/js/*.test.mjs``) on a JSON fixture the Python side made."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests import services

ROOT_DIR = Path(__file__).resolve().parents[1]


def node() -> str:
    """Node's binary: a failure where CI requires the services, else a skip without it."""
    binary = shutil.which("node")
    if binary is None:
        services.unavailable("no node to run the browser's scripts in")
        raise AssertionError("unreachable")
    return binary


def run_node_test(test: str, variable: str, fixture: Any, folder: Path) -> str:
    """``node --test tests/js/<test>`` with ``fixture`` written as JSON to a file named by the environment
    ``variable``; asserts that it passed with no failure, and returns its TAP output."""
    path = folder / f"{variable.lower()}.json"
    path.write_text(json.dumps(fixture, ensure_ascii=False), encoding="utf-8")
    result = subprocess.run(
        [node(), "--test", str(ROOT_DIR / "tests" / "js" / test)],
        cwd=ROOT_DIR,
        env={"PATH": "/usr/bin:/bin", variable: str(path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "# fail 0" in result.stdout, result.stdout[-2000:]
    return result.stdout
