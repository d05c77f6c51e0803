"""The chain `smartzone up` settles on when no node is given: anvil where its binary is installed, else py-evm.

- **anvil** runs as a child process on a free loopback port and keeps its chain in the data folder
  (``<data_dir>/chain/state.json``, written when it stops, also when `up` is killed: on Linux the kernel sends
  it SIGTERM then): stopped and started again with the same folder, the chain carries on, contract and history
  included. The state file is taken away while anvil runs, so a run that ended without anvil writing it (anvil
  itself killed) leaves none, and the next run starts a new chain rather than one older than the database.
  Anyone can read it at its URL: ``smartzone verify --chain-url``, a wallet, a browser (anvil allows any origin).
- **py-evm** lives in the aggregator's process and memory; the dashboard serves a read-only JSON-RPC endpoint for
  it at ``/rpc`` (``dashboard.routes.jsonrpc`` over ``settlement.chain.rpc``).
"""

from __future__ import annotations

import ctypes
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sensors.errors import SmartZoneError
from settlement.errors import ChainUnavailable
from smartzone.broker import free_port, started, wait_open

PROJECT = Path(__file__).resolve().parent.parent
STATE_FILE = "state.json"
LOADING_FILE = "state.loading.json"
START_S = 30.0
STOP_S = 30.0
PR_SET_PDEATHSIG = 1
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass(frozen=True, slots=True)
class RunningChain:
    """The chain `up` started: its JSON-RPC URL (None: py-evm in this process), its name, whether it kept state."""

    url: str | None
    name: str
    kept_state: bool = False
    state_file: Path | None = None


def anvil_binary(*, search: tuple[Path, ...] | None = None) -> str | None:
    """The installed anvil: npm's (``node_modules`` of the current folder or of the source tree), else on PATH,
    else foundryup's (``~/.foundry/bin``); None when there is none.

    npm's native binary is preferred to its ``node_modules/.bin/anvil`` wrapper, which exits on a signal before
    anvil has written its state."""
    for base in search if search is not None else (Path.cwd(), PROJECT):
        modules = base / "node_modules"
        native = modules / "@foundry-rs" / f"anvil-{sys.platform}-{_ARCH.get(platform.machine().lower(), '')}"
        for candidate in (native / "bin" / "anvil", modules / ".bin" / "anvil"):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    found = shutil.which("anvil")
    if found:
        return found
    foundry = Path.home() / ".foundry" / "bin" / "anvil"
    return str(foundry) if foundry.is_file() and os.access(foundry, os.X_OK) else None


@contextmanager
def anvil(binary: str, state_dir: Path, port: int | None = None) -> Iterator[RunningChain]:
    """Run anvil on loopback ``port`` (default: a free one) with its chain kept in ``state_dir`` until the block ends.

    On leaving, anvil is asked to stop (SIGTERM), writes ``state_dir/state.json`` and exits.
    """
    port = port or free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    state, loading = state_dir / STATE_FILE, state_dir / LOADING_FILE
    if state.exists():
        state.replace(loading)  # gone while anvil runs: only a stop that writes it brings it back
    kept = loading.exists()  # also when left by a start that failed: no block was made from it
    command = [binary, "--host", "127.0.0.1", "--port", str(port), "--dump-state", str(state)]
    if kept:
        command += ["--load-state", str(loading)]
    log_path = state_dir / "anvil.log"
    with log_path.open("wb") as log_file:
        # its own session: a Ctrl-C to the terminal must not stop the chain before the aggregator has settled
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=log_file, start_new_session=True, preexec_fn=_with_parent()
        )
    url = f"http://127.0.0.1:{port}"
    try:
        if not started(proc, port, START_S):
            hint = f" (its saved chain may be unreadable: remove {state_dir} to start a new one)" if kept else ""
            raise ChainUnavailable(url, f"anvil did not start: {_last_line(log_path)}{hint}")
        loading.unlink(missing_ok=True)
        yield RunningChain(url, "anvil", kept, state)
    finally:
        _stop(proc, port)


def _with_parent() -> Callable[[], None] | None:
    """What the child runs before anvil (Linux): ask for SIGTERM when the parent dies, so that anvil writes its
    state and ends rather than outlive a killed `up`. libc is loaded here, in the parent, not after the fork."""
    if sys.platform != "linux":
        return None
    prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop(proc: subprocess.Popen[bytes], port: int) -> None:
    """Ask anvil to stop and wait until it has (its state written); kill it if it will not."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    deadline = time.monotonic() + STOP_S  # npm's wrapper exits before the anvil it started
    while time.monotonic() < deadline and wait_open(port, 0.1):
        time.sleep(0.1)


def _last_line(log_path: Path) -> str:
    """anvil's error line (clap's usage errors end with a hint instead), else its last line."""
    lines = [line.strip() for line in log_path.read_text("utf-8", errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    found = errors[-1] if errors else lines[-1] if lines else "no message (see its exit code)"
    return found[:300]


@contextmanager
def embedded_chain(prefer: str = "auto", *, data_dir: Path) -> Iterator[RunningChain]:
    """anvil if installed (unless ``prefer`` is "py-evm"), keeping its chain in ``data_dir``; else py-evm, which
    the aggregator makes in its own process (``url`` None). "anvil" insists on anvil."""
    binary = anvil_binary() if prefer != "py-evm" else None
    if prefer == "anvil" and binary is None:
        raise SmartZoneError(
            "SMARTZONE_EMBEDDED_CHAIN is anvil, but no anvil binary is installed (npm ci, or foundryup)"
        )
    if binary is None:
        yield RunningChain(None, "embedded py-evm (in memory)")
        return
    with anvil(binary, data_dir) as running:
        yield running


def chain_reader(chain: object, *, own_node: bool = False) -> Any | None:
    """The read-only JSON-RPC methods of ``chain`` (the aggregator's) when it is the embedded py-evm chain, or the
    anvil node ``up`` started (``own_node``): the dashboard serves them at ``/rpc``, so that a phone that reaches the
    dashboard reaches the chain too. None for a node of its own: it answers JSON-RPC itself."""
    from settlement.chain import EMBEDDED_URL, Web3Clearing
    from settlement.chain.rpc import EmbeddedRpc

    if isinstance(chain, Web3Clearing) and chain.url == EMBEDDED_URL:
        return EmbeddedRpc(chain.sender.w3)
    if isinstance(chain, Web3Clearing) and own_node:
        return EmbeddedRpc(chain.sender.w3, client="SmartZone/anvil (read-only)")
    return None
