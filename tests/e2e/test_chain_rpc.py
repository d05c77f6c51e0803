"""A chain third parties can reach: `smartzone verify` and web3 read the app's /rpc; `up` on anvil prints its URL."""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest
import uvicorn
from eth_typing import ChecksumAddress
from web3 import HTTPProvider, Web3

from dashboard.app import create_app
from settlement.chain import Web3Clearing
from settlement.chain.rpc import EmbeddedRpc
from settlement.contract import compiled
from settlement.db import Database
from settlement.queries import SqlReadModel
from smartzone.broker import free_port, wait_open
from smartzone.chain_node import anvil_binary
from smartzone.cli import main
from tests import services
from tests.integration.test_receipts import edited, settle_rides

BANNER_END = "Press Ctrl-C to stop."


@contextmanager
def serving(app: object) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port; its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_open(port, 15), "the app did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_smartzone_verify_and_web3_read_a_settled_trip_through_the_apps_rpc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = Database.open(f"sqlite:///{tmp_path / 'rpc.db'}")
    database.upgrade()
    chain = Web3Clearing.connect(None)  # the embedded py-evm chain, as `up` has it
    api = settle_rides(database, chain)
    receipt = api.get("/api/v1/trips/bike-2:1/receipt").json()
    app = create_app(SqlReadModel(database), chain_reader=EmbeddedRpc(chain.sender.w3))
    with serving(app) as base:
        url = f"{base}/rpc"
        reader = Web3(HTTPProvider(url))
        assert reader.eth.chain_id == chain.chain_id() == receipt["chain_id"]
        assert reader.eth.block_number == chain.sender.w3.eth.block_number
        settled = reader.eth.get_transaction_receipt(receipt["tx_hash"])
        assert settled["status"] == 1 and settled["to"] == receipt["contract"]
        contract = reader.eth.contract(address=receipt["contract"], abi=list(compiled("clearing").abi))
        assert "0x" + contract.functions.trips_root(1).call().hex() == receipt["root"]
        assert contract.events.EpochCommitted().get_logs(from_block=0)[0]["args"]["epoch_id"] == 1
        path = tmp_path / "receipt.json"
        path.write_text(json.dumps(receipt))
        assert main(["verify", str(path), "--chain-url", url]) == 0
        assert capsys.readouterr().out.strip() == "verified"
        path.write_text(json.dumps(edited(receipt)))
        assert main(["verify", str(path), "--chain-url", url]) == 1
        assert "verified" not in capsys.readouterr().out
    database.close()


def start_up(data: Path, port: int, log: IO[str], **variables: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """`smartzone up` in ``data`` on ``port``; the process and its banner's lines by label, once it is up."""
    env = {**os.environ, "SMARTZONE_DATA_DIR": str(data), "SMARTZONE_HTTP_PORT": str(port), **variables}
    for name in ("SMARTZONE_MQTT_URL", "SMARTZONE_DATABASE_URL", "SMARTZONE_CHAIN_URL"):
        env.pop(name, None)
    up = subprocess.Popen(
        [sys.executable, "-m", "smartzone.cli", "up"], env=env, text=True, stdout=subprocess.PIPE, stderr=log
    )
    assert up.stdout is not None
    banner: dict[str, str] = {}
    for line in up.stdout:  # the banner ends the start; a failed start ends the output
        found = re.match(r"^  (\S+(?: \S+)?)\s{2,}(.*)$", line.rstrip("\n"))
        if found:
            banner[found.group(1)] = found.group(2)
        if line.startswith(BANNER_END):
            return up, banner
    up.wait(timeout=30)
    raise AssertionError(f"`up` did not start (exit {up.returncode}); see {log.name}")


def stop_up(up: subprocess.Popen[str]) -> str:
    up.send_signal(signal.SIGINT)
    out, _ = up.communicate(timeout=90)
    assert up.returncode == 0, out
    return out


def contract_of(banner: dict[str, str]) -> ChecksumAddress:
    found = re.search(r"contract (0x[0-9a-fA-F]{40})", banner["chain"])
    assert found, banner
    return Web3.to_checksum_address(found.group(1))


@pytest.mark.services
def test_up_with_anvil_installed_deploys_on_anvil_prints_its_url_and_keeps_its_chain(tmp_path: Path) -> None:
    if anvil_binary() is None:
        services.unavailable("no anvil binary (npm ci)")
    data = tmp_path / "data"
    with (tmp_path / "up.log").open("w") as log:
        up, banner = start_up(data, free_port(), log, SMARTZONE_SPEED="60", SMARTZONE_EPOCH_SECONDS="1")
        try:
            # browsers read the chain through the dashboard's read-only /rpc; the banner also names anvil itself
            served = banner["JSON-RPC"].split()[0]
            found = re.search(r"anvil itself at (http://127\.0\.0\.1:\d+)", banner["JSON-RPC"])
            assert served.startswith("http://127.0.0.1:") and served.endswith("/rpc") and found, banner["JSON-RPC"]
            node = Web3(HTTPProvider(found.group(1)))
            assert node.client_version.startswith("anvil") and node.eth.chain_id == 31337
            assert Web3(HTTPProvider(served)).eth.chain_id == 31337
            contract = contract_of(banner)
            assert node.eth.get_code(contract)  # the clearing contract is on the chain the banner names
        finally:
            stop_up(up)
        assert (data / "chain" / "state.json").is_file()

        again, banner = start_up(data, free_port(), log, SMARTZONE_SPEED="60")
        try:
            assert contract_of(banner) == contract  # the same chain: the database and its contract were kept
            assert not (data / "previous").exists()
        finally:
            stop_up(again)


def test_up_on_py_evm_serves_a_read_only_rpc_that_web3_reads(tmp_path: Path) -> None:
    port = free_port()
    with (tmp_path / "up.log").open("w") as log:
        up, banner = start_up(tmp_path / "data", port, log, SMARTZONE_EMBEDDED_CHAIN="py-evm")
        try:
            assert banner["JSON-RPC"].startswith(f"http://127.0.0.1:{port}/rpc ")
            node = Web3(HTTPProvider(f"http://127.0.0.1:{port}/rpc"))
            assert node.eth.get_code(contract_of(banner)) and node.eth.block_number >= 1
            sent = {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": ["0x00"]}
            request = urllib.request.Request(f"http://127.0.0.1:{port}/rpc", data=json.dumps(sent).encode())
            with urllib.request.urlopen(request, timeout=10) as response:
                assert json.load(response)["error"]["code"] == -32601
        finally:
            out = stop_up(up)
        assert "stopped cleanly" in out
    assert not (tmp_path / "data" / "chain").exists()


def test_anvil_is_found_in_node_modules_native_binary_first(tmp_path: Path) -> None:
    wrapper = tmp_path / "node_modules" / ".bin" / "anvil"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text("#!/bin/sh\n")
    wrapper.chmod(0o755)
    assert anvil_binary(search=(tmp_path,)) == str(wrapper)
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower(), "")
    native = tmp_path / "node_modules" / "@foundry-rs" / f"anvil-{sys.platform}-{arch}" / "bin" / "anvil"
    native.parent.mkdir(parents=True)
    native.write_text("#!/bin/sh\n")
    native.chmod(0o755)
    assert anvil_binary(search=(tmp_path,)) == str(native)


FAKE_ANVIL = """\
import argparse, os, pathlib, signal, socket, sys
parser = argparse.ArgumentParser()
for option in ("--host", "--port", "--dump-state", "--load-state"):
    parser.add_argument(option)
args = parser.parse_args()
state = pathlib.Path(args.load_state).read_text() if args.load_state else ""
pathlib.Path(args.dump_state).with_name("fake.pid").write_text(str(os.getpid()))
def dump(*_):
    pathlib.Path(args.dump_state).write_text(state + "block\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, dump)
server = socket.create_server((args.host, int(args.port)))
while True:
    server.accept()[0].close()
"""


def test_the_chain_state_survives_a_stop_and_a_killed_node_starts_a_new_chain(tmp_path: Path) -> None:
    from smartzone.chain_node import anvil as run_anvil

    fake = tmp_path / "anvil"
    fake.write_text(f"#!{sys.executable}\n{FAKE_ANVIL}")
    fake.chmod(0o755)
    folder = tmp_path / "chain"
    with run_anvil(str(fake), folder) as first:
        assert not first.kept_state and first.url and first.state_file == folder / "state.json"
    assert (folder / "state.json").read_text() == "block\n"
    with run_anvil(str(fake), folder) as second:
        assert second.kept_state
        assert not (folder / "state.json").exists() and not (folder / "state.loading.json").exists()
    assert (folder / "state.json").read_text() == "block\nblock\n"  # loaded, carried on, written again
    with run_anvil(str(fake), folder) as third:
        assert third.kept_state
        os.kill(int((folder / "fake.pid").read_text()), signal.SIGKILL)  # the node dies without writing
    with run_anvil(str(fake), folder) as fourth:
        assert not fourth.kept_state  # no chain older than the database: a new one


def test_without_anvil_auto_falls_back_to_py_evm_and_insisting_on_anvil_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sensors.errors import SmartZoneError
    from smartzone import chain_node

    monkeypatch.setattr(chain_node, "anvil_binary", lambda: None)
    with chain_node.embedded_chain("auto", data_dir=tmp_path) as running:
        assert running.url is None and "py-evm" in running.name
    with (
        pytest.raises(SmartZoneError, match="no anvil binary is installed"),
        chain_node.embedded_chain("anvil", data_dir=tmp_path),
    ):
        pass
